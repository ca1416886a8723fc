package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// TestSYNACKAfterRestartNotPassed, from the integration chaos soak
// (TestRestartBeforeSYNACK): a's SYN left G_A with TCP-ENO, then G_A's
// daemon restarted before the far side's SYN-ACK came back (it waited in
// G_B's port while G_B was paused, or on a slow path). G_B negotiated as
// host B: its SYN-ACK carries ENO and it holds the tuple, waiting for
// Init1. The restarted G_A has no record and the tuple is not in its
// negotiated set (the old daemon held it only at the SYN-ACK). The
// SYN-ACK must not reach a as a plain connection's: a's first bytes would
// cross the untrusted link in plaintext.
func TestSYNACKAfterRestartNotPassed(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16})
	ga := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
	gb := newGW(t, Config{TEPs: testTEPs})
	_, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil))
	syn := one(t, "G_A SYN outside", toOut)
	hasBytes(t, "SYN ENO option", option(syn.opts, 69), unhex("45042423"))
	toIn, _ := gb.push(Outside, toOut[0])
	one(t, "G_B SYN inside", toIn)
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5000), nil))
	synack := toOut[0]
	hasBytes(t, "SYN-ACK ENO option", option(one(t, "G_B SYN-ACK outside", toOut).opts, 69), unhex("45040123"))

	ga2 := restarted(t, set) // G_A's daemon restarts; the SYN-ACK reaches the new one
	if toIn, _ = ga2.push(Outside, synack); len(toIn) != 0 {
		t.Fatalf("the restarted G_A passed the far side's SYN-ACK with TCP-ENO to a: a's bytes would cross the untrusted link in plaintext")
	}
	// a retransmits its SYN a second later (RFC 6298 §2.1): this run sends
	// it with our option, and b's next SYN-ACK meets a record.
	ga2.now += int64(time.Second)
	_, toOut = ga2.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil))
	hasBytes(t, "retransmitted SYN's ENO option", option(one(t, "G_A SYN outside", toOut).opts, 69), unhex("45042423"))
	gb.now += int64(time.Second)
	gb.push(Outside, toOut[0])
	_, toOut = gb.push(Inside, tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5001), nil))
	one(t, "b's SYN-ACK again", toOut)
	toIn, _ = ga2.push(Outside, toOut[0])
	if s := one(t, "SYN-ACK to a", toIn); option(s.opts, 69) != nil {
		t.Fatalf("SYN-ACK to a carries ENO: %+v", s)
	}
	// a's third segment; Init1, Init2 and the ACKs go back and forth.
	_, toOut = ga2.push(Inside, tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(1002, 5001), nil))
	settle(t, ga2, gb, toOut)
	fa, fb := flowInfo(t, ga2.e), flowInfo(t, gb.e)
	if !fa.Encrypted || !fb.Encrypted || fa.SessionID != fb.SessionID {
		t.Fatalf("after a's second SYN: G_A %+v, G_B %+v; want one encrypted session", fa, fb)
	}
}

// Past startWindow an untracked SYN-ACK with TCP-ENO passes as it came:
// its SYN took another path (asymmetric routing, another appliance beside
// this one), and dropping it would keep the connection from ever opening
// where plain TCP would carry it.
func TestSYNACKWithENOPassesAfterStartWindow(t *testing.T) {
	ga := newGW(t, Config{TEPs: testTEPs})
	ga.now += startWindow
	synack := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, append(synOpts(1460, 5000), 69, 4, 0x01, 0x23), nil)
	toIn, _ := ga.push(Outside, synack)
	one(t, "SYN-ACK to a", toIn)
}

// TestRestartSYNACKAfterResumptionOffer: the previous run's SYN offered
// resumption (its cache held a secret for b); G_B accepted it in its
// SYN-ACK. G_A restarts (fresh cache), drops that SYN-ACK (earlySYNACK),
// and a's SYN retransmission leaves with a fresh offer. G_B must answer the
// repeat, not the first SYN, for the connection to end in one encrypted
// session (before the negotiate.go change: G_B's SYN-ACK again accepts the
// resumption, G_A falls back, "no valid TEP suboption", G_B on the third
// segment without ENO: plain, as before earlySYNACK).
func TestRestartSYNACKAfterResumptionOffer(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 64})
	cfg := Config{TEPs: testTEPs}
	cache := func() *tcpcrypt.Cache[netip.Addr] { return tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{}) }
	ga := newGWDeps(t, cfg, Deps{Negotiated: set, Cache: cache()})
	ga.undrained = true // the daemon that stops
	gb := newGWDeps(t, cfg, Deps{Cache: cache()})
	connect(t, ga, gb, 40001) // seeds both caches

	a := netip.AddrPortFrom(addrA.Addr(), 40002)
	synA := tcpFrame(a, addrB, isnA, 0, synF, 64240, synOpts(1460, 1000), nil)
	_, toOut := ga.push(Inside, synA)
	if o := option(one(t, "old run's SYN", toOut).opts, 69); len(o) <= 4 {
		t.Fatalf("old run's SYN option %x offers no resumption", o)
	}
	gb.push(Outside, toOut[0])
	_, toOut = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5000), nil))
	synack := one(t, "G_B SYN-ACK", toOut).frame()

	ga2 := newGWDeps(t, cfg, Deps{Negotiated: set, Cache: cache()}) // restarted: empty cache
	if toIn, _ := ga2.push(Outside, synack); len(toIn) != 0 {
		t.Fatal("the restarted G_A passed the SYN-ACK")
	}
	ga2.now += int64(time.Second)
	gb.now += int64(time.Second)
	_, toOut = ga2.push(Inside, synA)
	hasBytes(t, "new run's SYN option", option(one(t, "new run's SYN", toOut).opts, 69), unhex("45042423"))
	gb.push(Outside, toOut[0])
	_, toOut = gb.push(Inside, tcpFrame(addrB, a, isnB, isnA+1, synF|ackF, 65160, synOpts(1460, 5001), nil))
	toIn, _ := ga2.push(Outside, one(t, "b's SYN-ACK again", toOut).frame())
	one(t, "SYN-ACK to a", toIn)
	_, toOut = ga2.push(Inside, tcpFrame(a, addrB, isnA+1, isnB+1, ackF, 502, tsOpt(1002, 5001), nil))
	settle(t, ga2, gb, toOut)
	fa := flowInfo(t, ga2.e)
	var fb FlowInfo
	gb.e.Flows(func(fi FlowInfo) {
		if fi.Outside == a {
			fb = fi
		}
	})
	if !fa.Encrypted || !fb.Encrypted || fa.SessionID != fb.SessionID {
		t.Fatalf("G_A %s (%s), G_B %s (%s): want one encrypted session", fa.State, fa.FallbackReason, fb.State, fb.FallbackReason)
	}
}

// settle carries what G_A sent toward the far side to G_B and G_B's
// answers back, until neither sends more (the Init exchange and its ACKs).
func settle(t *testing.T, ga, gb *gw, toOut [][]byte) {
	t.Helper()
	for round := 0; len(toOut) > 0; round++ {
		if round == 8 {
			t.Fatal("the key exchange did not settle in 8 rounds")
		}
		var back [][]byte
		for _, f := range toOut {
			_, o := gb.push(Outside, f)
			back = append(back, o...)
		}
		toOut = nil
		for _, f := range back {
			_, o := ga.push(Outside, f)
			toOut = append(toOut, o...)
		}
	}
}
