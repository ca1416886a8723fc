package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// fragmentFrame cuts frame into fragments of chunk data bytes
// (packettest.Fragments).
func fragmentFrame(t *testing.T, frame []byte, chunk int, id uint32) [][]byte {
	t.Helper()
	return packettest.Fragments(frame, chunk, id)
}

var marker = []byte("FRAGMARKER-0123456789")

func markerData(n int) []byte {
	d := make([]byte, n)
	for i := 0; i < n; i += 64 {
		copy(d[i:], marker)
	}
	return d
}

// pushAll hands frames to the engine from one port and gathers the output
// (fragments passed on included, which gw.push's checks would refuse).
func (g *gw) pushAll(from PortID, frames [][]byte) (toIn, toOut [][]byte) {
	for _, f := range frames {
		i, o := g.rawPush(from, f)
		toIn, toOut = append(toIn, i...), append(toOut, o...)
	}
	return toIn, toOut
}

func (g *gw) rawPush(from PortID, frame []byte) (toIn, toOut [][]byte) {
	fr := slices.Clone(frame)
	switch g.e.Handle(g.now, from, fr, g.tx) {
	case Passthrough, ForwardInPlace:
		s := g.out
		if from == Outside {
			s = g.in
		}
		s.out = append(s.out, fr)
	}
	return g.in.take(), g.out.take()
}

// noPlainFragments fails if a frame carries the marker or is a fragment.
func noPlainFragments(t *testing.T, what string, frames [][]byte) {
	t.Helper()
	for _, f := range frames {
		if bytes.Contains(f, marker[:10]) {
			t.Fatalf("%s: plaintext marker in %x", what, f)
		}
		var p packet.Packet
		if p.Decode(f) == nil && p.IsFragment() {
			t.Fatalf("%s: a fragment left: %x", what, f)
		}
	}
}

// aSegment is a's next data segment of n marker bytes.
func (pr *pair) aSegment(h *hosts, n int) []byte {
	pr.tsA++
	fr := tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), markerData(n))
	h.aNext += uint32(n)
	return fr
}

// deliveredToB passes G_A's wire segments through G_B and returns the
// bytes that reached b.
func (pr *pair) deliveredToB(wire [][]byte) []byte {
	pr.t.Helper()
	var got []byte
	for _, w := range wire {
		toIn, _ := pr.gb.push(Outside, w)
		for _, f := range toIn {
			got = append(got, parse(pr.t, f).payload...)
		}
	}
	return got
}

func fragCount(e *Engine, ev int) uint64 { return e.Counters().Frag[ev].Load() }

// A segment of an encrypted connection that a router inside enclave A
// fragmented (the host sends without DF): G_A reassembles it, in order and
// out of order, and seals it into frames that fit where the fragments did;
// b gets the bytes; no fragment and no plaintext leaves. Before, the first
// fragment was dropped and the later ones left as they came: the
// connection stalled and its plaintext crossed the untrusted link.
func TestFragmentsOfEncryptedFlowReassembled(t *testing.T) {
	for _, c := range []struct {
		name  string
		order []int
		v6    bool
	}{
		{"in order", []int{0, 1, 2}, false},
		{"last first", []int{2, 1, 0}, false},
		{"first in the middle", []int{1, 0, 2}, false},
		{"IPv6 in order", []int{0, 1, 2}, true},
		{"IPv6 out of order", []int{2, 0, 1}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var pr *pair
			a, b := addrA, addrB
			if c.v6 {
				a, b = netip.AddrPortFrom(packettest.HostA6, 40000), netip.AddrPortFrom(packettest.HostB6, 443)
				ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
				_, w := connectAddrs(t, ga, gb, a, b)
				gb.push(Outside, w.frame()) // "data"
				pr = &pair{t: t, ga: ga, gb: gb}
			} else {
				pr = handshake(t)
			}
			// One 1400-byte segment in 600-byte pieces.
			data := markerData(1400)
			var seg []byte
			if c.v6 {
				seg = tcpFrame(a, b, isnA+1+4, isnB+1, ackF|pshF, 502, tsOpt(9, 2), data)
			} else {
				h := newHosts()
				seg = pr.aSegment(&h, 1400)
			}
			frags := fragmentFrame(t, seg, 600, 77)
			if len(frags) != 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			var toIn, toOut [][]byte
			for i, k := range c.order {
				in, out := pr.ga.rawPush(Inside, frags[k])
				toIn, toOut = append(toIn, in...), append(toOut, out...)
				if i < 2 && len(out)+len(in) != 0 {
					t.Fatalf("fragment %d of 3: %d frames out before the datagram was whole", i+1, len(out)+len(in))
				}
			}
			none(t, "to a", toIn)
			noPlainFragments(t, "G_A outside", toOut)
			if len(toOut) < 2 {
				t.Fatalf("%d wire segments, want the datagram in frames that fit", len(toOut))
			}
			// Every frame fits where the largest fragment did. The
			// host sent a datagram routers may fragment (no DF): so
			// are the frames over IPv4, each with its own
			// identification (RFC 6864 §4.1).
			ids := map[uint16]bool{}
			for _, f := range toOut {
				var p packet.Packet
				p.Decode(f)
				if l := p.End() - p.L3Offset(); l > len(frags[0])-14 {
					t.Fatalf("wire frame of %d IP bytes, the fragments had %d", l, len(frags[0])-14)
				}
				if !c.v6 {
					if f[14+6]&0x40 != 0 || ids[binary.BigEndian.Uint16(f[14+4:])] {
						t.Fatalf("wire frame with DF, or with an identification used before: %x", f[14:34])
					}
					ids[binary.BigEndian.Uint16(f[14+4:])] = true
				}
			}
			if got := pr.deliveredToB(toOut); !bytes.Equal(got, data) {
				t.Fatalf("b got %d bytes, want the 1400 sent", len(got))
			}
			if n := fragCount(pr.ga.e, FragReassembled); n != 1 {
				t.Fatalf("reassembled %d", n)
			}
		})
	}
}

