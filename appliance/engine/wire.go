package engine

import (
	"encoding/binary"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/bump"
)

// tmplCap bounds the link, IP and TCP fixed headers the engine can copy
// (VLAN tags, IPv6 extension headers); flows with longer ones stay plain.
const tmplCap = 256

// tmpl is the start of a frame the engine originates in one direction: the
// link and IP headers and the fixed TCP header of the last frame seen going
// that way (addresses, ports, VLAN tags, MACs).
type tmpl struct {
	b      [tmplCap]byte
	l3, l4 int
	v4     bool
	ok     bool
	// simple: at most two VLAN tags and no IP options or extension
	// headers, the frames whose TCP sum is left to a port with checksum
	// offload (any port can place their TCP header); others get their sum
	// here.
	simple bool
	// ipSum and psSum are the sums of the IPv4 header and of the TCP
	// pseudo-header without the lengths (and, in the header, with the
	// checksum zero and DF set, as finish writes them): finish adds a
	// frame's lengths instead of summing its headers again. Folded to 16
	// bits: the flow record stays in its allocation size class.
	ipSum, psSum uint16
}

// set copies p's headers; it reports false when they do not fit.
func (t *tmpl) set(p *packet.Packet) bool {
	l4 := p.L4Offset()
	if l4 == 0 || l4+20 > len(t.b) {
		return false
	}
	copy(t.b[:], p.Frame()[:l4+20])
	t.l3, t.l4, t.v4, t.ok = p.L3Offset(), l4, p.IPVersion() == 4, true
	ipLen := 40
	if t.v4 {
		ipLen = 20
		t.b[t.l3+1] &^= 3 // Not-ECT: each segment gets its own codepoint (seg.ecn)
	} else {
		t.b[t.l3+1] &^= 3 << 4
	}
	t.simple = t.l3 <= 14+2*4 && t.l4-t.l3 == ipLen
	t.sums()
	return true
}

// sums computes ipSum and psSum from the template's headers.
func (t *tmpl) sums() {
	ip := t.b[t.l3:t.l4]
	if t.v4 {
		var h [60]byte
		n := copy(h[:], ip[:int(ip[0]&0x0f)*4])
		binary.BigEndian.PutUint16(h[2:], 0)
		binary.BigEndian.PutUint16(h[6:], 0x4000)
		binary.BigEndian.PutUint16(h[10:], 0)
		t.ipSum = ^packet.Checksum(h[:n], 0)
		t.psSum = ^packet.Finish(packet.PseudoHeaderSum(ip[12:16], ip[16:20], packet.ProtoTCP, 0))
		return
	}
	t.psSum = ^packet.Finish(packet.PseudoHeaderSum(ip[8:24], ip[24:40], packet.ProtoTCP, 0))
}

// follow gives the template the Ethernet addresses and the DSCP of p, the
// latest segment from its host, over IPv6 its flow label too, over IPv4 its DF flag, and its VLAN
// tags' priority, as plain forwarding would show them. Hosts change the
// DSCP mid-connection (OpenSSH marks a session interactive after login;
// applications set IP_TOS after connect, which on Linux also sets the
// priority a VLAN device maps to PCP), and Linux draws a new flow label
// after a retransmission timeout so that flow-label ECMP moves the
// connection off a failing path (net.core.txrehash): with the SYN's label
// kept for good, the wire frames would stay on it.
func (t *tmpl) follow(p *packet.Packet) {
	if !t.ok {
		return
	}
	f, l3 := p.Frame(), p.L3Offset()
	if l3 >= 12 && t.l3 >= 12 {
		// The Ethernet addresses too: a neighbour whose MAC changed (a
		// router replaced or failed over, a host's new NIC) is reached
		// at the new one, as plain forwarding would.
		copy(t.b[:12], f[:12])
	}
	if l3 == t.l3 {
		// Each tag's PCP and DEI (IEEE 802.1Q: the TCI's top four bits);
		// tags at 12 (TPID) and 14 (TCI), 16 and 18.
		for o := 14; o+4 <= l3; o += 4 {
			t.b[o] = f[o]&0xf0 | t.b[o]&0x0f
		}
	}
	ip, in := t.b[t.l3:], f[l3:]
	if t.v4 {
		// DF too: a host with path MTU discovery off sends without it
		// and lets routers fragment, which keeps it working on a
		// narrower path whose "fragmentation needed" messages are
		// filtered; frames with DF would be lost there (finish).
		df := in[6] & ipv4DF
		if ip[1]>>2 != in[1]>>2 || ip[6]&ipv4DF != df {
			ip[1] = in[1]&^3 | ip[1]&3
			ip[6] = ip[6]&^ipv4DF | df
			t.sums()
		}
		return
	}
	// Version, traffic class and flow label, the ECN bits the template's
	// own (Not-ECT: seg.ecn sets each segment's).
	const ecnBits = 3 << 4
	if ip[0] != in[0] || ip[1]&^ecnBits != in[1]&^ecnBits || ip[2] != in[2] || ip[3] != in[3] {
		ip[0], ip[2], ip[3] = in[0], in[2], in[3]
		ip[1] = in[1]&^ecnBits | ip[1]&ecnBits
	}
}

