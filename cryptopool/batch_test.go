package cryptopool

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// frameNonce is tcpcrypt's nonce (RFC 8548 §4.2, TC-D7): 4 zero bytes and
// the 8-byte big-endian stream offset of the frame, XOR the nonce randomizer.
func frameNonce(nr []byte, offset uint64) (n [NonceSize]byte) {
	binary.BigEndian.PutUint64(n[4:], offset)
	for i := range n {
		n[i] ^= nr[i]
	}
	return n
}

type kat struct {
	name   string
	suite  Suite
	key    string
	nonce  [NonceSize]byte
	ad     string
	plain  string
	sealed string // ciphertext | tag
}

func knownAnswers(t testing.TB) []kat {
	t.Helper()
	nonce := func(s string) (n [NonceSize]byte) {
		copy(n[:], unhex(t, s))
		return n
	}
	return []kat{{
		// docs/protocol.md §16: A's first frame, k_ab[0], offset 75 (after Init1).
		name:   "tcpcrypt-A-first-frame",
		suite:  AES128GCM,
		key:    "2f92ea21324d987d1fd4d63ac755d03d",
		nonce:  frameNonce(unhex(t, "7ac13d921cab49db0b4d0830"), 75),
		ad:     "000016",
		plain:  "00" + hex.EncodeToString([]byte("hello")),
		sealed: "6794b1565fafcfab8afcab3f0c0960a9627c71abeeaa",
	}, {
		// docs/protocol.md §16: B's empty FINp frame, k_ba[0], offset 74.
		name:   "tcpcrypt-B-FINp-frame",
		suite:  AES128GCM,
		key:    "6572aa65310eaaaa07f8d65dc1328750",
		nonce:  frameNonce(unhex(t, "57d8dd408b3e77d989ca2cd7"), 74),
		ad:     "000011",
		plain:  "01",
		sealed: "96ff5826810cf4ddd5a1960111112a8322",
	}, {
		// The GCM specification (McGrew and Viega), test case 16: AES-256,
		// 96-bit IV, associated data.
		name:  "gcm-spec-case-16",
		suite: AES256GCM,
		key:   "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
		nonce: nonce("cafebabefacedbaddecaf888"),
		ad:    "feedfacedeadbeeffeedfacedeadbeefabaddad2",
		plain: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
			"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
		sealed: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
			"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" +
			"76fc6ece0f4e1768cddf8853bb2d551b",
	}, {
		// RFC 8439 §2.8.2.
		name:  "rfc8439-2.8.2",
		suite: ChaCha20Poly1305,
		key:   "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
		nonce: nonce("070000004041424344454647"),
		ad:    "50515253c0c1c2c3c4c5c6c7",
		plain: hex.EncodeToString([]byte("Ladies and Gentlemen of the class of '99: " +
			"If I could offer you only one tip for the future, sunscreen would be it.")),
		sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
			"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
			"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
			"3ff4def08e4b7a9de576d26586cec64b6116" +
			"1ae10b594f09e26a7e902ecbd0600691",
	}}
}