// Fragments from the outside of a negotiated connection (a router on the
// untrusted path fragmented G_A's frame): G_B reassembles them, opens the
// frame and delivers the bytes; no fragment reaches b. A lone non-first
// fragment never crosses, in either direction.
func TestFragmentsFromOutsideReassembled(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	_, wire := pr.ga.push(Inside, pr.aSegment(&h, 1000))
	if len(wire) != 1 {
		t.Fatalf("%d wire segments", len(wire))
	}
	frags := fragmentFrame(t, wire[0], 400, 5)
	toIn, toOut := pr.gb.pushAll(Outside, [][]byte{frags[2], frags[0], frags[1]})
	noPlainFragments(t, "G_B outside", toOut)
	var got []byte
	for _, f := range toIn {
		var p packet.Packet
		if p.Decode(f) != nil || p.IsFragment() {
			t.Fatalf("a fragment reached b: %x", f)
		}
		got = append(got, p.Payload()...)
	}
	if !bytes.Equal(got, markerData(1000)) {
		t.Fatalf("b got %d bytes, want 1000", len(got))
	}

	// A non-first fragment alone, from either side: held, then discarded
	// at the timeout; nothing leaves.
	lone := fragmentFrame(t, pr.aSegment(&h, 1000), 400, 6)[1]
	in1, out1 := pr.ga.push(Inside, lone)
	lone2 := fragmentFrame(t, wire[0], 400, 7)[2]
	in2, out2 := pr.gb.rawPush(Outside, lone2)
	ti1, to1 := pr.ga.tick(int64(6 * time.Second))
	ti2, to2 := pr.gb.tick(int64(6 * time.Second))
	for _, fs := range [][][]byte{in1, out1, in2, out2, ti1, to1, ti2, to2} {
		if len(fs) != 0 {
			t.Fatalf("a lone non-first fragment made %d frames leave", len(fs))
		}
	}
	if fragCount(pr.ga.e, FragTimeout) != 1 || fragCount(pr.gb.e, FragTimeout) != 1 {
		t.Fatalf("timeouts: G_A %d, G_B %d", fragCount(pr.ga.e, FragTimeout), fragCount(pr.gb.e, FragTimeout))
	}
}