// sameVLANs reports whether p, from port from, carries the VLAN IDs of
// the frames f's template for that direction was taken from (toR from the
// inside host's, toL from the far side's); a priority tag (VID 0) counts
// as none. Without a template yet, any.
func (f *flow) sameVLANs(p *packet.Packet, from PortID) bool {
	t := &f.toL
	if from == Inside {
		t = &f.toR
	}
	l3 := p.L3Offset()
	if !t.ok || l3 == 14 && t.l3 == 14 { // no tags either way: the usual case, kept cheap
		return true
	}
	return vlanIDs(t.b[:t.l3]) == vlanIDs(p.Frame()[:l3])
}

// vlanIDs packs the VLAN IDs of an Ethernet header (tags from byte 12 to
// the IP header), priority tags left out.
func vlanIDs(h []byte) uint32 {
	var ids uint32
	for o := 12; o+4 <= len(h)-2; o += 4 {
		if vid := uint32(binary.BigEndian.Uint16(h[o+2:]) & 0x0fff); vid != 0 {
			ids = ids<<12 | vid
		}
	}
	return ids
}

// ipExtra is the length of the template's IP options or IPv6 extension
// headers: what its IP header has beyond the fixed 20 or 40 bytes.
func (t *tmpl) ipExtra() int {
	if !t.ok {
		return 0
	}
	if t.v4 {
		return t.l4 - t.l3 - 20
	}
	return t.l4 - t.l3 - 40
}

// reverse turns the template around: MACs, addresses and ports swapped,
// for a reply to the frame it was taken from.
func (t *tmpl) reverse() {
	b := t.b[:]
	var mac [6]byte
	copy(mac[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], mac[:])
	alen, soff := 4, t.l3+12
	if !t.v4 {
		alen, soff = 16, t.l3+8
	}
	var a [16]byte
	copy(a[:alen], b[soff:soff+alen])
	copy(b[soff:soff+alen], b[soff+alen:soff+2*alen])
	copy(b[soff+alen:soff+2*alen], a[:alen])
	l4 := b[t.l4:]
	l4[0], l4[1], l4[2], l4[3] = l4[2], l4[3], l4[0], l4[1]
	t.sums()
}

// seg is one TCP segment to originate.
type seg struct {
	seq, ack uint32
	flags    uint8
	ecn      uint8 // the IP header's ECN codepoint (ecn.go); the template's is Not-ECT
	win      uint16
	urg      uint16
	opts     []byte // options, padded here to a multiple of 4
}

// tcpOpts collects the options of a segment the engine builds.
type tcpOpts struct {
	b [40]byte
	n int
}

func (o *tcpOpts) reset() { o.n = 0 }

// ts adds a timestamp option (RFC 7323), NOP-aligned as Linux sends it.
func (o *tcpOpts) ts(val, ecr uint32) {
	if o.n+12 > len(o.b) {
		return
	}
	b := o.b[o.n:]
	b[0], b[1], b[2], b[3] = packet.OptNOP, packet.OptNOP, 8, 10
	binary.BigEndian.PutUint32(b[4:], val)
	binary.BigEndian.PutUint32(b[8:], ecr)
	o.n += 12
}

