package engine

import (
	"encoding/binary"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Path MTU of encrypted connections (RFC 1191, RFC 8201). The appliance is
// the TCP sender on both sides of the connection as far as segment sizes go:
// toward R it sends the framed wire stream, toward L the decrypted plaintext.
// A packet-too-big about either must lower the segments the appliance itself
// builds, or a smaller MTU on the path black-holes that direction:
//
//   - from the outside, about our wire segment: checked against the wire
//     bytes in flight (RFC 5927 §4.1), it lowers the wire segment size and
//     goes on to L translated (quoted sequence number in host space, MTU
//     lowered by the frame overhead), so L's later segments fit as frames.
//     Frames already sealed are resent in smaller segments: the same bytes
//     at the same sequence numbers, never sealed again (RFC 8548 §3.6:
//     frames are placed in the byte stream, not in segments; TC-45).
//   - from the inside, about a segment the appliance delivered: it quotes
//     plaintext and never leaves; checked against the plaintext delivered
//     and not yet acknowledged, it lowers the segment size toward L and the
//     quoted bytes are delivered again in segments that fit.

// Floors for a learned path MTU, as a host applies them.
const (
	minPMTU4 = 552  // Linux's ip_rt_min_pmtu: IPv4 MTUs claimed below it are raised to it
	minPMTU6 = 1280 // RFC 8201 §4: never below the IPv6 minimum link MTU
)

// pathMSS turns a path MTU into a segment size (MSS sense: the TCP payload
// of a segment without options) for frames built from template t.
func pathMSS(t *tmpl, mtu uint32) int {
	floor := uint32(minPMTU4)
	if !t.v4 {
		floor = minPMTU6
	}
	return int(min(max(mtu, floor), 0xffff)) - (t.l4 - t.l3) - 20
}

// segR is the segment size toward R: R's MSS, or less after a packet-too-big.
func (f *flow) segR() int { return f.segSize(f.mssR, f.pmssR, &f.toR, Outside) }

// segL is the segment size toward L: L's MSS, or less after a packet-too-big
// from the inside.
func (f *flow) segL() int { return f.segSize(f.mssL, f.pmssL, &f.toL, Inside) }

// segSize is the segment size (MSS sense: TCP payload without options) of
// frames built from t toward port to, for a peer that announced mss, or
// pmss when a packet-too-big lowered it; no more than that port carries.
// An MSS assumes the fixed IP header: IP options and IPv6 extension headers
// that t's frames carry come off it (RFC 6691 §2, RFC 9293 §3.7.1), or a
// full segment would not fit the MTU; pmss (pathMSS) has them off already.
func (f *flow) segSize(mss, pmss uint16, t *tmpl, to PortID) int {
	m := max(f.capped(mss, to)-t.ipExtra(), 1)
	if pmss != 0 && int(pmss) < m {
		return f.capped(pmss, to)
	}
	return m
}

// pmtuExpiry is how long a segment size lowered by a packet-too-big holds.
// Then the flow tries its MSS again: a path that grew back (a route
// change, a transient tunnel) is used, and one still narrow answers with a
// new packet-too-big. RFC 8201 §4 and RFC 1191 §6.3 recommend 10 minutes
// (Linux: net.ipv4.route.mtu_expires).
const pmtuExpiry = int64(10 * time.Minute)

// pmtuExpire forgets f's lowered segment sizes once pmtuExpiry has passed.
func (e *Engine) pmtuExpire(now int64, f *flow) {
	if (f.pmssL != 0 || f.pmssR != 0) && now-f.pmtuAt >= pmtuExpiry {
		f.pmssL, f.pmssR = 0, 0
		e.c.PMTUExpired.Add(1)
	}
}

// optLenR is the length of the options on the segments the appliance sends
// R with data (timestamps, `45 02` while it lasts): the MSS counts payload
// only (RFC 6691).
func (f *flow) optLenR() int {
	n := 0
	if f.tsOK {
		n += 12
	}
	if f.enoOut {
		n += 4
	}
	return n
}

// outsideError handles an ICMP error from the outside quoting a segment of
// a negotiated connection: our wire segment, from the inside host L. It is
// accepted only if the quoted sequence number is in flight (RFC 5927 §4.1:
// SND.UNA <= SEG.SEQ < SND.NXT, in wire space) and goes on to L with the
// quoted sequence number in host space (the start of the frame that holds
// it), where L's own checks and reactions apply: an unreachable at SND.UNA
// during retransmissions reverts its backoff (RFC 6069), and L's soft
// errors report it. Passed on in wire space, L would have taken it as out
// of window, or worse, as about some other byte. A packet-too-big also
// lowers the flow's wire segment size, and its MTU reaches L lowered by the
// frame overhead, so that L's segments plus 20 bytes fit the path.
func (e *Engine) outsideError(now int64, p *packet.Packet) Verdict {
	// The quote is of our own wire segment: its source is the inside host.
	in, out, ok := quotedTuple(p)
	if !ok {
		return Passthrough
	}
	f := e.flows[flowKey{in: in, out: out}]
	if f == nil || (f.state != stKex && f.state != stOpen) {
		return Passthrough
	}
	if !p.VerifyL4Checksum() {
		// Corrupted on the way (L would drop it): its MTU or quote may
		// be anything, and must not shrink the flow's segments.
		return e.drop(DropChecksum)
	}
	seq, _ := p.QuotedSeq() // quotedTuple found the quoted TCP header
	en := &f.enc
	w := unwrap(seq, f.isnL, en.ackW)
	if w < en.ackW || w >= en.sentW {
		// Not a segment we have outstanding: forged, or about one long
		// acknowledged. A packet-too-big's MTU must not shrink the
		// flow's segments, and no other error may reach L about a
		// sequence number it never sent.
		return e.drop(DropICMPWindow)
	}
	h := en.ackH
	for i := 0; i < en.frames.n; i++ {
		if r := en.frames.at(i); r.w <= w {
			h = r.h
		}
	}
	p.SetQuotedSeq(wrap(f.isnL, h))
	if !p.IsPathMTU() {
		e.c.ICMPTranslated.Add(1)
		return ForwardInPlace
	}
	mtu, _ := p.MTU()
	if m := pathMSS(&f.toR, mtu); m < f.segR() {
		f.pmssR, f.pmtuAt = uint16(max(m, 1)), now
		e.wake(f) // pmtuExpire may now come before its next visit
	}
	if mtu > tcpcrypt.Overhead {
		p.SetMTU(mtu - tcpcrypt.Overhead)
	}
	e.c.PTBTranslated.Add(1)
	return ForwardInPlace
}

// hostResized watches L's retransmission at host offset s (no FIN), its
// first segment n bytes long, for a sign that L lowered its segment size,
// as RFC 4821 black-hole detection does after retransmission timeouts
// (Linux tcp_mtu_probing; macOS by default) on a path that filters its
// packet-too-big messages: the retransmission starts a frame sent to R and
// is shorter than that frame and than L's earlier segments. Then what the
// appliance cuts from the store for R (L's retransmissions, bytes that
// waited for R's window) goes in segments that fit L's new size plus the
// frame overhead (resendSeg), as new frames do (sealSegs); resent whole at
// its old size, the frame at L's SND.UNA would never get through.
//
// Other short retransmissions do not look like this. The size counts the
// options, so L's segments that carry SACK blocks are no smaller; short
// segments sealed as one frame (before the keys, after a hole) were no
// larger than their retransmissions; and L's window never moves back but
// to zero (scaleWin), where a host resends a whole segment. A window that
// reopens small after a zero one may cut a retransmission, and a short
// segment sealed with a long one (before the keys) looks like a sign when
// L resends it alone: a false sign lasts until L's next larger segment
// (hostSized), no smaller than a packet-too-big's floors (pathMSS).
func (e *Engine) hostResized(f *flow, p *packet.Packet, s int64, n int) {
	size := n + p.TCPHeaderLen() - 20
	if n == 0 || size >= int(f.segMaxL) {
		return
	}
	en := &f.enc
	var fr *frameRec // the first frame with data from s on
	for i := 0; i < en.frames.n && fr == nil; i++ {
		if r := en.frames.at(i); r.h >= s && r.n > 0 {
			fr = r
		}
	}
	if fr == nil || fr.h != s || int(fr.n) <= n || fr.w >= en.sentW {
		return
	}
	// What L sends is a datagram that L takes to fit the path, less the
	// frame overhead it left room for (negotiate.go lowers its MSS by it).
	m := pathMSS(&f.toR, uint32(p.PayloadOffset()-p.L3Offset()+n+tcpcrypt.Overhead))
	if m < f.resendSeg() {
		f.resegR = uint16(max(m, 1))
		e.c.HostResized.Add(1)
	}
}

// hostSized takes the size of one of L's data segments (payload and
// options, MSS sense): the largest L sent (segMaxL), and one larger than
// resegR allows shows that L's segments grew again (its probes of a larger
// size, or a sign that was none: L resent a short segment it had sent
// short). resegR follows, or resends cut smaller than L's own segments
// would get L's data through where L's segments do not, and L would never
// find the path's size itself.
func (f *flow) hostSized(size int) {
	f.segMaxL = uint16(min(max(size, int(f.segMaxL)), 0xffff))
	if r := size + tcpcrypt.Overhead; f.resegR != 0 && r > int(f.resegR) {
		f.resegR = uint16(min(r, 0xffff))
		if r >= f.segR() {
			f.resegR = 0
		}
	}
}

// resendSeg is the segment size of what the appliance cuts from the store
// for R: segR, or less while L's segments are smaller (hostResized).
func (f *flow) resendSeg() int {
	if f.resegR != 0 {
		return min(f.segR(), int(f.resegR))
	}
	return f.segR()
}

// insidePTB handles an ICMP packet-too-big from the inside about a segment
// of negotiated flow f. It never leaves (the quote is plaintext the
// appliance delivered, or a host segment that never went out as such). One
// about a segment delivered to L and not yet acknowledged lowers the segment
// size toward L and delivers the quoted bytes again in segments that fit:
// the far side never learns of this MTU, as its data crosses the untrusted
// link in frames the appliance re-segments anyway.
func (e *Engine) insidePTB(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	src, _, _ := quotedTuple(p)
	if src != f.key.out || (f.state != stKex && f.state != stOpen) {
		return e.drop(DropICMPQuote) // not about a delivered segment
	}
	seq, _ := p.QuotedSeq()
	d := &f.rcv
	h := unwrap(seq, f.isnR, d.ackH)
	if h < d.ackH || h >= d.nextH {
		return e.drop(DropICMPWindow) // RFC 5927 §4.1, in host space
	}
	old := f.segL()
	mtu, _ := p.MTU()
	if m := pathMSS(&f.toL, mtu); m < old {
		f.pmssL, f.pmtuAt = uint16(max(m, 1)), now
		e.wake(f) // pmtuExpire may now come before its next visit
	}
	e.c.PTBInside.Add(1)
	n, ok := quotedLen(p)
	if !ok {
		n = old // the segment was no longer than the segment size then
	}
	// Never past what L was sent: the rest waits for L's window
	// (pushPlain), and an ACK of bytes beyond sentH is not taken
	// (wireAckFromHost). A short quote (RFC 792 asks for 8 bytes of TCP)
	// leaves n at the old segment size, which may reach past it.
	lo, hi := max(h, d.plainFrom), min(h+int64(n), d.sentH)
	if lo >= hi {
		return Consumed // beyond what the appliance keeps: R's retransmission repairs it
	}
	for lo < hi {
		k := min(hi-lo, maxPlainChunk)
		e.sendPlain(f, tx[Inside], lo, d.plain.span(lo, k), d.finOut && lo+k == d.finH, false, 0)
		lo += k
	}
	e.c.Redelivered.Add(1)
	return Forwarded
}

// quotesNoPayload reports whether the segment an ICMP error quotes
// certainly carried no payload (its quoted headers say so).
func quotesNoPayload(p *packet.Packet) bool {
	n, ok := quotedHeaders(p)
	return ok && n == 0
}

// quotedLen returns the TCP payload length of the segment an ICMP error
// quotes, from the quoted IP and TCP headers.
func quotedLen(p *packet.Packet) (int, bool) {
	n, ok := quotedHeaders(p)
	return n, ok && n > 0
}

// quotedHeaders returns the TCP payload length the quoted IP and TCP
// headers of an ICMP error give; ok is false when the quote is too short
// to hold them.
func quotedHeaders(p *packet.Packet) (int, bool) {
	q, ok := p.Quote()
	if !ok || q.L4 == 0 || q.L4+13 > q.End {
		return 0, false
	}
	fr := p.Frame()
	n := -int(fr[q.L4+12]>>4)*4 - (q.L4 - q.L3)
	switch q.Version {
	case 4:
		n += int(binary.BigEndian.Uint16(fr[q.L3+2:]))
	case 6:
		n += 40 + int(binary.BigEndian.Uint16(fr[q.L3+4:]))
	}
	return n, true
}