// Fragments of connections the engine does not handle (unknown, or plain)
// pass unchanged, also a non-first one that comes before its first (held
// until the first decides).
func TestFragmentsOfUnknownFlowPass(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs})
	other := netip.AddrPortFrom(addrB.Addr(), 8080)
	seg := tcpFrame(addrA, other, 1000, 2000, ackF|pshF, 502, nil, markerData(1400))
	frags := fragmentFrame(t, seg, 512, 99)
	for _, from := range []PortID{Inside, Outside} {
		in, out := g.rawPush(from, frags[1])
		if len(in)+len(out) != 0 {
			t.Fatalf("non-first fragment before the first: %d frames left", len(in)+len(out))
		}
		in, out = g.pushAll(from, [][]byte{frags[0], frags[2]})
		got := append(in, out...)
		if from == Inside && len(in) != 0 || from == Outside && len(out) != 0 || len(got) != 3 {
			t.Fatalf("from %d: %d in, %d out", from, len(in), len(out))
		}
		// All three, unchanged (the held one goes first).
		want := [][]byte{frags[1], frags[0], frags[2]}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("from %d: fragment %d changed", from, i)
			}
		}
		// Every fragment went by: the decision is forgotten at once (a
		// busy plain flow must not fill the table), and the same id
		// makes a new decision.
		if len(g.e.frags.m) != 0 {
			t.Fatalf("from %d: %d datagrams still tracked", from, len(g.e.frags.m))
		}
	}
	if n := fragCount(g.e, FragPassed); n != 6 {
		t.Fatalf("passed %d, want 6", n)
	}
}

// Fragments of a tuple in the negotiated set that this engine has no record
// of (a previous run encrypted the connection) never cross, in either
// direction: from the inside they may be plaintext, from the outside
// ciphertext for the host. The datagram, once whole, is a stray segment of
// that connection like any other (strayReset): its sender gets an RST, the
// other end a probe, neither with payload.
func TestFragmentsOfNegotiatedTupleWithoutRecordDropped(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{})
	set.Add(addrA, addrB, time.Time{})
	g := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
	for _, from := range []PortID{Inside, Outside} {
		src, dst := addrA, addrB
		if from == Outside {
			src, dst = addrB, addrA
		}
		seg := tcpFrame(src, dst, 1000, 2000, ackF|pshF, 502, nil, markerData(1400))
		in, out := g.pushAll(from, fragmentFrame(t, seg, 512, 7))
		noPlainFragments(t, "to the inside", in)
		noPlainFragments(t, "to the outside", out)
		back, on := in, out
		if from == Outside {
			back, on = out, in
		}
		rst, probe := one(t, "to the sender", back), one(t, "onward", on)
		if rst.flags&rstF == 0 || len(rst.payload) != 0 || probe.flags != ackF || len(probe.payload) != 0 {
			t.Fatalf("from %d: %+v back, %+v onward", from, rst, probe)
		}
	}
	if n := g.e.Counters().Drops[DropStale].Load(); n == 0 {
		t.Fatal("no stale drop counted")
	}
}

// RFC 5722: an overlapping fragment discards the whole datagram, including
// fragments still to come; an exact duplicate is dropped alone.
func TestFragmentOverlapAndDuplicate(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	seg := pr.aSegment(&h, 1400)
	frags := fragmentFrame(t, seg, 600, 11)
	// A forged fragment overlapping the second, with other bytes.
	bad := slices.Clone(frags[1])
	var p packet.Packet
	p.Decode(bad)
	binary.BigEndian.PutUint16(bad[p.L3Offset()+6:], 0x2000|uint16(592/8))
	ip := bad[p.L3Offset():]
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20], 0))
	toIn, toOut := pr.ga.pushAll(Inside, [][]byte{frags[0], bad, frags[1], frags[2]})
	if len(toIn)+len(toOut) != 0 {
		t.Fatalf("overlap: %d frames left", len(toIn)+len(toOut))
	}
	if fragCount(pr.ga.e, FragOverlap) != 1 || fragCount(pr.ga.e, FragDiscarded) != 2 {
		t.Fatalf("overlap %d, discarded %d", fragCount(pr.ga.e, FragOverlap), fragCount(pr.ga.e, FragDiscarded))
	}
	// The host resends the segment (a new datagram id): a duplicate
	// fragment is dropped alone and the datagram goes through.
	frags = fragmentFrame(t, seg, 600, 12)
	_, toOut = pr.ga.pushAll(Inside, [][]byte{frags[0], frags[1], frags[1], frags[2]})
	noPlainFragments(t, "G_A outside", toOut)
	if got := pr.deliveredToB(toOut); !bytes.Equal(got, markerData(1400)) {
		t.Fatalf("b got %d bytes after the resend", len(got))
	}
	if fragCount(pr.ga.e, FragDuplicate) != 1 {
		t.Fatalf("duplicates %d", fragCount(pr.ga.e, FragDuplicate))
	}
}

