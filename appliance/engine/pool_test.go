package engine

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// poolPair is two engines configured as cfg whose public-key work runs on
// one shared cryptopool.Pool, with stocks of ready key pairs, as a
// daemon's workers have them (filled before it returns).
func poolPair(t *testing.T, cfg Config) (ga, gb *gw) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	deps := Deps{Pool: pool, Keys: keyStocks(t, pool, 8)}
	return newGWDeps(t, cfg, deps), newGWDeps(t, cfg, deps)
}

// keyStocks returns stocks of n pairs of each of testTEPs on pool, full.
func keyStocks(t *testing.T, pool *cryptopool.Pool, n int) map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair] {
	t.Helper()
	keys := map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair]{}
	for _, tep := range testTEPs {
		ka, err := tcpcrypt.KeyAgreementFor(tep)
		if err != nil {
			t.Fatal(err)
		}
		st, err := cryptopool.NewStock(pool, cryptopool.StockConfig[*tcpcrypt.KeyPair]{
			Name: tep.String(), Size: n, MaxAge: time.Minute,
			Generate: func() (*tcpcrypt.KeyPair, error) { return ka.GenerateKey(nil) },
		})
		if err != nil {
			t.Fatal(err)
		}
		keys[tep] = st
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, st := range keys {
		for st.Len() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if st.Len() < n {
			t.Fatalf("stock %s: %d of %d pairs after 10 s", st.Stats().Name, st.Len(), n)
		}
	}
	return keys
}

// With a cryptopool.Pool the Diffie-Hellman runs off the packet path: host
// data that arrives before the keys is queued and sent once Tick collects
// the result; frames that reach G_B before its keys are held, then opened.
func TestPoolKeyExchangeAndPreKeyQueue(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1]) // Init1 -> Init2 at once; G_B's keys are computed on the pool
	init2 := one(t, "Init2", o2)
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	one(t, "ACK of Init2", o)

	// a sends before G_A has keys: queued, nothing on the wire.
	msg := []byte("early data, queued until the keys exist")
	if v := ga.e.Handle(0, Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), msg), ga.tx); v != Consumed && v != Forwarded {
		t.Fatalf("pre-key data: %v", v)
	}
	var wire [][]byte
	wire = append(wire, ga.out.take()...)
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after keys", len(wire))
	}
	w := parse(t, wire[0])
	if len(w.payload) != len(msg)+20 || w.seq != isnA+1+75 {
		t.Fatalf("queued data on the wire: %+v", w)
	}
	var atB [][]byte
	in, _ := gb.push(Outside, wire[0])
	atB = append(atB, in...)
	for len(atB) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		in, _ := gb.tick(1)
		atB = append(atB, in...)
	}
	if len(atB) != 1 || !bytes.Equal(parse(t, atB[0]).payload, msg) {
		t.Fatalf("b got %d frames", len(atB))
	}
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
}

// Host data that arrived before R's Init2 waits for the keys the pool
// computes after Init2: its first frame acknowledges Init2, and no pure ACK
// goes first (one segment less per fresh connection: at the bench's
// connection rates a's request is always queued by then).
func TestPoolInit2AckedByFirstFrame(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1])
	init2 := one(t, "Init2", o2)
	msg := []byte("request")
	_, early := ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), msg))
	none(t, "data before the keys", early)
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	none(t, "pure ACK of Init2 with data waiting", o)
	var wire [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after the keys, want the data frame", len(wire))
	}
	w := parse(t, wire[0])
	if len(w.payload) != len(msg)+20 || w.seq != isnA+1+75 || w.ack != isnB+1+74 || w.flags&ackF == 0 {
		t.Fatalf("first frame: seq %x ack %x flags %x len %d, want data at %x acknowledging Init2 (%x)",
			w.seq, w.ack, w.flags, len(w.payload), isnA+1+75, isnB+1+74)
	}
}

