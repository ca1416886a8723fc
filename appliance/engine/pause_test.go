package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// The far appliance stops for 45 s (SIGSTOP: a paused virtual machine, a
// live migration) right after it passed its host's SYN-ACK, before it took
// our third segment and Init1: they wait in its port's ring with every
// copy of Init1, while host a retransmits its first bytes (held here until
// the keys exist) with a growing timeout, as it would through a paused
// bridge. Plain TCP survives such a stall (the hosts retransmit for
// minutes), so the connection must too: G_A must not give up on its Init1
// and reset host a. Before, it gave up after InitTries (6) retransmissions,
// 200 ms x (2^7 - 1) = 25.4 s after the first Init1, and reset both
// hosts: the far appliance found only an RST when it went on.
func TestFarApplianceStalledDuringKeyExchange(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	backlog := toThirdSegment(ga, gb) // third segment and Init1, for G_B's ring
	hdr := make([]byte, 32)
	data := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, tsOpt(3, 2), hdr)
	if in, out := ga.push(Inside, data); len(in)+len(out) != 0 {
		t.Fatalf("a's first bytes before the keys: %d frames to a, %d out; want them held", len(in), len(out))
	}
	const stall = 45 * time.Second
	step := int64(10 * time.Millisecond)
	nextHost, hostRTO := int64(200*time.Millisecond), int64(200*time.Millisecond)
	for el := int64(0); el < int64(stall); el += step {
		toIn, toOut := ga.tick(step)
		backlog = append(backlog, toOut...)
		for _, f := range toIn {
			if s := parse(t, f); s.flags&rstF != 0 {
				t.Fatalf("G_A reset host a %v into the far appliance's stall (flags %#x; the connection would have survived in plain TCP)", time.Duration(el+step), s.flags)
			}
		}
		if el+step >= nextHost { // a retransmits its bytes, backing off
			ga.push(Inside, data)
			hostRTO *= 2
			nextHost += hostRTO
		}
	}
	// G_B goes on and takes its ring: the third segment, Init1 and copies.
	var init2 [][]byte
	for _, f := range backlog {
		_, out := gb.push(Outside, f)
		init2 = append(init2, out...)
	}
	if len(init2) == 0 {
		t.Fatal("G_B answered nothing from its backlog")
	}
	for _, f := range init2 {
		ga.push(Outside, f)
	}
	if fi := flowInfo(t, ga.e); !fi.Encrypted {
		t.Fatalf("G_A after the far appliance's stall: %+v, want encrypted", fi)
	}
}

// Segments from the far side that the engine drops in SYN-SENT (an RST or
// ACK at another number, a SYN-ACK that acknowledges something else: what
// a blind sender who knows the tuple can send) are no progress: they must
// not hide the host's SYN retransmissions, a timeout apart, from the count
// of SYNs with TCP-ENO (synRetransmitGap). Before, such a segment every
// 100 ms kept every retransmission within 200 ms of the flow's "previous
// segment": no copy counted and every SYN kept the option, so on a path
// that drops SYNs with TCP-ENO the connection never connected.
func TestDroppedFarSegmentsLeaveSYNCountAlone(t *testing.T) {
	for _, c := range []struct {
		name   string
		forged func() []byte
	}{
		{"rst-no-ack", func() []byte { return tcpFrame(addrB, addrA, 12345, 0, rstF, 0, nil, nil) }},
		{"ack-wrong", func() []byte { return tcpFrame(addrB, addrA, 12345, isnA+999, ackF, 100, nil, nil) }},
		{"synack-wrong-ack", func() []byte {
			return tcpFrame(addrB, addrA, isnB, isnA+77, synF|ackF, 65160, synOpts(1460, 2), nil)
		}},
		{"none", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ga := newGW(t, Config{TEPs: testTEPs})
			syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil)
			withENO := 0
			for i := range 6 {
				if i > 0 {
					for range 10 { // the host's 1 s timeout; a forged segment every 100 ms
						ga.now += int64(100 * time.Millisecond)
						if c.forged != nil {
							ga.push(Outside, c.forged())
						}
					}
				}
				_, toOut := ga.push(Inside, syn)
				if o := option(one(t, "SYN", toOut).opts, 69); o != nil {
					withENO++
				}
			}
			if withENO != DefaultSYNsWithENO {
				t.Errorf("%d of 6 SYNs left with ENO, want %d", withENO, DefaultSYNsWithENO)
			}
			if n := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load(); n != 1 {
				t.Errorf("%d syn_retries fallbacks, want 1", n)
			}
		})
	}
}

// To a far address that completed an encrypted handshake within the hour,
// two more SYNs keep TCP-ENO (its path carries the option: lost SYNs
// met loss or a blackout), then one goes without it as usual. Before, a
// blackout of 3 s turned every connection opened in it plain for its whole
// life, also to peers whose path had just carried the option.
func TestSYNsWithENOToKnownPeer(t *testing.T) {
	pr := handshake(t)
	ga := pr.ga
	a2 := netip.AddrPortFrom(addrA.Addr(), 40002)
	syn := tcpFrame(a2, addrB, isnA+7, 0, synF, 64240, synOpts(1460, 1), nil)
	var first []byte
	for i := range DefaultSYNsWithENO + 2 + 1 {
		ga.now += int64(time.Second)
		_, toOut := ga.push(Inside, syn)
		o := option(one(t, "SYN", toOut).opts, 69)
		if i == 0 {
			first = o
		}
		switch want := i < DefaultSYNsWithENO+2; {
		case want && (o == nil || !bytes.Equal(o, first)):
			t.Fatalf("SYN %d to a known peer: ENO option %x, want the first SYN's %x", i+1, o, first)
		case !want && o != nil:
			t.Fatalf("SYN %d to a known peer: ENO option %x, want none", i+1, o)
		}
	}
	if n := ga.e.Counters().Fallbacks[FallbackSYNRetries].Load(); n != 1 {
		t.Fatalf("%d syn_retries fallbacks, want 1", n)
	}
}
