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

// TestDSCPFollowsHost: the segments the appliances build carry the DSCP
// (and over IPv6 the flow label) of their host's latest segment, as plain
// forwarding would, in both directions; a host that changes its mark
// mid-connection (OpenSSH does, once a session turns interactive) is
// followed. Before, every segment kept the DSCP and flow label of the
// connection's SYN (or SYN-ACK) for good.
func TestDSCPFollowsHost(t *testing.T) {
	const ef, af21, cs1 = 46, 18, 8
	pr := handshake(t)
	h := newHosts()
	// The hosts did not negotiate ECN: whatever codepoint a's segments
	// carry, the frames stay Not-ECT (the template takes the DSCP alone).
	for i, d := range []uint8{0, ef, af21, 0} {
		_, wire := pr.ga.push(Inside, withECN(t, withDSCP(t, pr.aSegment(&h, 100), d), []uint8{packet.CE, packet.ECT0, packet.ECT1, packet.NotECT}[i]))
		if len(wire) != 1 {
			t.Fatalf("%d frames on the wire, want 1", len(wire))
		}
		if got := dscpOf(t, wire[0]); got != d || checkFrame(t, wire[0]).ECN() != packet.NotECT {
			t.Fatalf("a marks %d: frame on the wire has %d, ECN %d", d, got, checkFrame(t, wire[0]).ECN())
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

	// IPv6: the traffic class straddles the first two header bytes; the
	// flow label follows too (Linux draws a new one after a retransmission
	// timeout, to move the connection to another path).
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	a := netip.AddrPortFrom(packettest.HostA6, 40000)
	b := netip.AddrPortFrom(packettest.HostB6, 443)
	connectAddrs(t, ga, gb, a, b)
	seq := isnA + 5
	for _, c := range []struct {
		dscp  uint8
		label uint32
	}{{ef, 0}, {ef, 0x12345}, {0, 0xfedcb}, {af21, 0xfedcb}} {
		_, wire = ga.push(Inside, withECN(t, withFlowLabel(t, withDSCP(t, tcpFrame(a, b, seq, isnB+1, ackF|pshF, 502, tsOpt(4, 2), []byte("more")), c.dscp), c.label), packet.CE))
		seq += 4
		if len(wire) != 1 {
			t.Fatalf("IPv6: %d wire frames, want 1", len(wire))
		}
		p := checkFrame(t, wire[0])
		if p.DSCP() != c.dscp || flowLabel(p) != c.label {
			t.Fatalf("IPv6: a sent DSCP %d, flow label %#x; the frame has %d, %#x", c.dscp, c.label, p.DSCP(), flowLabel(p))
		}
		if p.ECN() != packet.NotECT || p.Frame()[p.L3Offset()]>>4 != 6 {
			t.Fatal("IPv6: the mark spilled into the version or the ECN bits")
		}
	}
}

// withFlowLabel returns a copy of the IPv6 frame with flow label l.
func withFlowLabel(t *testing.T, frame []byte, l uint32) []byte {
	t.Helper()
	f := append([]byte(nil), frame...)
	var p packet.Packet
	if err := p.Decode(f); err != nil || p.IPVersion() != 6 {
		t.Fatalf("not IPv6: %v", err)
	}
	ip := f[p.L3Offset():]
	ip[1] = ip[1]&0xf0 | byte(l>>16)&0x0f
	ip[2], ip[3] = byte(l>>8), byte(l)
	return f
}

// flowLabel is the IPv6 packet's flow label.
func flowLabel(p *packet.Packet) uint32 {
	ip := p.Frame()[p.L3Offset():]
	return uint32(ip[1]&0x0f)<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

// TestFollowVLANPriority: a template follows the priority (PCP and DEI) of
// its host's VLAN tags, one tag or two, and keeps their TPIDs and VLAN
// IDs. A host's VLAN device maps the socket priority to PCP, and Linux
// sets that priority from IP_TOS: the same mid-connection change as the
// DSCP's.
func TestFollowVLANPriority(t *testing.T) {
	tcp := &packettest.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, Flags: packettest.ACK, Window: 100}
	const vidOuter, vidInner = 100, 5
	frame := func(pcp ...uint16) *packet.Packet {
		tags := []packettest.Tag{{TPID: 0x8100, TCI: pcp[0]<<13 | vidInner}}
		if len(pcp) == 2 {
			tags = []packettest.Tag{{TPID: 0x88a8, TCI: pcp[0]<<13 | vidOuter}, {TPID: 0x8100, TCI: pcp[1]<<13 | 1<<12 | vidInner}}
		}
		var p packet.Packet
		if err := p.Decode(packettest.Frame{Src: packettest.HostA4, Dst: packettest.HostB4, Tags: tags, TCP: tcp}.Bytes()); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	built := func(tm *tmpl) *packet.Packet {
		buf := make([]byte, 512)
		hl, _ := tm.build(buf, &seg{seq: 7, ack: 9, flags: packet.FlagACK, win: 3}, 10)
		var ids uint16
		tm.finish(buf, hl+10, true, &ids)
		var q packet.Packet
		if err := q.Decode(buf[:hl+10]); err != nil {
			t.Fatal(err)
		}
		return &q
	}
	for _, c := range [][2][]uint16{{{0}, {5}}, {{1, 0}, {3, 6}}} {
		var tm tmpl
		if !tm.set(frame(c[0]...)) {
			t.Fatal("template refused")
		}
		tm.follow(frame(c[1]...))
		q := built(&tm)
		want := frame(c[1]...)
		for i := range want.VLANCount() {
			gotTPID, gotTCI := q.VLAN(i)
			wantTPID, wantTCI := want.VLAN(i)
			if gotTPID != wantTPID || gotTCI != wantTCI {
				t.Fatalf("PCP %v then %v: tag %d is %#x/%#x, want %#x/%#x", c[0], c[1], i, gotTPID, gotTCI, wantTPID, wantTCI)
			}
		}
	}
}