// The same when the queued data cannot go at once (more than the
// retransmit store holds): the appliance acknowledges Init2 with a pure ACK
// once the keys are there rather than leave it to R's Init retransmission.
func TestPoolInit2AckedWhenDataCannotGo(t *testing.T) {
	ga, gb := poolPair(t, Config{TEPs: testTEPs, RetransmitBytes: 2 * tcpcrypt.MaxFrameLen / 16, PreKeyBytes: 64 << 10})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, o2 := gb.push(Outside, o[1])
	init2 := one(t, "Init2", o2)
	seq := uint32(isnA + 1)
	for range 4 {
		ga.push(Inside, tcpFrame(addrA, addrB, seq, isnB+1, ackF|pshF, 502, tsOpt(3, 2), make([]byte, 4000)))
		seq += 4000
	}
	_, o = ga.push(Outside, tcpFrameFrom(init2))
	none(t, "pure ACK of Init2 with data waiting", o)
	var wire [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(wire) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, o := ga.tick(1)
		wire = append(wire, o...)
	}
	if len(wire) != 1 {
		t.Fatalf("%d wire frames after the keys, want the ACK of Init2", len(wire))
	}
	if w := parse(t, wire[0]); len(w.payload) != 0 || w.ack != isnB+1+74 {
		t.Fatalf("after the keys: ack %x len %d, want a pure ACK of Init2 (%x)", w.ack, len(w.payload), isnB+1+74)
	}
}

// blockedPool is a pool with one worker held busy and a full queue of two,
// as a burst of handshakes leaves a daemon's pool: every Submit is refused
// until release is called (which t's cleanup calls too).
func blockedPool(t *testing.T) (pool *cryptopool.Pool, release func()) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := pool.NewClient(8)
	if err != nil {
		t.Fatal(err)
	}
	started, hold := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	if !c.Submit(cryptopool.Job{Run: func(*cryptopool.Job) { close(started); <-hold }}) {
		t.Fatal("blocker refused")
	}
	<-started
	for range 2 {
		if !c.Submit(cryptopool.Job{Run: func(*cryptopool.Job) {}}) {
			t.Fatal("filler refused")
		}
	}
	return pool, release
}

// kexFlows brings n connections (a's ports from 20000) through G_A and to
// G_B's key exchange: G_B has Init1 and wants the pool for its keys.
func kexFlows(t *testing.T, ga, gb *gw, n int) {
	for i := range n {
		a := netip.AddrPortFrom(addrA.Addr(), uint16(20000+i))
		_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
		one(t, "SYN", o)
		gb.push(Outside, o[0])
		_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		one(t, "SYN-ACK", o)
		ga.push(Outside, o[0])
		_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
		if len(o) != 2 {
			t.Fatalf("flow %d: %d frames after the third segment, want it and Init1", i, len(o))
		}
		gb.push(Outside, o[0])
		gb.push(Outside, o[1])
	}
}

// Key exchanges the pool refused (its queue full) were all submitted again
// before every frame the worker handled, and each refusal took the pool's
// lock: with thousands waiting, every packet of every connection on the
// worker paid for thousands of refusals (500 waiting, 100 unrelated frames:
// 50,000). Now they wait in order and go again only at a tick or when a
// completion freed room, stopping at the first refusal; once the pool has
// room, every one of them completes.
func TestPoolRefusalsNotRetriedPerFrame(t *testing.T) {
	const n = 500
	pool, release := blockedPool(t)
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool})
	kexFlows(t, ga, gb, n)
	if got := gb.e.Counters().PoolRetries.Load(); got == 0 {
		t.Fatal("the pool refused nothing: the test does not fill it")
	}

	before := pool.Stats().RejectedFull
	other := netip.AddrPortFrom(addrA.Addr(), 7)
	for i := range 100 {
		gb.push(Outside, tcpFrame(addrB, other, uint32(1000+i), 1, ackF, 502, nil, nil))
	}
	refused := pool.Stats().RejectedFull - before
	t.Logf("pool refusals during 100 unrelated frames: %d", refused)
	if refused != 0 {
		t.Fatalf("%d pool refusals while unrelated frames passed, want 0", refused)
	}
	gb.tick(1)
	if refused := pool.Stats().RejectedFull - before; refused != 1 {
		t.Fatalf("a tick made %d refused submissions, want 1 (the oldest waiting)", refused)
	}

	release()
	deadline := time.Now().Add(20 * time.Second)
	for gb.e.Counters().Encrypted.Load() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
		gb.tick(1)
	}
	if got := gb.e.Counters().Encrypted.Load(); got != n {
		t.Fatalf("%d of %d key exchanges completed", got, n)
	}
}

