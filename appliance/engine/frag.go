package engine

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// IP fragments.
//
// Every fragment of a TCP datagram reaches the engine (and every fragment of
// an ICMP message: a later fragment of an error may hold the rest of a
// quote; fragments of any other protocol, which every fragment names, pass
// as they come). Only the first fragment names the connection, and anyone can send
// a first fragment with any identification: a decision made on it alone
// would let a forged first fragment carry the later fragments of another
// datagram past the engine, plaintext of an encrypted connection out, or
// its ciphertext in to a host. So no fragment goes anywhere before its
// datagram is whole. The engine holds (copies) every fragment, reassembles
// the datagram once all are in, checks its checksum (a forged fragment
// spliced into a real datagram fails it, as at the receiving host), and
// hands it to Handle as one segment, which applies the rules of whole
// segments:
//
//   - Handle lets the segment go on unchanged (no flow, a plain one): the
//     original fragments go on as they came, with whatever Handle changed
//     in place (a translated ICMP quote) copied into them, so plain TCP
//     works as it would without the appliance;
//   - Handle takes the segment (a flow the engine handles): what leaves is
//     built by the engine in segments that fit (frames no larger than the
//     MSS, never fragmented), so no fragment of such a flow crosses in
//     either direction;
//   - Handle drops it (or resets: a tuple a previous run encrypted): the
//     fragments are dropped.
//
// A datagram is named by source, destination, identification, protocol
// (IPv4) and the port it came in at: the fragments of one datagram all
// arrive at one port, and one forged on the other side cannot join it.
// Reassembly follows RFC 5722 for both IP versions: a fragment that
// overlaps another discards the whole datagram, including fragments still
// to come (an exact duplicate is dropped alone, RFC 8200 §4.5). Everything
// is bounded: datagrams tracked and bytes held (a new datagram discards the
// oldest when the table is full, so fragments that never complete cannot
// shut out those that do), a handled flow's datagrams, fragments per
// datagram, and time. Counters.Frag counts every decision and drop.
//
// The fragments of a negotiated flow tell the MTU of the link the
// appliance sits on (a router fragmented them to cross it, both ports being
// on it): once Handle has taken the datagram, the flow's segment sizes both
// ways are lowered to fit its largest fragment, as by a packet-too-big
// (floors and expiry included, pmtu.go), so what the engine sends fits
// where the fragments did.

// FragConfig bounds the engine's handling of IP fragments. Zero values take
// the defaults noted.
type FragConfig struct {
	// Timeout discards a datagram whose fragments have not all arrived,
	// and forgets the decision about one (default 5 s).
	Timeout time.Duration
	// MaxDatagrams caps the datagrams tracked at once: held, under
	// reassembly or decided (default 4096). PerFlow caps one flow's
	// datagrams under reassembly (default 16). Memory caps the bytes of
	// held fragments and reassembly buffers (default 4 MiB).
	MaxDatagrams, PerFlow, Memory int
}

// Fragment defaults.
const (
	DefaultFragTimeout      = 5 * time.Second
	DefaultFragMaxDatagrams = 4096
	DefaultFragPerFlow      = 16
	DefaultFragMemory       = 4 << 20
	// maxFragsPerDatagram bounds the fragments of one datagram (held or
	// under reassembly), and so the cost of the overlap check.
	maxFragsPerDatagram = 128
)

func (c *FragConfig) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = DefaultFragTimeout
	}
	if c.MaxDatagrams <= 0 {
		c.MaxDatagrams = DefaultFragMaxDatagrams
	}
	if c.PerFlow <= 0 {
		c.PerFlow = DefaultFragPerFlow
	}
	if c.Memory <= 0 {
		c.Memory = DefaultFragMemory
	}
}

