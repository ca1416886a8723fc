package cryptopool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// benchBatch is the frames per benchmark op: one worker's RX batch.
const benchBatch = 32

// benchFrame is one frame of a benchmark op: a 12-byte nonce, tcpcrypt's
// 3 bytes of associated data and a buffer worked on in place.
type benchFrame struct {
	Nonce [NonceSize]byte
	AD    []byte
	Buf   []byte
}

var benchSizes = []int{64, 1400, 9000, 16384}

// rawAEAD builds the AEAD straight from crypto/aes+crypto/cipher or
// x/crypto, without this package, as the reference.
func rawAEAD(b *testing.B, s Suite, key []byte) cipher.AEAD {
	if s == ChaCha20Poly1305 {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// benchFrames makes benchBatch frames of size plaintext bytes each (plus tag
// room) under one key, with distinct nonces and 3-byte associated data.
func benchFrames(b *testing.B, s Suite, size int) (*Key, cipher.AEAD, []benchFrame) {
	key := make([]byte, s.KeyLen())
	rand.Read(key)
	k, err := NewKey(s, key)
	if err != nil {
		b.Fatal(err)
	}
	ops := make([]benchFrame, benchBatch)
	for i := range ops {
		ops[i] = benchFrame{AD: []byte{0, byte((size + 17) >> 8), byte(size + 17)}, Buf: make([]byte, size+TagSize)}
		rand.Read(ops[i].Buf[:size])
		ops[i].Nonce[11] = byte(i)
	}
	return k, rawAEAD(b, s, key), ops
}

// sealAll seals every frame of ops under k.
func sealAll(b *testing.B, k *Key, ops []benchFrame) {
	for i := range ops {
		op := &ops[i]
		if _, err := k.Seal(&op.Nonce, op.AD, op.Buf); err != nil {
			b.Fatal(err)
		}
	}
}

// Each benchmark op is benchBatch frames; ns/frame is reported beside it.
func reportPerFrame(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/frame")
}

// BenchmarkSeal compares, per suite and frame size, the raw AEAD (Seal in
// place, one call per frame) and Key.Seal.
func BenchmarkSeal(b *testing.B) {
	for _, s := range AllSuites {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", s, size), func(b *testing.B) {
				k, raw, ops := benchFrames(b, s, size)
				b.Run("raw", func(b *testing.B) {
					b.SetBytes(int64(benchBatch * size))
					b.ReportAllocs()
					for b.Loop() {
						for i := range ops {
							op := &ops[i]
							raw.Seal(op.Buf[:0], op.Nonce[:], op.Buf[:size], op.AD)
						}
					}
					reportPerFrame(b)
				})
				b.Run("one", func(b *testing.B) {
					b.SetBytes(int64(benchBatch * size))
					b.ReportAllocs()
					for b.Loop() {
						for i := range ops {
							op := &ops[i]
							k.Seal(&op.Nonce, op.AD, op.Buf)
						}
					}
					reportPerFrame(b)
				})
			})
		}
	}
}

