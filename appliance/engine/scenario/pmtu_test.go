package scenario

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Path MTU changes in the middle of a transfer: on the untrusted link
// (real packet-too-big messages from a router there, which the engine
// checks, translates for the host and obeys itself) and inside an enclave
// (the router's packet-too-big about plaintext the appliance delivered
// stays inside and lowers the appliance's own delivery segments).

// ptbInfo reads a packet-too-big (IPv4 3/4 or ICMPv6 2): the MTU it
// reports and the quoted TCP segment's source and sequence number.
func ptbInfo(raw []byte) (mtu int, src netip.Addr, seq uint32, ok bool) {
	if len(raw) < 14+40 {
		return 0, src, 0, false
	}
	ip := raw[14:]
	var msg, q []byte
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&15) * 4
		if ip[9] != 1 || len(ip) < ihl+8+20+8 {
			return 0, src, 0, false
		}
		msg = ip[ihl:]
		if msg[0] != 3 || msg[1] != 4 {
			return 0, src, 0, false
		}
		mtu = int(binary.BigEndian.Uint16(msg[6:]))
		q = msg[8:]
		src, _ = netip.AddrFromSlice(q[12:16])
		q = q[int(q[0]&15)*4:]
	case 6:
		if ip[6] != 58 || len(ip) < 40+8+40+8 {
			return 0, src, 0, false
		}
		msg = ip[40:]
		if msg[0] != 2 {
			return 0, src, 0, false
		}
		mtu = int(binary.BigEndian.Uint32(msg[4:]))
		q = msg[8:]
		src, _ = netip.AddrFromSlice(q[8:24])
		q = q[40:]
	default:
		return 0, src, 0, false
	}
	return mtu, src, binary.BigEndian.Uint32(q[4:]), true
}

// pmtu handles the non-TCP frames among segs as Linux handles a
// packet-too-big (tcp_v4_err, tcp_v4_mtu_reduced): ignored unless the quoted
// sequence number is within SND.UNA..SND.NXT (sndMax: the go-back rule
// moves nxt back, Linux's SND.NXT stays); else the segment size drops to
// fit the reported MTU and the outstanding bytes are sent again (the
// simHost's go-back rule). It returns the TCP segments.
func (s *simHost) pmtu(t *testing.T, segs []Seg, sndMax int) []Seg {
	t.Helper()
	var out []Seg
	for _, g := range segs {
		if g.Src.IsValid() {
			out = append(out, g)
			continue
		}
		mtu, src, seq, ok := ptbInfo(g.Raw)
		if !ok {
			t.Fatalf("host %d got a non-TCP frame that is no packet-too-big: %x", s.side, g.Raw)
		}
		if src != s.h.Addr.Addr() {
			t.Fatalf("host %d got a packet-too-big quoting a segment from %v", s.side, src)
		}
		off := int(int32(seq - s.h.ISN - 1))
		if off > sndMax {
			t.Fatalf("host %d: packet-too-big quotes offset %d, beyond what it sent (%d): the translation is wrong", s.side, off, sndMax)
		}
		if off < s.una {
			continue // acknowledged meanwhile: Linux ignores it
		}
		if m := mtu - 40; m < s.segMax() {
			s.mss = m
			s.nxt = s.una
			s.finSent = s.finAcked
		}
	}
	return out
}

// pmtuRun transfers na bytes from a to b and nb back over a loss-free
// link, both hosts obeying packet-too-big, calling change every 1 ms
// until it reports true (it changes an MTU mid-transfer). It fails unless
// both transfers complete intact within 60 s (fake), checks that the link
// carried the same bytes at the same sequence numbers every time and never
// the plaintext marker, and returns the world and the hosts.
func pmtuRun(t *testing.T, na, nb int, change func(w *World, a, b *simHost) bool) (*World, [2]*simHost) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 0x7cc1))
	f := full(t)
	f.handshake(t)
	w := f.w
	hosts := [2]*simHost{
		{side: SideA, h: f.a, peer: f.b, rng: rng, data: simData(rng, na), rcv: NewStream(isnB), active: true, est: true},
		{side: SideB, h: f.b, peer: f.a, rng: rng, data: simData(rng, nb), rcv: NewStream(isnA), est: true},
	}
	done := func() bool {
		for i, h := range hosts {
			if !h.gotFIN || !bytes.Equal(h.rcv.Contiguous(), hosts[1-i].data) || !h.finAcked {
				return false
			}
		}
		return true
	}
	changed := false
	var sndMax [2]int
	deadline := w.Now + int64(60*time.Second)
	for !done() {
		if w.Now > deadline {
			t.Fatalf("not done after 60 s (fake): a sent %d/%d acked %d mss %d, b sent %d/%d acked %d mss %d; a got %d, b got %d",
				hosts[0].nxt, len(hosts[0].data), hosts[0].una, hosts[0].segMax(), hosts[1].nxt, len(hosts[1].data), hosts[1].una, hosts[1].segMax(),
				hosts[0].rcvNxt, hosts[1].rcvNxt)
		}
		if !changed {
			changed = change(w, hosts[0], hosts[1])
		}
		for i, h := range hosts {
			h.step(w)
			sndMax[i] = max(sndMax[i], h.nxt)
		}
		w.Run(time.Millisecond)
		for i, h := range hosts {
			h.receive(t, w, h.pmtu(t, w.Take(h.side), sndMax[i]))
		}
	}
	if !changed {
		t.Fatal("the transfer ended before the MTU changed")
	}
	w.Run(50 * time.Millisecond)
	wireStream(t, w, AtoB, isnA)
	wireStream(t, w, BtoA, isnB)
	for _, e := range w.Link.Log {
		if bytes.Contains(e.Seg.Raw, []byte(marker)) {
			t.Fatalf("plaintext marker on the link: %v", e.Seg)
		}
	}
	return w, hosts
}