// Fragment events, counted in Counters.Frag.
const (
	FragPassed       = iota // fragments of datagrams Handle let go on unchanged, passed as they came
	FragHeld                // fragments held until their datagram was whole
	FragReassembled         // datagrams reassembled and handed to Handle as one segment
	FragWholeDropped        // reassembled datagrams Handle let go on but changed in length: dropped, the host resends
	FragQuoteDropped        // fragmented ICMP errors Handle dropped (quoting a handled flow)
	FragOverlap             // datagrams discarded for an overlapping fragment (RFC 5722)
	FragDuplicate           // exact duplicate fragments dropped (RFC 8200 §4.5)
	FragBad                 // datagrams discarded for a bad fragment length or offset, or a bad checksum once whole
	FragTimeout             // datagrams discarded incomplete at the timeout
	FragLimit               // datagrams or fragments dropped because a limit was hit (the oldest datagram discarded for a new one included)
	FragDiscarded           // fragments of a datagram already discarded (overlap, bad, limit)
	NumFragEvents
)

// FragNames label Counters.Frag.
var FragNames = [NumFragEvents]string{"passed", "held", "reassembled", "whole_dropped", "quote_dropped",
	"overlap", "duplicate", "bad", "timeout", "limit", "discarded"}

// fragKey names one datagram: source, destination, identification, for
// IPv4 the protocol (RFC 791 §3.2; RFC 8200 §4.5 uses no protocol), and
// the port its fragments arrive at.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
	from     PortID
}

type fragState uint8

const (
	fragHold fragState = iota // collecting fragments
	fragDrop                  // discarded: fragments dropped until the timeout
)

// heldFrag is one fragment as it came: b is the whole frame, its data
// (b[data:data+n]) sits at offset off of the fragmentable part.
type heldFrag struct {
	b            []byte
	data, off, n int
}

// fragDgram is one tracked datagram.
type fragDgram struct {
	state    fragState
	deadline int64
	seq      uint64 // creation order (fragTable.order)
	mem      int    // bytes charged to the table
	held     []heldFrag
	ranges   [][2]int
	seen     int
	total    int // data length, -1 until the last fragment came
	maxData  int // the largest fragment's data length
	// From the first fragment: the headers every fragment repeats end at
	// head (l3 the IP header's offset); IPv6: prev is the offset of the
	// Next Header that names the Fragment header, next that header's Next
	// Header. flow is set when the first fragment names a handled flow.
	first      bool
	l3, head   int
	prev       int
	next       uint8
	flow       flowKey
	flowCounts bool
}

// fragTable is the engine's fragment state.
type fragTable struct {
	m          map[fragKey]*fragDgram
	perFlow    map[flowKey]int
	order      []fragOrder // datagrams by creation, oldest first (stale entries skipped)
	nextSeq    uint64
	mem        int
	nextExpire int64
	whole      bool // handling a reassembled datagram
}

type fragOrder struct {
	k   fragKey
	seq uint64
}

func fragKeyOf(p *packet.Packet, fr packet.Fragment, from PortID) fragKey {
	k := fragKey{id: fr.ID, v6: p.IPVersion() == 6, from: from}
	copy(k.src[:], p.Src())
	copy(k.dst[:], p.Dst())
	if !k.v6 {
		k.proto = fr.Proto
	}
	return k
}

// fragment handles an IP fragment, p its decoding.
func (e *Engine) fragment(now int64, from PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	fr, ok := p.Fragment()
	if !ok {
		return e.drop(DropMalformed)
	}
	t := &e.frags
	if t.whole {
		// A reassembled datagram holding another Fragment header (IPv6):
		// no host sends that, and each level would recurse.
		e.c.Frag[FragBad].Add(1)
		return e.drop(DropFragment)
	}
	if t.m == nil {
		t.m, t.perFlow = make(map[fragKey]*fragDgram), make(map[flowKey]int)
	}
	if !fragMayHold(fr.Proto) {
		// Not TCP or ICMP, and no header that may come before them:
		// nothing the engine handles (UDP, ESP, tunnels), as every
		// fragment says. It passes as it came.
		e.c.Frag[FragPassed].Add(1)
		return Passthrough
	}
	k := fragKeyOf(p, fr, from)
	d := t.m[k]
	if d != nil && now >= d.deadline {
		e.fragForget(k, d, true)
		d = nil
	}
	if d == nil {
		for len(t.m) >= e.cfg.Fragments.MaxDatagrams {
			if !e.fragEvictOldest(nil) {
				e.c.Frag[FragLimit].Add(1)
				return e.drop(DropFragment)
			}
		}
		d = &fragDgram{deadline: now + int64(e.cfg.Fragments.Timeout), total: -1, seq: t.nextSeq}
		t.nextSeq++
		t.m[k] = d
		t.order = append(t.order, fragOrder{k, d.seq})
	}
	if d.state == fragDrop {
		e.c.Frag[FragDiscarded].Add(1)
		return e.drop(DropFragment)
	}
	return e.fragAdd(now, k, d, from, p, fr, tx)
}