// BenchmarkOpen is BenchmarkSeal for Open. Opening in place consumes the
// ciphertext, so every op first copies the batch's sealed frames back; the
// "copy" case measures that copy alone, to subtract.
func BenchmarkOpen(b *testing.B) {
	for _, s := range AllSuites {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", s, size), func(b *testing.B) {
				k, raw, ops := benchFrames(b, s, size)
				sealAll(b, k, ops)
				sealed := make([][]byte, len(ops))
				for i := range ops {
					sealed[i] = append([]byte(nil), ops[i].Buf...)
				}
				restore := func() {
					for i := range ops {
						copy(ops[i].Buf, sealed[i])
					}
				}
				run := func(name string, open func()) {
					b.Run(name, func(b *testing.B) {
						b.SetBytes(int64(benchBatch * size))
						b.ReportAllocs()
						for b.Loop() {
							restore()
							open()
						}
						reportPerFrame(b)
					})
				}
				run("copy", func() {})
				run("raw", func() {
					for i := range ops {
						op := &ops[i]
						if _, err := raw.Open(op.Buf[:0], op.Nonce[:], op.Buf, op.AD); err != nil {
							b.Fatal(err)
						}
					}
				})
				run("one", func() {
					for i := range ops {
						op := &ops[i]
						if _, err := k.Open(&op.Nonce, op.AD, op.Buf); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkKeyVsRaw is the paired comparison: every op runs the same 32
// frames through the raw AEAD and through Key.Seal/Open, back to back in
// rotating order, timing each. On a shared, noisy machine both then see
// the same load, so the ratio key/raw means something even when absolute
// times drift.
func BenchmarkKeyVsRaw(b *testing.B) {
	for _, open := range []bool{false, true} {
		for _, s := range AllSuites {
			for _, size := range benchSizes {
				name := fmt.Sprintf("seal/%v/%d", s, size)
				if open {
					name = "open" + name[4:]
				}
				b.Run(name, func(b *testing.B) { pairedBench(b, s, size, open) })
			}
		}
	}
}

func pairedBench(b *testing.B, s Suite, size int, open bool) {
	k, raw, ops := benchFrames(b, s, size)
	variants := [2]func(){
		func() {
			for i := range ops {
				op := &ops[i]
				raw.Seal(op.Buf[:0], op.Nonce[:], op.Buf[:size], op.AD)
			}
		},
		func() {
			for i := range ops {
				op := &ops[i]
				k.Seal(&op.Nonce, op.AD, op.Buf)
			}
		},
	}
	restore := func() {}
	if open {
		sealAll(b, k, ops)
		sealed := make([][]byte, len(ops))
		for i := range ops {
			sealed[i] = append([]byte(nil), ops[i].Buf...)
		}
		restore = func() {
			for i := range ops {
				copy(ops[i].Buf, sealed[i])
			}
		}
		variants = [2]func(){
			func() {
				for i := range ops {
					op := &ops[i]
					if _, err := raw.Open(op.Buf[:0], op.Nonce[:], op.Buf, op.AD); err != nil {
						b.Fatal(err)
					}
				}
			},
			func() {
				for i := range ops {
					op := &ops[i]
					if _, err := k.Open(&op.Nonce, op.AD, op.Buf); err != nil {
						b.Fatal(err)
					}
				}
			},
		}
	}
	// Per-variant medians over rounds: a preemption by another process
	// lands in one round of one variant and does not move the median.
	const maxRounds = 1 << 17
	var samples [2][]time.Duration
	for i := range samples {
		samples[i] = make([]time.Duration, 0, maxRounds)
	}
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		for v := range variants {
			idx := (v + round) % len(variants)
			restore()
			t0 := time.Now()
			variants[idx]()
			if d := time.Since(t0); len(samples[idx]) < maxRounds {
				samples[idx] = append(samples[idx], d)
			}
		}
		round++
	}
	var med [2]float64
	for i := range samples {
		slices.Sort(samples[i])
		med[i] = float64(samples[i][len(samples[i])/2].Nanoseconds()) / benchBatch
	}
	b.ReportMetric(med[0], "raw-ns/frame")
	b.ReportMetric(med[1], "one-ns/frame")
	b.ReportMetric(med[1]/med[0], "key/raw")
}

// benchX25519 is one fresh key exchange's public-key work: generate a pair,
// then ECDH with the peer's public key (Arg).
func benchX25519(j *Job) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		j.Err = err
		return
	}
	_, j.Err = priv.ECDH(j.Arg.(*ecdh.PublicKey))
}

// BenchmarkPool measures X25519 key generation + ECDH jobs done inline on
// the submitter's goroutine, through a 1-worker pool and through a 2-worker
// pool, paired like BenchmarkKeyVsRaw: each op runs a round of 32 jobs in
// each configuration in rotating order, and the medians over rounds are
// reported as jobs/s. "noop" measures the pool's own cost per job.
func BenchmarkPool(b *testing.B) {
	peerKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer := peerKey.PublicKey()
	b.Run("x25519", func(b *testing.B) {
		const perRound = 32
		var clients [2]*Client
		for i := range clients {
			p, err := NewPool(PoolConfig{Workers: i + 1, QueueLen: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			clients[i], _ = p.NewClient(perRound)
		}
		out := make([]Job, perRound)
		viaPool := func(c *Client) {
			for range perRound {
				if !c.Submit(Job{Run: benchX25519, Arg: peer}) {
					b.Fatal("refused")
				}
			}
			for done := 0; done < perRound; {
				n := c.Poll(out)
				for _, j := range out[:n] {
					if j.Err != nil {
						b.Fatal(j.Err)
					}
				}
				done += n
				if n == 0 {
					<-c.Ready()
				}
			}
		}
		configs := [3]func(){
			func() {
				j := Job{Arg: peer}
				for range perRound {
					benchX25519(&j)
				}
			},
			func() { viaPool(clients[0]) },
			func() { viaPool(clients[1]) },
		}
		var samples [3][]time.Duration
		b.ReportAllocs()
		round := 0
		for b.Loop() {
			for v := range configs {
				idx := (v + round) % len(configs)
				t0 := time.Now()
				configs[idx]()
				samples[idx] = append(samples[idx], time.Since(t0))
			}
			round++
		}
		var rate [3]float64
		for i := range samples {
			slices.Sort(samples[i])
			rate[i] = perRound / samples[i][len(samples[i])/2].Seconds()
		}
		b.ReportMetric(rate[0], "inline-jobs/s")
		b.ReportMetric(rate[1], "w1-jobs/s")
		b.ReportMetric(rate[2], "w2-jobs/s")
	})
	b.Run("noop", func(b *testing.B) {
		p, err := NewPool(PoolConfig{Workers: 1, QueueLen: 256})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		c, _ := p.NewClient(512)
		out := make([]Job, 64)
		b.ReportAllocs()
		b.ResetTimer()
		submitted, done := 0, 0
		for done < b.N {
			for submitted < b.N && c.Submit(Job{Run: runNothing, Arg: peer}) {
				submitted++
			}
			n := c.Poll(out)
			done += n
			if n == 0 {
				<-c.Ready()
			}
		}
	})
}

// BenchmarkStockTake measures Take. "hit" takes from a stock that the pool
// refills concurrently (a cheap generator, so the bench measures Take, not
// X25519; the timer stops while the stock refills); "empty" is a Take that
// finds nothing.
func BenchmarkStockTake(b *testing.B) {
	b.Run("hit", func(b *testing.B) {
		p, _ := NewPool(PoolConfig{Workers: 1})
		defer p.Close()
		var serial uint64
		const size = 1024
		s, _ := NewStock(p, StockConfig[testPair]{Size: size, Generate: func() (testPair, error) {
			serial++
			return testPair{serial: serial}, nil
		}, Wipe: func(k *testPair) { clear(k.priv[:]) }})
		waitFull := func() {
			for s.Len() < size {
				time.Sleep(100 * time.Microsecond)
			}
		}
		waitFull()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; {
			if _, ok := s.Take(); ok {
				i++
				continue
			}
			b.StopTimer()
			waitFull()
			b.StartTimer()
		}
	})
	b.Run("empty", func(b *testing.B) {
		p, _ := NewPool(PoolConfig{Workers: 1})
		defer p.Close()
		release := make(chan struct{})
		defer close(release)
		s, _ := NewStock(p, StockConfig[testPair]{Size: 64, Generate: func() (testPair, error) {
			<-release
			return testPair{}, nil
		}})
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.Take(); ok {
				b.Fatal("hit")
			}
		}
	})
}