// A datagram that does not complete within the timeout is discarded; the
// fragments that come later are held and discarded in turn.
func TestFragmentTimeout(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	frags := fragmentFrame(t, pr.aSegment(&h, 1400), 600, 21)
	pr.ga.rawPush(Inside, frags[0])
	pr.ga.tick(int64(5*time.Second + time.Millisecond))
	if fragCount(pr.ga.e, FragTimeout) != 1 {
		t.Fatalf("timeouts %d", fragCount(pr.ga.e, FragTimeout))
	}
	toIn, toOut := pr.ga.pushAll(Inside, frags[1:])
	ti, to := pr.ga.tick(int64(6 * time.Second))
	if n := len(toIn) + len(toOut) + len(ti) + len(to); n != 0 {
		t.Fatalf("%d frames left after the timeout", n)
	}
	if fragCount(pr.ga.e, FragTimeout) != 2 || len(pr.ga.e.frags.m) != 0 || pr.ga.e.frags.mem != 0 {
		t.Fatalf("timeouts %d, %d datagrams and %d bytes left", fragCount(pr.ga.e, FragTimeout), len(pr.ga.e.frags.m), pr.ga.e.frags.mem)
	}
}

// The limits: datagrams per flow under reassembly, datagrams tracked,
// memory. A datagram over a limit is dropped whole (never passed); with
// the table full, a new datagram takes the oldest one's place, so two
// interleaved datagrams with room for one both fail.
func TestFragmentLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  FragConfig
	}{
		{"per flow", FragConfig{PerFlow: 1}},
		{"datagrams", FragConfig{MaxDatagrams: 1}},
		{"memory", FragConfig{Memory: 1000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr := handshake(t)
			pr.ga.e.cfg.Fragments = c.cfg
			pr.ga.e.cfg.Fragments.defaults()
			h := newHosts()
			f1 := fragmentFrame(t, pr.aSegment(&h, 1400), 600, 31)
			f2 := fragmentFrame(t, pr.aSegment(&h, 1400), 600, 32)
			var out [][]byte
			for i := range f1 {
				a, b := pr.ga.pushAll(Inside, [][]byte{f1[i], f2[i]})
				out = append(append(out, a...), b...)
			}
			noPlainFragments(t, "G_A", out)
			if fragCount(pr.ga.e, FragLimit) == 0 {
				t.Fatal("no limit counted")
			}
			if c.name == "per flow" && fragCount(pr.ga.e, FragReassembled) != 1 {
				t.Fatalf("reassembled %d, want the first datagram", fragCount(pr.ga.e, FragReassembled))
			}
			pr.ga.tick(int64(6 * time.Second))
			if len(pr.ga.e.frags.m) != 0 || pr.ga.e.frags.mem != 0 || len(pr.ga.e.frags.perFlow) != 0 {
				t.Fatalf("state left: %d datagrams, %d bytes, %d flows", len(pr.ga.e.frags.m), pr.ga.e.frags.mem, len(pr.ga.e.frags.perFlow))
			}
		})
	}
}

// A fragmented ICMP error from the inside quoting a segment G_B delivered
// (plaintext): every fragment is dropped, the non-first one included. One
// quoting an unknown connection passes.
func TestFragmentedICMPErrorQuotingPlaintext(t *testing.T) {
	pr := handshake(t)
	secret := bytes.Repeat([]byte("SECRET"), 80)
	delivered := tcpFrame(addrA, addrB, isnA+1, isnB+1, ackF|pshF, 502, nil, secret)
	mk := func(q []byte, id uint32) [][]byte {
		icmp := packettest.Frame{Src: addrB.Addr(), Dst: addrA.Addr(), Proto: 1,
			L4: packettest.ICMP(3, 3, 0, packettest.Quote(q, 548))}.Bytes()
		return fragmentFrame(t, icmp, 256, id)
	}
	frags := mk(delivered, 41)
	toIn, toOut := pr.gb.pushAll(Inside, [][]byte{frags[1], frags[0], frags[2]})
	if len(toIn)+len(toOut) != 0 {
		t.Fatalf("%d frames left", len(toIn)+len(toOut))
	}
	if fragCount(pr.gb.e, FragQuoteDropped) != 1 {
		t.Fatalf("quote drops %d", fragCount(pr.gb.e, FragQuoteDropped))
	}
	other := tcpFrame(addrA, netip.AddrPortFrom(addrB.Addr(), 8080), 1, 1, ackF, 502, nil, secret)
	toIn, toOut = pr.gb.pushAll(Inside, mk(other, 42))
	if len(toOut) != 3 || len(toIn) != 0 {
		t.Fatalf("unknown connection: %d out", len(toOut))
	}
}