// fragAdd checks one fragment of datagram d and holds it, and handles the
// datagram once it is whole.
func (e *Engine) fragAdd(now int64, k fragKey, d *fragDgram, from PortID, p *packet.Packet, fr packet.Fragment, tx [2]TxSink) Verdict {
	data := p.Frame()[fr.Data:p.End()]
	o, n := fr.Offset, len(data)
	end := o + n
	// All but the last fragment carry a multiple of 8 bytes (RFC 791 §3.2,
	// RFC 8200 §4.5), and the datagram fits its 16-bit length field.
	hdrLen := fr.Head - p.L3Offset()
	if p.IPVersion() == 6 {
		hdrLen -= 40 // the IPv6 payload length does not count the fixed header
	}
	if fr.More && (n == 0 || n%8 != 0) || hdrLen+end > 0xffff ||
		d.total >= 0 && (end > d.total || !fr.More && end != d.total) {
		return e.fragBad(d, FragBad)
	}
	for i, r := range d.ranges {
		if o < r[1] && r[0] < end {
			if h := d.held[i]; r[0] == o && r[1] == end && bytes.Equal(h.b[h.data:h.data+h.n], data) {
				e.c.Frag[FragDuplicate].Add(1)
				return e.drop(DropFragment)
			}
			return e.fragBad(d, FragOverlap)
		}
	}
	if !fr.More {
		for _, r := range d.ranges {
			if r[1] > end {
				return e.fragBad(d, FragBad)
			}
		}
		d.total = end
	}
	if o == 0 {
		if !e.fragFirst(d, from, p, fr) {
			return e.fragBad(d, FragLimit)
		}
	}
	if len(d.held) >= maxFragsPerDatagram || !e.fragCharge(d, len(p.Frame())) {
		return e.fragBad(d, FragLimit)
	}
	d.held = append(d.held, heldFrag{b: bytes.Clone(p.Frame()), data: fr.Data, off: o, n: n})
	d.ranges = append(d.ranges, [2]int{o, end})
	d.seen += n
	d.maxData = max(d.maxData, n)
	if !d.first || d.total < 0 || d.seen != d.total {
		e.c.Frag[FragHeld].Add(1)
		return Consumed
	}
	return e.fragWhole(now, k, d, from, tx)
}

// fragFirst takes what the first fragment tells: where the repeated
// headers end, and whether it names a flow the engine handles, whose
// datagrams under reassembly are capped (PerFlow).
func (e *Engine) fragFirst(d *fragDgram, from PortID, p *packet.Packet, fr packet.Fragment) bool {
	d.first, d.l3, d.head = true, p.L3Offset(), fr.Head
	if p.IPVersion() == 6 {
		d.prev, d.next = fr.PrevNext, fr.Proto
	}
	if !p.IsTCP() {
		return true
	}
	fk := flowKeyOf(p, from)
	if f := e.flows[fk]; f == nil || f.state == stPlain {
		return true
	}
	if e.frags.perFlow[fk] >= e.cfg.Fragments.PerFlow {
		return false
	}
	e.frags.perFlow[fk]++
	d.flow, d.flowCounts = fk, true
	return true
}

