package appliance

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// sleepyBump is one appliance on memport.Ports with a real engine whose
// public-key work runs on a cryptopool, and whose workers sleep an hour when
// idle: only a frame or the handler's wake source can get them going again.
type sleepyBump struct {
	a      *Appliance
	bump   *memport.Bump
	engine *engine.Engine
	toHost chan []byte
	peer   *sleepyBump
}

func newSleepyBump(t *testing.T) *sleepyBump {
	t.Helper()
	g := &sleepyBump{toHost: make(chan []byte, 256)}
	toHost := func(f []byte) {
		select {
		case g.toHost <- bytes.Clone(f):
		default:
		}
	}
	toWire := func(f []byte) { g.peer.bump.Arrive(bump.Outside, f) }
	in, err := memport.New(256, 2048, toHost)
	if err != nil {
		t.Fatal(err)
	}
	out, err := memport.New(256, 2048, toWire)
	if err != nil {
		t.Fatal(err)
	}
	g.bump = memport.NewBump([]*memport.Port{in}, []*memport.Port{out}, [2]func([]byte){toHost, toWire}, true, 64)
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if g.engine, err = engine.New(engine.Config{}, engine.Deps{Pool: pool, Log: log}); err != nil {
		t.Fatal(err)
	}
	handler := func(int) (FrameHandler, error) { return g.engine, nil }
	if g.a, err = New([]Port{in}, []Port{out}, Options{FastPath: g.bump, NewHandler: handler, Logger: log}); err != nil {
		t.Fatal(err)
	}
	for _, w := range g.a.workers {
		w.idle = time.Hour
	}
	t.Cleanup(func() {
		g.a.Stop()
		pool.Close()
	})
	return g
}

func (g *sleepyBump) counters() (encrypted uint64) { return g.engine.Counters().Encrypted.Load() }

func (g *sleepyBump) expect(t *testing.T, what string, ok func(*packet.Packet) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var p packet.Packet
	for {
		select {
		case f := <-g.toHost:
			if p.Decode(f) == nil && p.IsTCP() && ok(&p) {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestWakeOnKeyExchangeDone: the Diffie-Hellman of a key exchange runs on
// the cryptopool, and its completion wakes the worker, which finishes the
// handshake at once. The workers' idle timeout is an hour, so without the
// wake-up gwA, which has no frame coming after Init2 (RFC 8548 §3.3: host
// A's keys come from Init2), would never install its keys; with it both
// ends count the connection encrypted within seconds.
func TestWakeOnKeyExchangeDone(t *testing.T) {
	gA, gB := newSleepyBump(t), newSleepyBump(t)
	gA.peer, gB.peer = gB, gA
	for _, g := range []*sleepyBump{gA, gB} {
		if err := g.a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	const isnA, isnB = 1000, 5000
	const S, A = packettest.SYN, packettest.ACK
	gA.bump.Arrive(bump.Inside, seg(a4, b4, 6000, 443, S, isnA, 0, nil))
	gB.expect(t, "the SYN at b", func(p *packet.Packet) bool { return p.Flags()&S != 0 })
	gB.bump.Arrive(bump.Inside, seg(b4, a4, 443, 6000, S|A, isnB, isnA+1, nil))
	gA.expect(t, "the SYN-ACK at a", func(p *packet.Packet) bool { return p.Flags()&(S|A) == S|A })
	gA.bump.Arrive(bump.Inside, seg(a4, b4, 6000, 443, A, isnA+1, isnB+1, nil))
	deadline := time.Now().Add(10 * time.Second)
	for gA.counters() != 1 || gB.counters() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("encrypted: gwA %d, gwB %d after 10 s; want 1 each (a finished key exchange did not wake its worker)",
				gA.counters(), gB.counters())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBusyWorkerCollectsKeyExchange: a worker that has frames every round
// never waits, so it never sees its wake source there; it still installs
// the keys of a key exchange the pool finished within a few rounds, not
// only at its next Tick (here the clock stands still, so that Tick never
// comes).
func TestBusyWorkerCollectsKeyExchange(t *testing.T) {
	pool, err := cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var engines []*engine.Engine
	mk := func() *rig {
		e, err := engine.New(engine.Config{}, engine.Deps{Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
		return newRig(t, rigOpts{handler: func(int) (FrameHandler, error) { return e, nil }})
	}
	gA, gB := mk(), mk()
	shuttle := func() { shuttleOutside(gA, gB) }
	const S, A = packettest.SYN, packettest.ACK
	const isnA, isnB = 1000, 5000
	gA.send(Inside, seg(a4, b4, 6000, 80, S, isnA, 0, nil))
	shuttle()
	gB.send(Inside, seg(b4, a4, 80, 6000, S|A, isnB, isnA+1, nil))
	shuttle()
	gA.send(Inside, seg(a4, b4, 6000, 80, A, isnA+1, isnB+1, nil))
	shuttle() // Init1 to gB: with no key stock, its pair and session are made on the pool
	deadline := time.Now().Add(5 * time.Second)
	for engines[1].Counters().Encrypted.Load() == 0 { // then gB sends Init2
		if time.Now().After(deadline) {
			t.Fatal("gB did not finish its key exchange within 5 s")
		}
		gB.a.Poll(gB.now)
		time.Sleep(100 * time.Microsecond)
	}
	shuttle() // Init2 to gA: gA's session is on the pool now
	busy := packettest.Frame{Src: a4, Dst: b4, Proto: 17, L4: packettest.UDP(9, 9, []byte("busy"))}.Bytes()
	for engines[0].Counters().Encrypted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a busy worker did not install the keys the pool computed within 5 s")
		}
		gA.bump.Arrive(Inside, busy)
		if gA.a.Poll(gA.now) == 0 {
			t.Fatal("the busy frame was not handled")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