// An IPv6 datagram whose reassembled form holds another Fragment header
// (an atomic fragment inside a fragment) is dropped, not reassembled again
// level after level.
func TestNestedFragmentHeaderDropped(t *testing.T) {
	a, b := netip.AddrPortFrom(packettest.HostA6, 40000), netip.AddrPortFrom(packettest.HostB6, 443)
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, w := connectAddrs(t, ga, gb, a, b)
	gb.push(Outside, w.frame())
	seg := tcpFrame(a, b, isnA+1+4, isnB+1, ackF|pshF, 502, nil, markerData(64))
	inner := fragmentFrame(t, seg, 1024, 1)[0] // an atomic fragment
	outer := fragmentFrame(t, inner, 1024, 2)
	toIn, toOut := ga.pushAll(Inside, outer)
	if len(toIn)+len(toOut) != 0 || fragCount(ga.e, FragBad) != 1 {
		t.Fatalf("%d frames left, %d bad", len(toIn)+len(toOut), fragCount(ga.e, FragBad))
	}
}

// FuzzFragments: any set of fragments (offsets, lengths, M flags, order,
// either port) of a datagram of the encrypted flow: nothing panics, no
// plaintext and no fragment leaves, and after the timeout nothing is left
// held or charged.
func FuzzFragments(f *testing.F) {
	f.Add(true, []byte{0, 75, 1, 75, 75, 1, 150, 100, 0})
	f.Add(true, []byte{150, 100, 0, 0, 75, 1, 70, 10, 1, 75, 75, 1})
	f.Add(false, []byte{0, 10, 1, 10, 10, 0})
	f.Fuzz(func(t *testing.T, inside bool, ops []byte) {
		if len(ops) > 3*64 {
			return
		}
		pr := handshake(t)
		h := newHosts()
		seg := pr.aSegment(&h, 2000)
		from, g := Inside, pr.ga
		if !inside {
			_, wire := pr.ga.rawPush(Inside, seg)
			if len(wire) == 0 {
				return
			}
			seg, from, g = wire[0], Outside, pr.gb
		}
		// Room for two datagrams: interleaved ones (op bits 1-2 pick the
		// identification) take each other's places.
		g.e.cfg.Fragments = FragConfig{MaxDatagrams: 2, Memory: 8192}
		g.e.cfg.Fragments.defaults()
		var p packet.Packet
		if p.Decode(seg) != nil {
			t.Fatal("seg")
		}
		head, data := seg[:34], seg[34:p.End()]
		for i := 0; i+3 <= len(ops); i += 3 {
			o, n := int(ops[i])*8, int(ops[i+1])*8
			if o >= len(data) {
				continue
			}
			n = min(max(n, 8), len(data)-o)
			fr := append(slices.Clone(head), data[o:o+n]...)
			fo := uint16(o / 8)
			if ops[i+2]&1 != 0 {
				fo |= 0x2000
			}
			ip := fr[14:]
			binary.BigEndian.PutUint16(ip[2:], uint16(len(fr)-14))
			binary.BigEndian.PutUint16(ip[4:], uint16(ops[i+2]>>1&3))
			binary.BigEndian.PutUint16(ip[6:], fo)
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20], 0))
			toIn, toOut := g.rawPush(from, fr)
			checkFragOutput(t, inside, toIn, toOut)
		}
		ti, to := g.tick(int64(6 * time.Second))
		checkFragOutput(t, inside, ti, to)
		if len(g.e.frags.m) != 0 || g.e.frags.mem != 0 || len(g.e.frags.perFlow) != 0 {
			t.Fatalf("left: %d datagrams, %d bytes, %d flows", len(g.e.frags.m), g.e.frags.mem, len(g.e.frags.perFlow))
		}
	})
}