// fragWhole reassembles datagram d, all of whose fragments are held, and
// hands it to Handle (the package comment says what follows).
func (e *Engine) fragWhole(now int64, k fragKey, d *fragDgram, from PortID, tx [2]TxSink) Verdict {
	buf := make([]byte, d.head+d.total)
	for _, h := range d.held {
		if h.off == 0 {
			copy(buf, h.b[:d.head])
		}
		copy(buf[d.head+h.off:], h.b[h.data:h.data+h.n])
	}
	ip := buf[d.l3:]
	if d.prev == 0 {
		binary.BigEndian.PutUint16(ip[6:], binary.BigEndian.Uint16(ip[6:])&0x4000) // DF stays
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		ihl := int(ip[0]&0x0f) * 4
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:ihl], 0))
	} else {
		buf[d.prev] = d.next
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-40))
	}
	held, head, l3, v6 := d.held, d.head, d.l3, d.prev != 0
	mtu := head - l3 + d.maxData
	if v6 {
		mtu += 8 // the Fragment header each fragment carried
	}
	var wp packet.Packet
	if wp.Decode(buf) != nil || (wp.IsTCP() || wp.IsICMP()) && !wp.VerifyL4Checksum() {
		// Not one datagram: a forged or corrupted fragment among them
		// (the receiving host would discard it too; so is a
		// source-routed one, whose pseudo-header the sum cannot know).
		return e.fragBad(d, FragBad)
	}
	fk, isICMP := flowKeyOf(&wp, from), wp.IsICMP()
	e.fragForget(k, d, false)
	e.c.Frag[FragReassembled].Add(1)
	// Fragments of a handled flow: its segments must fit where they did.
	f := e.flows[fk]
	var pmssR, pmssL uint16
	var pmtuAt int64
	if wp.IsTCP() && f != nil && f.state != stPlain {
		pmssR, pmssL, pmtuAt = f.pmssR, f.pmssL, f.pmtuAt
		f.lowerPMSS(now, mtu)
	}
	e.frags.whole = true
	v := e.HandlePacket(now, from, &wp, tx) // decoded above: no second parse
	e.frags.whole = false
	switch v {
	case Dropped:
		if f != nil && e.flows[fk] == f {
			f.pmssR, f.pmssL, f.pmtuAt = pmssR, pmssL, pmtuAt // it told nothing about the path
		}
		if isICMP {
			e.c.Frag[FragQuoteDropped].Add(1)
		}
	case Passthrough, ForwardInPlace:
		if ipLenOf(buf, l3, v6) != len(buf)-l3 {
			// Handle changed the datagram's length: the fragments no
			// longer add up to it.
			e.c.Frag[FragWholeDropped].Add(1)
			e.c.Drops[DropFragment].Add(1)
			break
		}
		for _, h := range held {
			copy(h.b[h.data:h.data+h.n], buf[head+h.off:]) // what Handle changed in place
			if e.sendCopy(tx[from.Other()], h.b) {
				e.c.Frag[FragPassed].Add(1)
			}
		}
	}
	return Consumed
}

// fragMayHold reports whether the fragments of a datagram whose
// fragmentable part begins with protocol proto (IPv4: the datagram's
// protocol; IPv6: the Fragment header's Next Header) may be TCP or ICMP,
// the engine's business: those are held until whole.
func fragMayHold(proto uint8) bool {
	switch proto {
	case packet.ProtoTCP, packet.ProtoICMP, packet.ProtoICMPv6,
		packet.ProtoHopByHop, packet.ProtoRouting, packet.ProtoFragment, packet.ProtoAH, packet.ProtoDstOpts,
		packet.ProtoMobility, packet.ProtoHIP, packet.ProtoShim6, 253, 254: // 253, 254: experiments (RFC 3692)
		return true
	}
	return false
}

// ipLenOf reads the length of the IP datagram at l3 from its header.
func ipLenOf(b []byte, l3 int, v6 bool) int {
	if v6 {
		return 40 + int(binary.BigEndian.Uint16(b[l3+4:]))
	}
	return int(binary.BigEndian.Uint16(b[l3+2:]))
}

// lowerPMSS lowers f's segment sizes both ways to fit the MTU the
// fragments of one of its datagrams showed, as a packet-too-big would
// (and for as long), but without its floors: the fragments crossed that
// link, so no host's floor applies to it, down to the smallest MSS taken.
func (f *flow) lowerPMSS(now int64, mtu int) {
	if m := max(mtu-(f.toR.l4-f.toR.l3)-20, minMSS); m < f.segR() {
		f.pmssR, f.pmtuAt = uint16(m), now
	}
	if m := max(mtu-(f.toL.l4-f.toL.l3)-20, minMSS); m < f.segL() {
		f.pmssL, f.pmtuAt = uint16(m), now
	}
}

