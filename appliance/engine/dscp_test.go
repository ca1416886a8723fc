package engine

import (
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// withDSCP returns a copy of frame with DSCP d (IPv4 header sum made
// right), as a host that set IP_TOS or IPV6_TCLASS would send it.
func withDSCP(t *testing.T, frame []byte, d uint8) []byte {
	t.Helper()
	f := append([]byte(nil), frame...)
	var p packet.Packet
	if err := p.Decode(f); err != nil {
		t.Fatal(err)
	}
	ip := f[p.L3Offset():]
	if p.IPVersion() == 4 {
		ip[1] = d<<2 | ip[1]&3
		p.FixIPv4Checksum()
	} else {
		ip[0] = ip[0]&0xf0 | d>>2
		ip[1] = ip[1]&0x3f | d<<6
	}
	return f
}

// dscpOf is frame's DSCP (checkFrame checks its sums).
func dscpOf(t *testing.T, frame []byte) uint8 {
	t.Helper()
	return checkFrame(t, frame).DSCP()
}

// TestDSCPFollowsHost: the segments the appliances build carry the DSCP of
// their host's latest segment, as plain forwarding would, in both
// directions; a host that changes its mark mid-connection (OpenSSH does,
// once a session turns interactive) is followed. Before, every segment
// kept the DSCP of the connection's SYN (or SYN-ACK) for good.
func TestDSCPFollowsHost(t *testing.T) {
	const ef, af21, cs1 = 46, 18, 8
	pr := handshake(t)
	h := newHosts()
	for _, d := range []uint8{0, ef, af21, 0} {
		_, wire := pr.ga.push(Inside, withDSCP(t, pr.aSegment(&h, 100), d))
		if len(wire) != 1 {
			t.Fatalf("%d frames on the wire, want 1", len(wire))
		}
		if got := dscpOf(t, wire[0]); got != d {
			t.Fatalf("a marks %d: frame on the wire has %d", d, got)
		}
		atB, _ := pr.gb.push(Outside, wire[0])
		if len(atB) != 1 || dscpOf(t, atB[0]) != d {
			t.Fatalf("a marks %d: %d segments to b, want 1 with that mark", d, len(atB))
		}
	}
	// b's ACK, marked CS1: the wire ACK and a's ACK carry CS1. A router on
	// the untrusted link that remarks (here to AF21) is what a sees, as
	// over a plain path.
	pr.tsB++
	_, wire := pr.gb.push(Inside, withDSCP(t, tcpFrame(addrB, addrA, h.bNext, h.aNext, ackF, 509, tsOpt(pr.tsB, pr.tsA), nil), cs1))
	if len(wire) != 1 || dscpOf(t, wire[0]) != cs1 {
		t.Fatalf("b's ACK: %d wire frames, want 1 marked CS1", len(wire))
	}
	toA, _ := pr.ga.push(Outside, withDSCP(t, wire[0], af21))
	if len(toA) != 1 || dscpOf(t, toA[0]) != af21 {
		t.Fatalf("b's ACK remarked AF21 on the way: %d segments to a, want 1 marked AF21", len(toA))
	}

	// IPv6: the traffic class straddles the first two header bytes.
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	a := netip.AddrPortFrom(packettest.HostA6, 40000)
	b := netip.AddrPortFrom(packettest.HostB6, 443)
	connectAddrs(t, ga, gb, a, b)
	_, wire = ga.push(Inside, withDSCP(t, tcpFrame(a, b, isnA+5, isnB+1, ackF|pshF, 502, tsOpt(4, 2), []byte("more")), ef))
	if len(wire) != 1 || dscpOf(t, wire[0]) != ef {
		t.Fatalf("IPv6: %d wire frames, want 1 marked EF", len(wire))
	}
	if c := checkFrame(t, wire[0]); c.ECN() != packet.NotECT || c.Frame()[c.L3Offset()]>>4 != 6 {
		t.Fatal("IPv6: the mark spilled into the version or the ECN bits")
	}
}