// checkFragOutput: no fragment leaves either way, and no plaintext toward
// the outside (from the outside, G_B delivers plaintext to b: that is its
// job, but only whole authenticated segments).
func checkFragOutput(t *testing.T, inside bool, toIn, toOut [][]byte) {
	t.Helper()
	noPlainFragments(t, "toward the outside", toOut)
	if inside {
		noPlainFragments(t, "back inside", toIn)
		return
	}
	for _, f := range toIn {
		if p := checkFrame(t, f); p.IsFragment() {
			t.Fatalf("a fragment reached b: %x", f)
		}
	}
}

// An atomic fragment (RFC 6946: offset 0, M clear; a translator adds such
// Fragment headers) of a plain flow passes and leaves no state behind; one
// of an encrypted flow is handled at once, without its Fragment header.
func TestAtomicFragment(t *testing.T) {
	a, b := netip.AddrPortFrom(packettest.HostA6, 40000), netip.AddrPortFrom(packettest.HostB6, 443)
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	_, w := connectAddrs(t, ga, gb, a, b)
	gb.push(Outside, w.frame())
	other := netip.AddrPortFrom(packettest.HostB6, 8080)
	plain := fragmentFrame(t, tcpFrame(a, other, 1, 1, ackF, 502, nil, markerData(100)), 1024, 3)
	toIn, toOut := ga.pushAll(Inside, plain)
	if len(toIn) != 0 || len(toOut) != 1 || !bytes.Equal(toOut[0], plain[0]) || len(ga.e.frags.m) != 0 {
		t.Fatalf("plain atomic fragment: %d in, %d out, %d datagrams tracked", len(toIn), len(toOut), len(ga.e.frags.m))
	}
	enc := fragmentFrame(t, tcpFrame(a, b, isnA+1+4, isnB+1, ackF|pshF, 502, nil, markerData(100)), 1024, 4)
	_, toOut = ga.pushAll(Inside, enc)
	noPlainFragments(t, "G_A outside", toOut)
	if got := (&pair{t: t, ga: ga, gb: gb}).deliveredToB(toOut); !bytes.Equal(got, markerData(100)) || len(ga.e.frags.m) != 0 {
		t.Fatalf("encrypted atomic fragment: b got %d bytes, %d datagrams tracked", len(got), len(ga.e.frags.m))
	}
}

// A TCP fragment from the outside skipped the engine and went to the inside
// host as it came: a first fragment carrying a forged segment of an
// encrypted connection (host sequence numbers are easy to work out from the
// frame lengths on the wire) would, once the host reassembled it, put
// unauthenticated bytes into the stream. Fragments of a negotiated
// connection are reassembled by the engine (frag.go), never passed: this
// forged one never completes and is discarded at the timeout; those of
// other connections still pass.
func TestOutsideFragmentOfEncryptedFlowDropped(t *testing.T) {
	pr := handshake(t)
	mk := func(src netip.AddrPort, id uint16) []byte {
		frag := packettest.Frame{Src: src.Addr(), Dst: addrA.Addr(), MoreFragments: true, TCP: &packettest.TCP{
			SrcPort: src.Port(), DstPort: addrA.Port(), Seq: isnB + 1, Ack: isnA + 1, Flags: ackF | pshF,
			Window: 1000, Payload: []byte("INJECTED....")}}.Bytes()
		binary.BigEndian.PutUint16(frag[14+4:], id)
		frag[14+10], frag[14+11] = 0, 0
		binary.BigEndian.PutUint16(frag[14+10:], packet.Checksum(frag[14:34], 0))
		return frag
	}
	if v := pr.ga.e.Handle(0, Outside, mk(addrB, 1), pr.ga.tx); v != Consumed {
		t.Fatalf("first fragment of the encrypted flow: verdict %v", v)
	}
	pr.ga.tick(int64(6 * time.Second))
	if n := len(pr.ga.in.take()) + len(pr.ga.out.take()); n != 0 || pr.ga.e.Counters().Frag[FragTimeout].Load() != 1 {
		t.Fatalf("%d frames left, %d timeouts", n, pr.ga.e.Counters().Frag[FragTimeout].Load())
	}
	// Nor does a first fragment of another connection go anywhere alone:
	// every fragment waits for its datagram (held, then discarded).
	other := netip.AddrPortFrom(addrB.Addr(), 81)
	if v := pr.ga.e.Handle(0, Outside, mk(other, 2), pr.ga.tx); v != Consumed {
		t.Fatalf("first fragment of an unknown flow: verdict %v", v)
	}
	pr.ga.tick(int64(12 * time.Second))
	if n := len(pr.ga.in.take()) + len(pr.ga.out.take()); n != 0 || pr.ga.e.Counters().Frag[FragTimeout].Load() != 2 {
		t.Fatalf("%d frames left, %d timeouts", n, pr.ga.e.Counters().Frag[FragTimeout].Load())
	}
}

