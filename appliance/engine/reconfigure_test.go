package engine

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The daemon's admin source finds this method through an interface
// (control.Reconfigurer); the package cannot import control.
var _ interface{ Reconfigure(Config) error } = (*Engine)(nil)

// A configuration New would refuse changes nothing, whichever field is
// wrong: validation comes before any of it is applied.
func TestReconfigureRefusedChangesNothing(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs})
	before := g.e.Config()
	for name, c := range map[string]Config{
		"bad TEP":        {TEPs: []tcpcrypt.TEP{0x7f}, RekeyBytes: 5},
		"small store":    {TEPs: testTEPs, RetransmitBytes: 100, RekeyBytes: 5},
		"bad policy":     {Policies: []PolicyRule{{Prefix: netip.Prefix{}, Policy: Require}}, MaxFlows: 3},
		"unknown policy": {Policies: []PolicyRule{{Prefix: mustPrefix("10.0.0.0/8"), Policy: 9}}, MaxFlows: 3},
	} {
		if err := g.e.Reconfigure(c); !errors.Is(err, ErrConfig) {
			t.Fatalf("%s: %v, want ErrConfig", name, err)
		}
		if !reflect.DeepEqual(g.e.Config(), before) {
			t.Fatalf("%s: refused, yet the configuration went %+v -> %+v", name, before, g.e.Config())
		}
	}
}