// TestPathMTUFallsOnTheLink: halfway through a transfer each way, a router
// on the untrusted link gets a next hop with MTU 1200 and answers every
// larger datagram with a packet-too-big. Each appliance checks the quoted
// sequence number is in flight, passes the message on translated (MTU
// 1180) and lowers its own wire segments at once; frames it sealed before
// are resent as the same bytes in smaller segments when the host resends
// them. Both transfers complete, and after the first packet-too-big reached
// an appliance no datagram it sends exceeds 1200 bytes. Before, the stored
// frames were resent whole and never got through.
func TestPathMTUFallsOnTheLink(t *testing.T) {
	const mtu = 1200
	w, hosts := pmtuRun(t, 200000, 120000, func(w *World, a, b *simHost) bool {
		if a.una < 50000 || b.una < 30000 {
			return false
		}
		w.Link.Narrow[AtoB] = &Narrow{Addr: netip.MustParseAddr("203.0.113.1"), MTU: mtu}
		w.Link.Narrow[BtoA] = &Narrow{Addr: netip.MustParseAddr("203.0.113.2"), MTU: mtu}
		return true
	})
	for _, d := range []Dir{AtoB, BtoA} {
		r := w.Link.Narrow[d]
		if len(r.Sent) == 0 {
			t.Fatalf("link %v: no datagram was too big", d)
		}
		known := r.Sent[0] + int64(latency) // the packet-too-big reached the appliance
		late := 0
		for _, e := range w.Link.Log {
			if e.Dir == d && e.At > known && IPLen(e.Seg.Raw) > mtu {
				late++
			}
		}
		if late > 0 {
			t.Fatalf("link %v: %d datagrams over %d bytes after the appliance learned the MTU (%d packet-too-big in all)", d, late, mtu, len(r.Sent))
		}
		t.Logf("link %v: %d packet-too-big", d, len(r.Sent))
	}
	for i, s := range []Side{SideA, SideB} {
		if n := w.G[s].Counters().PTBTranslated.Load(); n == 0 {
			t.Fatalf("side %d translated no packet-too-big", s)
		}
		if hosts[i].mss != mtu-ovh-40 {
			t.Fatalf("host %d segment size %d, want %d (MTU %d less the frame overhead)", s, hosts[i].mss, mtu-ovh-40, mtu)
		}
	}
}

// TestInsideMTUFallsInEnclaveB: halfway through a transfer from a to b, a
// router inside enclave B gets a next hop with MTU 1000 toward b. Its
// packet-too-big about a segment G_B delivered quotes plaintext: it never
// reaches the link. G_B lowers its delivery segments at once and delivers
// the quoted bytes again, so the transfer completes, and only the
// segments G_B had built before it knew were too big. Before, the message
// was dropped and nothing changed: that direction was black-holed.
func TestInsideMTUFallsInEnclaveB(t *testing.T) {
	const mtu = 1000
	w, _ := pmtuRun(t, 200000, 20000, func(w *World, a, b *simHost) bool {
		if b.rcvNxt < 50000 {
			return false
		}
		w.Inside[SideB] = &Narrow{Addr: netip.MustParseAddr("198.51.100.254"), MTU: mtu}
		return true
	})
	r := w.Inside[SideB]
	if len(r.Sent) == 0 {
		t.Fatal("no delivery was too big")
	}
	for _, at := range r.Sent {
		if at != r.Sent[0] {
			t.Fatalf("too-big deliveries at %v (ns): G_B went on sending too-big segments after the first packet-too-big", r.Sent)
		}
	}
	if n := w.G[SideB].Counters().PTBInside.Load(); n == 0 {
		t.Fatal("G_B honoured no inside packet-too-big")
	}
	for _, e := range w.Link.Log {
		if !e.Seg.Src.IsValid() {
			t.Fatalf("a non-TCP frame on the link at %d: %x", e.At, e.Seg.Raw)
		}
	}
	t.Logf("%d packet-too-big inside enclave B", len(r.Sent))
}