// fragBad discards datagram d for reason ev (counted) and drops the
// fragment in hand.
func (e *Engine) fragBad(d *fragDgram, ev int) Verdict {
	e.c.Frag[ev].Add(1)
	if n := len(d.held); n > 0 {
		e.c.Drops[DropFragment].Add(uint64(n))
	}
	e.fragDiscard(d)
	return e.drop(DropFragment)
}

// fragEvictOldest discards the oldest datagram tracked, unless that is
// keep, to make room for a new one or for keep's next fragment; it reports
// whether it discarded one.
func (e *Engine) fragEvictOldest(keep *fragDgram) bool {
	t := &e.frags
	for len(t.order) > 0 {
		o := t.order[0]
		d := t.m[o.k]
		if d != nil && d == keep && d.seq == o.seq {
			return false
		}
		t.order = t.order[1:]
		if d != nil && d.seq == o.seq {
			e.c.Frag[FragLimit].Add(1)
			if n := len(d.held); n > 0 {
				e.c.Drops[DropFragment].Add(uint64(n))
			}
			e.fragForget(o.k, d, false)
			return true
		}
	}
	return false
}

// fragCharge takes n bytes of the table's memory for d, discarding the
// oldest other datagrams while the table is full.
func (e *Engine) fragCharge(d *fragDgram, n int) bool {
	for e.frags.mem+n > e.cfg.Fragments.Memory {
		if !e.fragEvictOldest(d) {
			return false
		}
	}
	e.frags.mem += n
	d.mem += n
	return true
}

// fragDiscard drops what d holds; its later fragments are dropped until
// the timeout (RFC 5722: including those not yet received).
func (e *Engine) fragDiscard(d *fragDgram) {
	e.fragUnflow(d)
	d.state = fragDrop
	e.frags.mem -= d.mem
	d.mem, d.held, d.ranges = 0, nil, nil
}

func (e *Engine) fragUnflow(d *fragDgram) {
	if !d.flowCounts {
		return
	}
	d.flowCounts = false
	if n := e.frags.perFlow[d.flow]; n > 1 {
		e.frags.perFlow[d.flow] = n - 1
	} else {
		delete(e.frags.perFlow, d.flow)
	}
}

// fragForget removes d; expired says the timeout did it.
func (e *Engine) fragForget(k fragKey, d *fragDgram, expired bool) {
	t := &e.frags
	if expired && d.state == fragHold {
		e.c.Frag[FragTimeout].Add(1)
		if n := len(d.held); n > 0 {
			e.c.Drops[DropFragment].Add(uint64(n))
		}
	}
	e.fragUnflow(d)
	t.mem -= d.mem
	delete(t.m, k)
	d.state, d.mem, d.held, d.ranges = fragDrop, 0, nil, nil
	if len(t.order) > 2*len(t.m)+64 {
		// Drop the entries of forgotten datagrams, keeping the order.
		live := t.order[:0]
		for _, o := range t.order {
			if x := t.m[o.k]; x != nil && x.seq == o.seq {
				live = append(live, o)
			}
		}
		clear(t.order[len(live):])
		t.order = live
	}
}

// fragExpire forgets datagrams past their timeout; Tick calls it.
func (e *Engine) fragExpire(now int64) {
	t := &e.frags
	if len(t.m) == 0 || now < t.nextExpire {
		return
	}
	t.nextExpire = now + int64(100*time.Millisecond)
	for k, d := range t.m {
		if now >= d.deadline {
			e.fragForget(k, d, true)
		}
	}
}

// sendCopy sends frame unchanged on to.
func (e *Engine) sendCopy(to TxSink, frame []byte) bool {
	buf := to.Buffer()
	if len(buf) < len(frame) {
		e.c.Drops[DropTxFull].Add(1) // the buffer stays free without a Commit
		return false
	}
	to.Commit(copy(buf, frame))
	return true
}