// sackRoom is how many SACK blocks fit after the options added so far.
func (o *tcpOpts) sackRoom() int { return max((len(o.b)-o.n-4)/8, 0) }

// sack adds a SACK option with as many of blocks as fit (RFC 2018).
func (o *tcpOpts) sack(blocks [][2]uint32) {
	room := o.sackRoom()
	if room <= 0 || len(blocks) == 0 {
		return
	}
	if len(blocks) > room {
		blocks = blocks[:room]
	}
	b := o.b[o.n:]
	b[0], b[1], b[2], b[3] = packet.OptNOP, packet.OptNOP, 5, byte(2+8*len(blocks))
	for i, bl := range blocks {
		binary.BigEndian.PutUint32(b[4+8*i:], bl[0])
		binary.BigEndian.PutUint32(b[8+8*i:], bl[1])
	}
	o.n += 4 + 8*len(blocks)
}

// eno adds the non-SYN TCP-ENO option `45 02` (RFC 8547 §4.1).
func (o *tcpOpts) eno() {
	if o.n+2 > len(o.b) {
		return
	}
	o.b[o.n], o.b[o.n+1] = 69, 2
	o.n += 2
}

func (o *tcpOpts) bytes() []byte { return o.b[:o.n] }

// build writes the headers of s into buf from t and returns the payload
// area, or nil when buf is too small for payloadLen bytes.
func (t *tmpl) build(buf []byte, s *seg, payloadLen int) (hdrLen int, payload []byte) {
	ol := (len(s.opts) + 3) &^ 3
	hl := t.headerLen(s)
	if !t.ok || hl+payloadLen > len(buf) {
		return 0, nil
	}
	copy(buf, t.b[:t.l4+20])
	if t.v4 {
		buf[t.l3+1] |= s.ecn & 3
	} else {
		buf[t.l3+1] |= (s.ecn & 3) << 4
	}
	h := buf[t.l4:]
	binary.BigEndian.PutUint32(h[4:], s.seq)
	binary.BigEndian.PutUint32(h[8:], s.ack)
	h[12] = byte((20+ol)/4) << 4
	h[13] = s.flags
	binary.BigEndian.PutUint16(h[14:], s.win)
	h[16], h[17] = 0, 0
	binary.BigEndian.PutUint16(h[18:], s.urg)
	n := copy(h[20:], s.opts)
	for i := 20 + n; i < 20+ol; i++ {
		h[i] = packet.OptEOL
	}
	return hl, buf[hl : hl+payloadLen]
}

// ipv4DF is the don't-fragment flag in the IPv4 header's byte 6.
const ipv4DF = 0x40

// atomic reports whether the template's frames are atomic datagrams: IPv6,
// or IPv4 with DF (the host's, tmpl.follow). Only those share one
// identification, so only those may leave as super-frames, whose segments
// the kernel numbers.
func (t *tmpl) atomic() bool { return !t.v4 || t.b[t.l3+6]&ipv4DF != 0 }

// headerLen is the length of the headers build writes for s.
func (t *tmpl) headerLen(s *seg) int { return t.l4 + 20 + (len(s.opts)+3)&^3 }

// superRoom is how many payload bytes a super-frame built by t into a buffer
// of size bytes, with headers of hl bytes, carries in whole segments of gso
// bytes: as many as fit the buffer, the IP length field and
// bump.MaxSuperFrame (a longer one the kernel would cut in software, which
// the AF_PACKET port's queue bypass cannot have done).
func (t *tmpl) superRoom(size, hl, gso int) int {
	most := t.l3 + 0xffff // IPv4's total length counts its header
	if !t.v4 {
		most += 40 // IPv6's payload length does not
	}
	room := min(size, most, bump.MaxSuperFrame) - hl
	return max(room-room%gso, 0)
}

