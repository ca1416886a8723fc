package appliance

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/xsk"
)

// sleepyBump is one appliance on MemPorts with real engines and the shared
// key pool, whose workers sleep an hour when idle: only a frame or the
// handler's wake source can get them going again.
type sleepyBump struct {
	a       *Appliance
	bump    *MemBump
	engines *Engines
	toHost  chan []byte
	peer    *sleepyBump
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
	toWire := func(f []byte) { g.peer.bump.Arrive(Outside, f) }
	in, err := NewMemPort(256, 2048, toHost)
	if err != nil {
		t.Fatal(err)
	}
	out, err := NewMemPort(256, 2048, toWire)
	if err != nil {
		t.Fatal(err)
	}
	g.bump = NewMemBump([]*MemPort{in}, []*MemPort{out}, [2]func([]byte){toHost, toWire}, true, 64)
	ecfg := config.Default().Engine
	ecfg.KeyWorkers = 1
	log := slog.New(slog.DiscardHandler)
	if g.engines, err = NewEngines(ecfg, log); err != nil {
		t.Fatal(err)
	}
	if g.a, err = New([]Port{in}, []Port{out}, Options{FastPath: g.bump, NewHandler: g.engines.NewHandler, Logger: log}); err != nil {
		t.Fatal(err)
	}
	for _, w := range g.a.workers {
		w.idle = time.Hour
	}
	t.Cleanup(func() {
		g.a.Stop()
		g.engines.Close()
	})
	return g
}

func (g *sleepyBump) counters() (encrypted uint64) {
	g.engines.Each(func(_ int, c *engine.Counters) { encrypted += c.Encrypted.Load() })
	return encrypted
}

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
	gA.bump.Arrive(Inside, seg(a4, b4, 6000, 443, S, isnA, 0, nil))
	gB.expect(t, "the SYN at b", func(p *packet.Packet) bool { return p.Flags()&S != 0 })
	gB.bump.Arrive(Inside, seg(b4, a4, 443, 6000, S|A, isnB, isnA+1, nil))
	gA.expect(t, "the SYN-ACK at a", func(p *packet.Packet) bool { return p.Flags()&(S|A) == S|A })
	gA.bump.Arrive(Inside, seg(a4, b4, 6000, 443, A, isnA+1, isnB+1, nil))
	deadline := time.Now().Add(10 * time.Second)
	for gA.counters() != 1 || gB.counters() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("encrypted: gwA %d, gwB %d after 10 s; want 1 each (a finished key exchange did not wake its worker)",
				gA.counters(), gB.counters())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWakeupEventfd: the eventfd of a wake source ends a poll(2) (what an
// AF_XDP worker waits in), a drained one does not, and signals after the
// fd closed are harmless.
func TestWakeupEventfd(t *testing.T) {
	k := newWakeup()
	if err := k.openFd(); err != nil {
		t.Fatal(err)
	}
	if _, ready, err := xsk.WaitFd(nil, k.fd, time.Millisecond); err != nil || ready {
		t.Fatalf("fresh wake source: ready %v, err %v", ready, err)
	}
	k.signal()
	k.signal() // coalesced
	start := time.Now()
	if _, ready, err := xsk.WaitFd(nil, k.fd, time.Hour); err != nil || !ready {
		t.Fatalf("after signal: ready %v, err %v", ready, err)
	}
	if time.Since(start) > time.Minute {
		t.Fatal("the signal did not end the wait")
	}
	k.drain()
	if _, ready, err := xsk.WaitFd(nil, k.fd, time.Millisecond); err != nil || ready {
		t.Fatalf("drained: ready %v, err %v", ready, err)
	}
	k.signal() // after drain: writes again
	if _, ready, _ := xsk.WaitFd(nil, k.fd, time.Hour); !ready {
		t.Fatal("a signal after drain did not end the wait")
	}
	k.drain()
	k.closeFd()
	k.signal()
	select {
	case <-k.ch:
	default:
		t.Fatal("signal after closeFd did not reach the channel")
	}
}