// A forged first fragment decided its datagram's fate for every fragment
// with the same identification: one from the outside, naming a connection
// the engine does not handle, made G_A pass the fragments of an encrypted
// connection's segment that host a sent with that identification to the
// untrusted link as they came (plaintext), and made G_B pass the fragments
// of a wire frame to host b (ciphertext at wire sequence numbers, in its
// window). A datagram is now named with the port it came in at, and no
// fragment goes anywhere before its datagram is whole and checks out: a
// second first fragment overlaps the first (RFC 5722), and a forged first
// fragment completing a real datagram's later ones fails the checksum.
func TestForgedFirstFragmentCarriesNothing(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	other := netip.AddrPortFrom(addrB.Addr(), 8080)
	forgedFirst := func(src, dst netip.AddrPort, id uint32) []byte {
		return fragmentFrame(t, tcpFrame(src, dst, 1, 1, ackF, 502, nil, make([]byte, 1400)), 600, id)[0]
	}

	// From the outside, about host a's datagram from the inside.
	if in, out := pr.ga.rawPush(Outside, forgedFirst(addrA, other, 77)); len(in)+len(out) != 0 {
		t.Fatalf("a forged first fragment went on alone: %d frames", len(in)+len(out))
	}
	data := markerData(1400)
	_, toOut := pr.ga.pushAll(Inside, fragmentFrame(t, pr.aSegment(&h, 1400), 600, 77))
	noPlainFragments(t, "G_A outside", toOut)
	if got := pr.deliveredToB(toOut); !bytes.Equal(got, data) {
		t.Fatalf("b got %d bytes, want the 1400 sent", len(got))
	}

	// From the outside, about a wire frame a router on the untrusted
	// path fragmented: the forged first fragment first, then the real
	// ones; then the real first one lost and a forged one in its place.
	// (A fresh pair: a's fragments above lowered G_A's segment size.)
	pr, h = handshake(t), newHosts()
	for i, lose := range []bool{false, true} {
		id := uint32(78 + i)
		wire := fragmentFrame(t, pr.aSends(&h, markerData(1400), pshF)[0].frame(), 600, id)
		frags := append([][]byte{forgedFirst(netip.AddrPortFrom(addrA.Addr(), 999), addrB, id)}, wire...)
		if lose {
			frags = append(frags[:1], wire[1:]...)
		}
		toIn, _ := pr.gb.pushAll(Outside, frags)
		for _, f := range toIn {
			var p packet.Packet
			if p.Decode(f) == nil && (p.IsFragment() || !plaintextOnly(p.Payload())) {
				t.Fatalf("lost first fragment %v: a fragment or wire bytes reached b: %x", lose, f)
			}
		}
	}
	if fragCount(pr.gb.e, FragOverlap) != 1 || fragCount(pr.gb.e, FragBad) != 1 {
		t.Fatalf("G_B: overlaps %d, bad %d", fragCount(pr.gb.e, FragOverlap), fragCount(pr.gb.e, FragBad))
	}
}

// A forged first fragment of an encrypted connection, never completed,
// lowered the flow's segment size for good to fit its length (down to 88
// bytes): only a datagram that was whole and that the engine took tells
// the link's MTU, and the lowered size expires like a packet-too-big's.
func TestForgedFragmentKeepsSegmentSize(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	forged := fragmentFrame(t, tcpFrame(addrB, addrA, isnB+1, isnA+1, ackF, 502, nil, make([]byte, 200)), 112, 5)[0]
	pr.ga.rawPush(Outside, forged)
	pr.ga.tick(int64(time.Minute))
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 || len(ws[0].payload) != 1420 {
		t.Fatalf("after a forged fragment: %d segments, want one of 1420 bytes", len(ws))
	}
	// Real fragments, of a datagram G_A takes, do lower it, for a while.
	pr.ga.pushAll(Inside, fragmentFrame(t, pr.aSegment(&h, 1400), 600, 6))
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) < 3 {
		t.Fatalf("after real fragments of 600 bytes: %d segments", len(ws))
	}
	pr.ga.tick(int64(2*time.Minute) + pmtuExpiry)
	if ws := pr.aSends(&h, make([]byte, 1400), pshF); len(ws) != 1 {
		t.Fatalf("after the expiry: %d segments, want 1", len(ws))
	}
}