// finish sets the IP length, the IPv4 header checksum and, if tcpSum, the
// TCP checksum of a frame of n bytes built by build (else the field is
// left zero for the port to fill: OffloadSink). A non-atomic IPv4 frame
// takes its identification from ids, the engine's counter.
func (t *tmpl) finish(buf []byte, n int, tcpSum bool, ids *uint16) {
	l4len := n - t.l4
	ip := buf[t.l3:]
	ps := uint32(t.psSum) + uint32(l4len)
	if t.v4 {
		binary.BigEndian.PutUint16(ip[2:], uint16(n-t.l3))
		if !t.atomic() {
			// The host sends without DF (tmpl.follow): so do these
			// frames, and a router on a narrower path fragments them
			// as it would the host's. Each gets its own
			// identification (RFC 6864 §4.1), from one counter for
			// all the engine's flows, so that no two flows between
			// the same addresses use the same one at once.
			*ids++
			binary.BigEndian.PutUint16(ip[4:], *ids)
			binary.BigEndian.PutUint16(ip[6:], 0)
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:t.l4-t.l3], 0))
		} else {
			// DF, as the host set it: the engine sizes frames to fit,
			// and a path MTU error comes back to it. Its frames share
			// the template's identification, which RFC 6864 §4.1
			// allows only for atomic datagrams.
			binary.BigEndian.PutUint16(ip[6:], ipv4DF<<8)
			// The ECN bits build set are the low bits of the first
			// header word, which ipSum counts as zero.
			binary.BigEndian.PutUint16(ip[10:], packet.Finish(uint32(t.ipSum)+uint32(n-t.l3)+uint32(ip[1]&3)))
		}
	} else {
		binary.BigEndian.PutUint16(ip[4:], uint16(n-t.l3-40))
	}
	tcp := buf[t.l4:n]
	tcp[16], tcp[17] = 0, 0
	if tcpSum {
		binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(tcp, ps))
	}
}

// minMSS is the smallest MSS the engine takes from a SYN (Linux's
// TCP_MIN_MSS).
const minMSS = 88

// segInfo is what the engine reads from one TCP segment's options.
type segInfo struct {
	hasTS        bool
	tsVal, tsEcr uint32
	nsack        int
	sack         [4][2]uint32
	eno          bool
	sackOK       bool // SACK-permitted (a SYN's)
	mss          uint16
	hasMSS       bool
	ws           int8 // window scale shift, -1 if none
	optErr       bool
}

func (si *segInfo) read(p *packet.Packet) {
	if o := p.OptionBytes(); len(o) == 12 && o[0] == packet.OptNOP && o[1] == packet.OptNOP && o[2] == 8 && o[3] == 10 {
		// What nearly every segment after the SYN carries (Linux, BSD):
		// the loop below would find the same.
		*si = segInfo{ws: -1, hasTS: true, tsVal: binary.BigEndian.Uint32(o[4:]), tsEcr: binary.BigEndian.Uint32(o[8:])}
		return
	}
	*si = segInfo{ws: -1}
	it := p.Options()
	for {
		o, ok := it.Next()
		if !ok {
			break
		}
		switch o.Kind {
		case 8:
			if len(o.Data) == 8 {
				si.hasTS = true
				si.tsVal = binary.BigEndian.Uint32(o.Data)
				si.tsEcr = binary.BigEndian.Uint32(o.Data[4:])
			}
		case 5:
			for d := o.Data; len(d) >= 8 && si.nsack < len(si.sack); d = d[8:] {
				si.sack[si.nsack] = [2]uint32{binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])}
				si.nsack++
			}
		case 4:
			si.sackOK = len(o.Data) == 0
		case 69:
			si.eno = true
		case 3:
			if len(o.Data) == 1 {
				si.ws = int8(min(o.Data[0], 14))
			}
		case 2:
			if len(o.Data) == 2 {
				// Floored as Linux floors it (TCP_MIN_MSS): a tiny MSS
				// would leave the engine's segmenting loops no room.
				si.hasMSS, si.mss = true, max(binary.BigEndian.Uint16(o.Data), minMSS)
			}
		}
	}
	if it.Err() != nil {
		si.optErr = true
	}
}