// TestPacketTooBig: a router on the untrusted side sends an ICMP "packet
// too big" quoting one of G_A's wire segments. G_A passes it to a with the
// quoted sequence number translated to host space (the start of the frame's
// host bytes) and the MTU lowered by the frame overhead (engine contract),
// checksums valid.
func TestPacketTooBig(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	f.send(t, SideA, chunk('q', 300))
	f.ack(t, SideB)
	n := f.mark(AtoB)
	w.Host(SideA, a.Data(300, isnB+1, chunk('r', 400)))
	w.Run(0)
	wire := one(t, "data on the link", withData(f.sentSince(AtoB, n)))
	w.Run(latency)
	w.Take(SideB)
	router := netip.MustParseAddr("203.0.113.1")
	icmp := packettest.Frame{Src: router, Dst: a.Addr.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 4, 1400, packettest.Quote(wire.Raw, 28))}.Bytes()
	w.SendFar(SideB, icmp)
	w.Run(latency)
	got := one(t, "ICMP at a", w.Take(SideA)).Raw
	ip := got[14:]
	ihl := int(ip[0]&15) * 4
	if packettest.RefChecksum(ip[:ihl]) != 0 || ip[9] != 1 {
		t.Fatalf("ICMP at a: bad IPv4 header %x", ip[:ihl])
	}
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	msg := ip[ihl:tot]
	if packettest.RefChecksum(msg) != 0 {
		t.Fatal("ICMP at a: bad ICMP checksum")
	}
	if msg[0] != 3 || msg[1] != 4 || binary.BigEndian.Uint16(msg[6:]) != 1400-ovh {
		t.Fatalf("ICMP at a: type %d code %d MTU %d, want 3/4 MTU %d", msg[0], msg[1], binary.BigEndian.Uint16(msg[6:]), 1400-ovh)
	}
	q := msg[8:]
	qseq := binary.BigEndian.Uint32(q[int(q[0]&15)*4+4:])
	if qseq != a.Seq(300) {
		t.Fatalf("quoted sequence number %d, want host %d (wire %d)", qseq, a.Seq(300), wire.Seq)
	}
}

// TestInsidePacketTooBigShortQuote: b's window lets G_B deliver only part
// of what it opened (b shrank it while a's frames, sent within the window
// it had, were on their way); the rest waits for b's window. A router inside
// enclave B answers the delivered segment with a packet-too-big that
// quotes only the IP header and 8 bytes of TCP (all RFC 792 asks for), so
// the quoted segment's length is unknown. G_B delivers the quoted bytes
// again in smaller segments, but never beyond what it had delivered: bytes
// past b's window would be sent early, and b's ACK of them, beyond
// anything G_B counts as sent, would be ignored (wireAckFromHost).
func TestInsidePacketTooBigShortQuote(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	b.Window, b.Exact = 24, true // 3072 bytes (window scale 7, LinuxSYNOpts)
	w.Host(SideB, b.ACK(0, a.Seq(0)))
	w.Run(latency)
	w.Take(SideA)
	for i := range 3 {
		w.Host(SideA, a.Data(i*1000, isnB+1, chunk(byte('x'+i), 1000)))
	}
	b.Window = 8 // 1024 bytes
	w.Host(SideB, b.ACK(0, a.Seq(0)))
	w.Run(latency)
	got := withData(w.Take(SideB))
	end := uint32(0)
	for _, g := range got {
		end = max(end, g.Seq+uint32(len(g.Payload))-a.Seq(0))
	}
	if end != 1024 {
		t.Fatalf("b got %d bytes, want its window's 1024", end)
	}
	last := got[len(got)-1]
	router := netip.MustParseAddr("198.51.100.254")
	icmp := packettest.Frame{Src: router, Dst: a.Addr.Addr(), Proto: 1,
		L4: packettest.ICMP(3, 4, 576, packettest.Quote(last.Raw, 28))}.Bytes()
	if v := w.Host(SideB, icmp); v != engine.Forwarded {
		t.Fatalf("packet-too-big from inside: verdict %v, want Forwarded (delivered again)", v)
	}
	again := withData(w.Take(SideB))
	if len(again) == 0 {
		t.Fatal("G_B delivered nothing again")
	}
	for _, g := range again {
		if e := g.Seq + uint32(len(g.Payload)) - a.Seq(0); e > 1024 || len(g.Payload) > 576-40-12 {
			t.Fatalf("G_B delivered %v after the packet-too-big: bytes to %d, beyond the 1024 it had sent, or larger than the MTU allows", g, e)
		}
	}
}