// TestKnownAnswers checks every suite (TC-42) against published or
// independently computed vectors through each entry point: Key.Seal/Open
// and SealBatch/OpenBatch.
func TestKnownAnswers(t *testing.T) {
	for _, v := range knownAnswers(t) {
		t.Run(v.name, func(t *testing.T) {
			k, err := NewKey(v.suite, unhex(t, v.key))
			if err != nil {
				t.Fatal(err)
			}
			plain, sealed, ad := unhex(t, v.plain), unhex(t, v.sealed), unhex(t, v.ad)

			buf := append(append([]byte(nil), plain...), make([]byte, TagSize)...)
			n, err := k.Seal(&v.nonce, ad, buf)
			if err != nil || !bytes.Equal(buf[:n], sealed) {
				t.Fatalf("Seal = %x, %v; want %x", buf[:n], err, sealed)
			}
			n, err = k.Open(&v.nonce, ad, buf)
			if err != nil || !bytes.Equal(buf[:n], plain) {
				t.Fatalf("Open = %x, %v; want %x", buf[:n], err, plain)
			}

			ops := []Op{{Key: k, Nonce: v.nonce, AD: ad, Buf: append(append([]byte(nil), plain...), make([]byte, TagSize)...)}}
			if f := SealBatch(ops); f != 0 || ops[0].Err != nil || !bytes.Equal(ops[0].Buf[:ops[0].N], sealed) {
				t.Fatalf("SealBatch: failed=%d err=%v out=%x; want %x", f, ops[0].Err, ops[0].Buf[:ops[0].N], sealed)
			}
			if f := OpenBatch(ops); f != 0 || ops[0].Err != nil || !bytes.Equal(ops[0].Buf[:ops[0].N], plain) {
				t.Fatalf("OpenBatch: failed=%d err=%v out=%x; want %x", f, ops[0].Err, ops[0].Buf[:ops[0].N], plain)
			}
		})
	}
}

func TestNewKeyRejects(t *testing.T) {
	if _, err := NewKey(Suite(3), make([]byte, 16)); err == nil {
		t.Error("NewKey accepted suite 0x0003")
	}
	for _, s := range AllSuites {
		if _, err := NewKey(s, make([]byte, s.KeyLen()-1)); err == nil {
			t.Errorf("NewKey(%v) accepted a short key", s)
		}
	}
}