// New connections take the new TEPs and policies; the connection already
// encrypted keeps its session and goes on carrying data.
func TestReconfigureNewConnections(t *testing.T) {
	pr := handshake(t)
	c := pr.ga.e.Config()
	c.TEPs = []tcpcrypt.TEP{tcpcrypt.TEPX448}
	c.MaxFlows = 10
	if err := pr.ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	if got := pr.ga.e.Config(); !reflect.DeepEqual(got.TEPs, c.TEPs) || got.MaxFlows != 10 {
		t.Fatalf("config after Reconfigure: %+v", got)
	}
	c.TEPs[0] = tcpcrypt.TEPP256 // the caller's slice is not the engine's
	if pr.ga.e.Config().TEPs[0] != tcpcrypt.TEPX448 {
		t.Fatal("the engine shares the caller's TEP slice")
	}
	a2 := netip.AddrPortFrom(addrA.Addr(), 40100)
	_, o := pr.ga.push(Inside, tcpFrame(a2, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	hasBytes(t, "SYN after Reconfigure offers X448 only", option(one(t, "SYN", o).opts, 69), unhex("450324"))

	// Bypass for the far side's prefix: the next connection stays plain
	// (counted), the encrypted one is untouched.
	c = pr.ga.e.Config()
	c.Policies = []PolicyRule{{Prefix: mustPrefix("198.51.100.0/24"), Policy: Bypass}}
	if err := pr.ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	a3 := netip.AddrPortFrom(addrA.Addr(), 40101)
	if v := pr.ga.e.Handle(0, Inside, tcpFrame(a3, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil), pr.ga.tx); v != Passthrough {
		t.Fatalf("SYN under bypass: %v", v)
	}
	if n := pr.ga.e.Counters().Fallbacks[FallbackBypass].Load(); n != 1 {
		t.Fatalf("bypass fallbacks %d, want 1", n)
	}
	h := newHosts()
	msg := []byte("still encrypted after the policy change")
	atB, _ := pr.toB(pr.aSends(&h, msg, pshF))
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, msg) {
		t.Fatalf("data on the existing connection: %+v", atB)
	}
	if fi, _ := pr.ga.e.Lookup(addrA, addrB); !fi.Encrypted || fi.TEP != 0x23 {
		t.Fatalf("existing flow after Reconfigure: %+v", fi)
	}
}

// An encrypted flow picks up new rekey thresholds from then on: bytes
// (the next frame past the lowered threshold carries the rekey bit, TC-54)
// and time (an idle flow sends an empty rekey frame at the next sweep).
func TestReconfigureRekeyThresholds(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	chunk := bytes.Repeat([]byte{9}, 1400)
	w := pr.aSends(&h, chunk, pshF)
	if w[0].payload[0] != 0 {
		t.Fatal("rekey bit under the default threshold")
	}
	pr.toB(w)
	c := pr.ga.e.Config()
	c.RekeyBytes = 1000 // below the 1420 bytes already sealed under generation 0
	if err := pr.ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	w = pr.aSends(&h, chunk, pshF)
	if w[0].payload[0] != 1 {
		t.Fatalf("control byte %x after lowering rekey bytes, want the rekey bit", w[0].payload[0])
	}
	atB, back := pr.toB(w)
	if len(atB) != 1 || !bytes.Equal(atB[0].payload, chunk) || len(back) != 1 || back[0].payload[0] != 1 {
		t.Fatalf("frame under generation 1: at b %d, answer %+v", len(atB), back)
	}
	if g := flowInfo(t, pr.ga.e).KeyGeneration; g != 1 {
		t.Fatalf("G_A generation %d, want 1", g)
	}

	// By time, on G_B's idle flow: nothing under the default hour, an
	// empty rekey frame once the interval is lowered below the age of
	// the current generation.
	// G_B's rekey answer reaches G_A, whose ACK reaches G_B: nothing is
	// left for G_B to retransmit.
	_, out := pr.ga.push(Outside, tcpFrameFrom(back[0]))
	pr.gb.push(Outside, one(t, "G_A's ACK of the rekey answer", out).frame())
	_, out = pr.gb.tick(int64(2 * time.Second))
	none(t, "G_B before the change", out)
	c = pr.gb.e.Config()
	c.RekeyAfter = time.Second
	if err := pr.gb.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	_, out = pr.gb.tick(int64(sweepEvery))
	r := one(t, "G_B's rekey frame", out)
	if len(r.payload) != tcpcrypt.Overhead || r.payload[0] != 1 {
		t.Fatalf("rekey frame: %+v", r)
	}
	if pr.gb.e.Counters().Rekeys.Load() != 1 {
		t.Fatal("time rekey not counted")
	}
}

// Caps: existing flows take the new caps as limits on growth; a buffer
// already larger than a lowered cap keeps its size and what it holds, so
// the flow goes on; new flows start with the new caps.
func TestReconfigureCaps(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	w := pr.aSends(&h, bytes.Repeat([]byte{1}, 1400), pshF) // unacknowledged: held in the store
	for range 7 {
		pr.aSends(&h, bytes.Repeat([]byte{2}, 1400), pshF) // the store grows past the smallest cap
	}
	f := pr.ga.e.flows[flowKey{in: addrA, out: addrB}]
	size := len(f.enc.store.b)
	if size == 0 {
		t.Fatal("no retransmit store after sending")
	}
	c := pr.ga.e.Config()
	c.RetransmitBytes = 2 * tcpcrypt.MaxFrameLen / 16 // the smallest allowed, below the store's size
	c.DeliverBytes = 8 << 20
	if c.RetransmitBytes >= size {
		t.Fatalf("test needs a cap below the store's %d bytes", size)
	}
	if err := pr.ga.e.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	if f.enc.store.max != c.RetransmitBytes || f.rcv.plain.max != c.DeliverBytes || len(f.enc.store.b) != size {
		t.Fatalf("store cap %d size %d (was %d), deliver cap %d", f.enc.store.max, len(f.enc.store.b), size, f.rcv.plain.max)
	}
	// The bytes held are still served: a's retransmission gets the same frame.
	_, o := pr.ga.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), bytes.Repeat([]byte{1}, 1400)))
	hasBytes(t, "retransmission after the cap shrank", one(t, "retransmission", o).payload, w[0].payload)
	a2 := netip.AddrPortFrom(addrA.Addr(), 40200)
	pr.ga.push(Inside, tcpFrame(a2, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	if g := pr.ga.e.flows[flowKey{in: a2, out: addrB}]; g == nil || g.enc.store.max != c.RetransmitBytes || g.rcv.plain.max != 8<<20 {
		t.Fatal("new flow without the new caps")
	}
}

// Resumption turned off and on again at run time (TC-40): the engine keeps
// the shared cache it was given and offers from it again once allowed.
func TestReconfigureResumption(t *testing.T) {
	ga, gb := newGWCache(t, Config{TEPs: testTEPs}), newGWCache(t, Config{TEPs: testTEPs})
	connect(t, ga, gb, 40301) // fills both caches
	set := func(off bool) {
		for _, g := range []*gw{ga, gb} {
			c := g.e.Config()
			c.NoResumption = off
			if err := g.e.Reconfigure(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	set(true) // neither offers, accepts nor caches (G_B keeps conn 1's secret)
	syn, _ := connect(t, ga, gb, 40302)
	hasBytes(t, "no offer with resumption off", option(syn.opts, 69), unhex("45042423"))
	set(false)
	syn, w := connect(t, ga, gb, 40303)
	if o := option(syn.opts, 69); len(o) < 18 || o[len(o)-18] != 0xa3 {
		t.Fatalf("SYN option %x after resumption was turned back on: no resumption suboption", o)
	}
	if w.seq != isnA+1 {
		t.Fatalf("resumed data at %x, want wire offset 0", w.seq)
	}
}