// A closed encrypted connection's tuple reused by a new plain one from the
// outside keeps the old record until b accepts the new connection
// (TestReusedTupleOldSegmentsStayEncrypted): b's resent data of the old
// connection does not leave in plaintext. Fragmented (b sends without DF,
// a router inside cuts it), it did: a plain record's fragments passed.
func TestReusedTupleOldSegmentFragmented(t *testing.T) {
	pr, h, secret := closedPair(t)
	toIn, _ := pr.gb.push(Outside, tcpFrame(addrA, addrB, h.aNext+1000, 0, synF, 64240, synOpts(1460, pr.tsA+1), nil))
	one(t, "new SYN at b", toIn)
	long := bytes.Repeat(secret, 100)
	old := tcpFrame(addrB, addrA, h.bNext-uint32(len(secret))-1, h.aNext, ackF|pshF, 509, tsOpt(pr.tsB, pr.tsA), long)
	_, out := pr.gb.pushAll(Inside, fragmentFrame(t, old, 504, 9))
	for _, o := range out {
		if bytes.Contains(o, secret) {
			t.Fatal("the old connection's data left in plaintext")
		}
	}
}

// plaintextOnly reports whether b holds nothing but bytes of markerData
// (G_B may deliver again what b has not acknowledged): no wire bytes.
func plaintextOnly(b []byte) bool {
	for _, c := range b {
		if c != 0 && !bytes.Contains(marker, []byte{c}) {
			return false
		}
	}
	return true
}

// A full table discards its oldest datagram for a new one. The order it
// keeps still named datagrams that had completed, and reaching one of
// those dereferenced nil: one completed datagram, then enough incomplete
// ones to fill the table (a flood of first fragments), and the next new
// datagram crashed the worker.
func TestFragmentTableFullAfterCompleted(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, Fragments: FragConfig{MaxDatagrams: 2}})
	other := netip.AddrPortFrom(addrB.Addr(), 8080)
	seg := func(id uint32) [][]byte {
		return fragmentFrame(t, tcpFrame(addrA, other, 1000, 2000, ackF|pshF, 502, nil, markerData(1400)), 600, id)
	}
	if _, out := g.pushAll(Inside, seg(1)); len(out) != 3 {
		t.Fatalf("a plain datagram: %d fragments passed", len(out))
	}
	for id := uint32(2); id <= 5; id++ {
		g.rawPush(Inside, seg(id)[0])
	}
	if n := fragCount(g.e, FragLimit); n != 2 || len(g.e.frags.m) != 2 {
		t.Fatalf("%d datagrams discarded for room, %d tracked; want 2, 2", n, len(g.e.frags.m))
	}
}

// Fragments of protocols the engine has no business with (a GRE or ESP
// tunnel whose outer packets a router cut, UDP) pass as they come, as
// every fragment says its protocol: held until whole, they failed the
// checksum check only TCP and ICMP have here, and were all dropped.
func TestFragmentsOfOtherProtocolsPass(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs})
	inner := tcpFrame(addrA, addrB, 1, 1, ackF, 502, nil, markerData(1400))[14:]
	for _, c := range []struct {
		name     string
		src, dst netip.Addr
		proto    uint8
	}{
		{"GRE over IPv4", addrA.Addr(), addrB.Addr(), 47},
		{"ESP over IPv6", packettest.HostA6, packettest.HostB6, 50},
	} {
		whole := packettest.Frame{Src: c.src, Dst: c.dst, Proto: c.proto, L4: inner}.Bytes()
		frags := fragmentFrame(t, whole, 600, 9)
		for i, f := range frags[1:] {
			if in, _ := g.rawPush(Outside, f); len(in) != 1 || !bytes.Equal(in[0], f) {
				t.Fatalf("%s: fragment %d: %d frames to the inside, want it as it came", c.name, i+2, len(in))
			}
		}
		if in, _ := g.rawPush(Outside, frags[0]); len(in) != 1 || !bytes.Equal(in[0], frags[0]) {
			t.Fatalf("%s: first fragment: %d frames to the inside", c.name, len(in))
		}
	}
	if len(g.e.frags.m) != 0 {
		t.Fatalf("%d datagrams tracked", len(g.e.frags.m))
	}
}