// randomOps builds n ops over keys of every suite with random sizes,
// nonces and 3-byte associated data, plus a copy of each plaintext.
func randomOps(t testing.TB, n int, r *mrand.Rand) ([]Op, [][]byte) {
	t.Helper()
	var keys []*Key
	for _, s := range AllSuites {
		for range 2 {
			kb := make([]byte, s.KeyLen())
			rand.Read(kb)
			k, err := NewKey(s, kb)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	ops := make([]Op, n)
	plains := make([][]byte, n)
	for i := range ops {
		size := r.IntN(2000)
		if i%7 == 0 {
			size = 0 // an empty plaintext is legal (an empty frame has 1 flags byte, but the AEAD does not care)
		}
		buf := make([]byte, size+TagSize)
		rand.Read(buf[:size])
		plains[i] = append([]byte(nil), buf[:size]...)
		ops[i] = Op{Key: keys[r.IntN(len(keys))], AD: []byte{0, byte(size >> 8), byte(size)}, Buf: buf}
		rand.Read(ops[i].Nonce[:])
	}
	return ops, plains
}

// TestBatchEqualsOneAtATime: a mixed batch (all suites, several keys, sizes
// 0-2000) seals to exactly what Key.Seal gives op by op, and opens back.
func TestBatchEqualsOneAtATime(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	ops, plains := randomOps(t, 200, r)
	single := make([][]byte, len(ops))
	for i, op := range ops {
		b := append([]byte(nil), op.Buf...)
		n, err := op.Key.Seal(&op.Nonce, op.AD, b)
		if err != nil {
			t.Fatal(err)
		}
		single[i] = b[:n]
	}
	if f := SealBatch(ops); f != 0 {
		t.Fatalf("SealBatch failed %d ops", f)
	}
	for i, op := range ops {
		if op.Err != nil || !bytes.Equal(op.Buf[:op.N], single[i]) {
			t.Fatalf("op %d: batch %x (err %v), one at a time %x", i, op.Buf[:op.N], op.Err, single[i])
		}
		n, err := op.Key.Open(&op.Nonce, op.AD, single[i])
		if err != nil || !bytes.Equal(single[i][:n], plains[i]) {
			t.Fatalf("op %d: Key.Open = %v", i, err)
		}
	}
	if f := OpenBatch(ops); f != 0 {
		t.Fatalf("OpenBatch failed %d ops", f)
	}
	for i, op := range ops {
		if op.Err != nil || !bytes.Equal(op.Buf[:op.N], plains[i]) {
			t.Fatalf("op %d: opened %x (err %v), want %x", i, op.Buf[:op.N], op.Err, plains[i])
		}
	}
}

// TestOpenBatchForgedOps: forged frames in a batch fail alone (TC-47/TC-48
// are the caller's decision; the batch must report each one separately) and
// their unauthenticated plaintext is not left in the buffer.
func TestOpenBatchForgedOps(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	ops, plains := randomOps(t, 12, r)
	for i := range ops {
		ops[i].Buf = append(make([]byte, 0, 100+TagSize), make([]byte, 100+TagSize)...)
		rand.Read(ops[i].Buf[:100])
		plains[i] = append([]byte(nil), ops[i].Buf[:100]...)
	}
	SealBatch(ops)
	other, _ := NewKey(AES128GCM, make([]byte, 16))
	forge := map[int]string{
		1:  "flipped ciphertext bit",
		4:  "flipped tag bit",
		5:  "changed associated data (rekey bit)",
		8:  "wrong nonce (frame at another offset)",
		9:  "wrong key",
		11: "truncated below the tag",
	}
	ops[1].Buf[0] ^= 0x01
	ops[4].Buf[len(ops[4].Buf)-1] ^= 0x80
	ops[5].AD = []byte{0x01, ops[5].AD[1], ops[5].AD[2]}
	ops[8].Nonce[11] ^= 1
	ops[9].Key = other
	ops[11].Buf = ops[11].Buf[:TagSize-1]

	if f := OpenBatch(ops); f != len(forge) {
		t.Errorf("OpenBatch failed %d ops, want %d", f, len(forge))
	}
	for i, op := range ops {
		why, forged := forge[i]
		switch {
		case forged && i == 11:
			if op.Err != ErrShortBuffer {
				t.Errorf("op %d (%s): err %v, want ErrShortBuffer", i, why, op.Err)
			}
		case forged:
			if op.Err != ErrAuth || op.N != 0 {
				t.Errorf("op %d (%s): err %v n %d, want ErrAuth 0", i, why, op.Err, op.N)
			}
			if bytes.Equal(op.Buf[:100], plains[i]) {
				t.Errorf("op %d (%s): plaintext left in the buffer of a forged frame", i, why)
			}
		default:
			if op.Err != nil || !bytes.Equal(op.Buf[:op.N], plains[i]) {
				t.Errorf("op %d: err %v; authentic frame next to forged ones did not open", i, op.Err)
			}
		}
	}
}

func TestBatchOpErrors(t *testing.T) {
	k, _ := NewKey(ChaCha20Poly1305, make([]byte, 32))
	ops := []Op{
		{Key: nil, Buf: make([]byte, 20)},
		{Key: k, Buf: make([]byte, TagSize-1)},
		{Key: k, Buf: make([]byte, TagSize)}, // empty plaintext: fine
		{Key: nil, Buf: make([]byte, 20)},
	}
	if f := SealBatch(ops); f != 3 {
		t.Errorf("SealBatch failed %d, want 3", f)
	}
	want := []error{ErrNoKey, ErrShortBuffer, nil, ErrNoKey}
	for i, op := range ops {
		if op.Err != want[i] {
			t.Errorf("seal op %d: err %v, want %v", i, op.Err, want[i])
		}
	}
	if ops[2].N != TagSize {
		t.Errorf("empty seal: N=%d, want %d", ops[2].N, TagSize)
	}
	if f := OpenBatch(ops); f != 3 || ops[2].Err != nil || ops[2].N != 0 {
		t.Errorf("OpenBatch: failed %d, op 2 err %v n %d", f, ops[2].Err, ops[2].N)
	}
	if _, err := k.Seal(&[NonceSize]byte{}, nil, make([]byte, 3)); err != ErrShortBuffer {
		t.Errorf("Key.Seal short: %v", err)
	}
	if _, err := k.Open(&[NonceSize]byte{}, nil, make([]byte, 3)); err != ErrShortBuffer {
		t.Errorf("Key.Open short: %v", err)
	}
}

// TestBatchZeroAllocs proves the per-frame path allocates nothing, for every
// suite, single and batched, sealing and opening (including failed opens).
func TestBatchZeroAllocs(t *testing.T) {
	for _, s := range AllSuites {
		for _, size := range []int{1, 1400} {
			t.Run(fmt.Sprintf("%v/%d", s, size), func(t *testing.T) {
				k, err := NewKey(s, make([]byte, s.KeyLen()))
				if err != nil {
					t.Fatal(err)
				}
				ops := make([]Op, 32)
				for i := range ops {
					ops[i] = Op{Key: k, AD: []byte{0, 5, 0x8c}, Buf: make([]byte, size+TagSize)}
					ops[i].Nonce[11] = byte(i)
				}
				if a := testing.AllocsPerRun(50, func() {
					SealBatch(ops)
					OpenBatch(ops)
				}); a != 0 {
					t.Errorf("SealBatch+OpenBatch: %v allocs per run", a)
				}
				// Forged tags: the error path allocates nothing either.
				for i := range ops {
					ops[i].Buf[len(ops[i].Buf)-1] ^= 0xff
				}
				if a := testing.AllocsPerRun(50, func() {
					if OpenBatch(ops) != len(ops) {
						t.Fatal("a forged op opened")
					}
				}); a != 0 {
					t.Errorf("failing OpenBatch: %v allocs per run", a)
				}
				op := &ops[0]
				if a := testing.AllocsPerRun(50, func() {
					k.Seal(&op.Nonce, op.AD, op.Buf)
					k.Open(&op.Nonce, op.AD, op.Buf)
				}); a != 0 {
					t.Errorf("Key.Seal+Open: %v allocs per run", a)
				}
			})
		}
	}
}

// TestFrameInPlace: the way the engine uses it, AD is the 3-byte frame header
// right before the ciphertext in the same packet buffer. Adjacent is fine;
// an AD that overlaps Buf is refused with ErrOverlap, never a panic.
func TestFrameInPlace(t *testing.T) {
	for _, s := range AllSuites {
		k, _ := NewKey(s, make([]byte, s.KeyLen()))
		frame := make([]byte, 3+6+TagSize)
		frame[2] = byte(6 + TagSize)
		copy(frame[3:], "\x00hello")
		ops := []Op{
			{Key: k, AD: frame[:3], Buf: frame[3:]},
			{Key: k, AD: frame[:4], Buf: frame[3:]},
			{Key: k, AD: frame[10:12], Buf: frame[3:]},
		}
		if f := SealBatch(ops); f != 2 || ops[0].Err != nil || ops[1].Err != ErrOverlap || ops[2].Err != ErrOverlap {
			t.Fatalf("%v: SealBatch failed %d: %v %v %v", s, f, ops[0].Err, ops[1].Err, ops[2].Err)
		}
		if f := OpenBatch(ops); f != 2 || ops[0].Err != nil || string(ops[0].Buf[:ops[0].N]) != "\x00hello" || ops[1].Err != ErrOverlap {
			t.Fatalf("%v: OpenBatch failed %d: %v %v", s, f, ops[0].Err, ops[1].Err)
		}
		if _, err := k.Seal(&ops[1].Nonce, frame[:4], frame[3:]); err != ErrOverlap {
			t.Errorf("%v: Key.Seal with overlapping AD: %v", s, err)
		}
		if _, err := k.Open(&ops[1].Nonce, frame[:4], frame[3:]); err != ErrOverlap {
			t.Errorf("%v: Key.Open with overlapping AD: %v", s, err)
		}
	}
}