// B gets its key pair only when Init1 is in. A peer that completes TCP
// handshakes with TCP-ENO and never sends Init1 costs no pair: the stock
// stays full, and none is made on the worker (key_gen_inline). Before, each
// such connection took a pair at its third segment, and once the stock was
// empty the worker made one (175 µs for X448), so a few thousand a second
// stalled every flow of the worker (flood review).
func TestHandshakesWithoutInit1TakeNoPairs(t *testing.T) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys := keyStocks(t, pool, 4)
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool, Keys: keys})
	ga.undrained, gb.undrained = true, true
	for i := range 50 {
		a := netip.AddrPortFrom(addrA.Addr(), uint16(20000+i))
		_, o := ga.push(Inside, tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
		gb.push(Outside, one(t, "SYN", o).frame())
		_, o = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 2), nil))
		ga.push(Outside, one(t, "SYN-ACK", o).frame())
		_, o = ga.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(2, 2), nil))
		gb.push(Outside, o[0]) // the third segment, `45 02`; Init1 never comes
	}
	if n := gb.e.Counters().KeyGenInline.Load(); n != 0 {
		t.Fatalf("G_B made %d key pairs on the worker for connections that sent no Init1", n)
	}
	if n := keys[testTEPs[0]].Len(); n != 4 {
		t.Fatalf("G_B's stock holds %d pairs, want 4: connections without Init1 took them", n)
	}
}

// With its stock empty, B's pair is made on the pool with the session, and
// Init2 goes when the pool is done: the handshake completes and data flows,
// with no key generation on the worker.
func TestInit2AfterPoolMadePair(t *testing.T) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ga := newGW(t, Config{TEPs: testTEPs})
	gb := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Pool: pool})
	o := toThirdSegment(ga, gb)
	gb.push(Outside, o[0])
	_, out := gb.push(Outside, o[1])
	none(t, "Init2 before B has a pair", out)
	deadline := time.Now().Add(5 * time.Second)
	for len(out) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		_, out = gb.tick(1)
	}
	init2 := one(t, "Init2 after the pool", out)
	if init2.ack != isnA+1+75 || len(init2.payload) != 74 {
		t.Fatalf("Init2: ack %x len %d, want it to acknowledge Init1 (%x)", init2.ack, len(init2.payload), isnA+1+75)
	}
	_, o2 := ga.push(Outside, tcpFrameFrom(init2))
	gb.push(Outside, one(t, "ACK of Init2", o2).frame())
	if !flowInfo(t, ga.e).Encrypted || !flowInfo(t, gb.e).Encrypted {
		t.Fatal("not encrypted")
	}
	if n := gb.e.Counters().KeyGenInline.Load(); n != 0 {
		t.Fatalf("key_gen_inline %d at G_B, want 0", n)
	}
	wire := (&pair{t: t, ga: ga, gb: gb, tsA: 3, tsB: 3}).aSends(&hosts{aNext: isnA + 1, bNext: isnB + 1}, []byte("data"), pshF)
	in, _ := gb.push(Outside, tcpFrameFrom(wire[0]))
	if len(in) != 1 || string(parse(t, in[0]).payload) != "data" {
		t.Fatalf("data after the handshake: %d frames to b", len(in))
	}
}

// busyPool is a pool of one worker held busy by a job until release is
// called (by the test, else at its end, before the pool closes): key
// exchanges submitted meanwhile wait behind it.
func busyPool(t *testing.T) (pool *cryptopool.Pool, release func()) {
	t.Helper()
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := pool.NewClient(1)
	if err != nil {
		t.Fatal(err)
	}
	started, hold := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before pool.Close, also on failure
	if !c.Submit(cryptopool.Job{Run: func(*cryptopool.Job) { close(started); <-hold }}) {
		t.Fatal("blocker refused")
	}
	<-started
	return pool, release
}
