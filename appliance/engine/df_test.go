package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// withoutDF returns a copy of an IPv4 frame with DF clear (header sum made
// right), as a host with path MTU discovery off (ip_no_pmtu_disc, or
// IP_PMTUDISC_DONT) sends it.
func withoutDF(t *testing.T, frame []byte) []byte {
	t.Helper()
	f := append([]byte(nil), frame...)
	var p packet.Packet
	if err := p.Decode(f); err != nil || p.IPVersion() != 4 {
		t.Fatal("not an IPv4 frame")
	}
	f[p.L3Offset()+6] &^= ipv4DF
	p.FixIPv4Checksum()
	return f
}

// ipv4IDDF is frame's IPv4 identification and DF (checkFrame checks its
// header sum).
func ipv4IDDF(t *testing.T, frame []byte) (uint16, bool) {
	t.Helper()
	p := checkFrame(t, frame)
	ip := frame[p.L3Offset():]
	return binary.BigEndian.Uint16(ip[4:]), ip[6]&ipv4DF != 0
}

// TestDFFollowsHost: over IPv4 the appliances' frames carry DF as their
// host's latest segment does. A host with path MTU discovery off sends
// without DF, so that a router before a narrower link fragments its
// datagrams, which keeps the connection alive where that router's
// "fragmentation needed" messages are filtered. With DF always set, the
// frames were dropped there and the connection stalled, where plain TCP
// went on. Frames without DF are not atomic: each gets its own
// identification (RFC 6864 §4.1), and none leaves as a super-frame (the
// kernel would number its segments on its own). Frames with DF share one
// identification again, with their header sums right.
func TestDFFollowsHost(t *testing.T) {
	pr := handshake(t)
	_, gaOut := withSinks(pr.ga, true)
	h := newHosts()
	seen := map[uint16]bool{}
	for _, df := range []bool{true, false, true} {
		seg := pr.aSegment(&h, 4000) // three frames
		if !df {
			seg = withoutDF(t, seg)
		}
		supers := gaOut.supers
		_, wire := pr.ga.push(Inside, seg)
		if len(wire) != 3 {
			t.Fatalf("%d frames on the wire, want 3", len(wire))
		}
		if got := gaOut.supers - supers; (got == 1) != df {
			t.Fatalf("DF %v: %d super-frames, want one only with DF", df, got)
		}
		var ids []uint16
		for _, f := range wire {
			id, fdf := ipv4IDDF(t, f)
			if fdf != df {
				t.Fatalf("a sends DF %v, a frame on the wire has DF %v", df, fdf)
			}
			ids = append(ids, id)
		}
		if !df {
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("frames without DF share identification %#x: %v", id, ids)
				}
				seen[id] = true
			}
		}
		// Toward b: G_B's segments carry the DF of G_A's frames.
		var atB [][]byte
		for _, f := range wire {
			in, _ := pr.gb.push(Outside, f)
			atB = append(atB, in...)
		}
		if len(atB) == 0 {
			t.Fatal("nothing reached b")
		}
		for _, f := range atB {
			if _, fdf := ipv4IDDF(t, f); fdf != df {
				t.Fatalf("frames with DF %v reach b with DF %v", df, fdf)
			}
		}
		pr.tsB++
		pr.gb.push(Inside, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil))
	}
}

// TestNonAtomicIDsAcrossFlows: frames without DF of two connections
// between the same addresses, through one engine, never share an
// identification: a reassembler tells datagrams apart by addresses,
// protocol and identification alone, and fragments of two datagrams with
// the same would be mixed. (The hosts' segments here all carry one
// identification, so numbering from the SYN's would collide at once.)
func TestNonAtomicIDsAcrossFlows(t *testing.T) {
	pr := handshake(t)
	a2 := netip.AddrPortFrom(addrA.Addr(), 40001)
	connectAddrs(t, pr.ga, pr.gb, a2, addrB)
	h := newHosts()
	next2 := isnA + 1 + 4 // after connectAddrs' "data"
	seen := map[uint16]int{}
	for i := range 6 {
		var seg []byte
		if i%2 == 0 {
			seg = pr.aSegment(&h, 3000)
		} else {
			seg = tcpFrame(a2, addrB, next2, isnB+1, ackF|pshF, 502, tsOpt(uint32(10+i), 2), markerData(3000))
			next2 += 3000
		}
		_, wire := pr.ga.push(Inside, withoutDF(t, seg))
		if len(wire) < 2 {
			t.Fatalf("%d frames on the wire, want 3", len(wire))
		}
		for _, f := range wire {
			id, df := ipv4IDDF(t, f)
			if df {
				t.Fatal("a frame with DF, the host's segment had none")
			}
			if j, dup := seen[id]; dup {
				t.Fatalf("identification %#x used by segment %d and again by segment %d", id, j, i)
			}
			seen[id] = i
		}
	}
}
