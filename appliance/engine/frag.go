package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// IP fragments.
//
// Every fragment of a TCP datagram reaches the engine (and every fragment of
// an ICMP message: a later fragment of an error may hold the rest of a
// quote). The decision is made once per datagram, when its first fragment
// (the only one with ports) is seen:
//
//   - no flow, or a plain one: every fragment passes unchanged, so plain
//     TCP works as it would without the appliance;
//   - a flow the engine handles: the datagram is reassembled and handled as
//     one segment; what leaves is built by the engine in segments that fit
//     (frames no larger than the MSS, never fragmented), so no fragment of
//     such a flow crosses in either direction;
//   - an ICMP error quoting a segment of a flow the engine handles: every
//     fragment is dropped (from the inside it may quote plaintext).
//
// A non-first fragment that arrives before its first fragment is held
// (copied) until the first one decides, or the timeout discards it: it has
// no ports, so nothing else can tell whose it is. Reassembly follows RFC
// 5722 for both IP versions: a fragment that overlaps another discards the
// whole datagram, including fragments still to come (an exact duplicate is
// dropped alone, RFC 8200 §4.5). Everything is bounded: datagrams tracked,
// datagrams per flow under reassembly, fragments per datagram, bytes held,
// and time. Counters.Frag counts every decision and drop.
//
// The fragments of a negotiated flow tell the MTU of the link the
// appliance sits on (a router fragmented them to cross it, both ports being
// on it): the flow's MSS both ways is lowered to fit the largest fragment,
// so what the engine sends fits where the fragments did.

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
	FragPassed       = iota // fragments of datagrams no handled flow owns, passed unchanged
	FragHeld                // non-first fragments held until their first fragment came
	FragReassembled         // datagrams of handled flows reassembled and handled as one segment
	FragWholeDropped        // reassembled datagrams the flow would have passed whole (it fell back meanwhile): dropped, the host resends
	FragQuoteDropped        // fragments of an ICMP error quoting a handled flow: dropped
	FragOverlap             // datagrams discarded for an overlapping fragment (RFC 5722)
	FragDuplicate           // exact duplicate fragments dropped (RFC 8200 §4.5)
	FragBad                 // datagrams discarded for a bad fragment length or offset
	FragTimeout             // datagrams discarded incomplete at the timeout (held or under reassembly)
	FragLimit               // datagrams or fragments dropped because a limit was hit
	FragDiscarded           // fragments of a datagram already discarded (overlap, bad, limit)
	NumFragEvents
)

// FragNames label Counters.Frag.
var FragNames = [NumFragEvents]string{"passed", "held", "reassembled", "whole_dropped", "quote_dropped",
	"overlap", "duplicate", "bad", "timeout", "limit", "discarded"}

// fragKey names one datagram: source, destination, identification, and
// for IPv4 the protocol (RFC 791 §3.2; RFC 8200 §4.5 uses no protocol).
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type fragState uint8

const (
	fragHold  fragState = iota // no first fragment yet: later ones held
	fragPass                   // not the engine's: fragments pass unchanged
	fragDrop                   // discarded: fragments dropped
	fragReasm                  // being reassembled
)

type heldFrag struct {
	from PortID
	b    []byte
}

// fragDgram is one tracked datagram.
type fragDgram struct {
	state    fragState
	deadline int64
	mem      int // bytes charged to the table
	held     []heldFrag
	// Reassembly: buf holds the first fragment's headers up to the
	// fragmentable part (head bytes), then the data at its offsets.
	flow   flowKey
	from   PortID
	l3     int
	head   int
	prev   int   // IPv6: offset in buf of the Next Header to set; 0 for IPv4
	next   uint8 // IPv6: the Fragment header's Next Header
	buf    []byte
	ranges [][2]int
	seen   int
	total  int // data length, -1 until the last fragment came
	// Passed or dropped: when every fragment has gone by, d is forgotten.
	prog packet.FragProgress
}

// fragTable is the engine's fragment state.
type fragTable struct {
	m          map[fragKey]*fragDgram
	perFlow    map[flowKey]int
	mem        int
	nextExpire int64
	whole      bool // handling a reassembled datagram
}

func fragKeyOf(p *packet.Packet, fr packet.Fragment) fragKey {
	k := fragKey{id: fr.ID, v6: p.IPVersion() == 6}
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
	k := fragKeyOf(p, fr)
	d := t.m[k]
	if d != nil && now >= d.deadline {
		e.fragForget(k, d, true)
		d = nil
	}
	first := fr.Offset == 0
	if d == nil {
		if len(t.m) >= e.cfg.Fragments.MaxDatagrams {
			e.c.Frag[FragLimit].Add(1)
			return e.drop(DropFragment)
		}
		d = &fragDgram{state: fragHold, deadline: now + int64(e.cfg.Fragments.Timeout), total: -1}
		t.m[k] = d
	}
	if !first || d.state != fragHold {
		switch d.state {
		case fragHold:
			if len(d.held) >= maxFragsPerDatagram || !e.fragCharge(d, len(p.Frame())) {
				e.c.Frag[FragLimit].Add(1)
				e.fragDiscard(d)
				return e.drop(DropFragment)
			}
			d.held = append(d.held, heldFrag{from: from, b: bytes.Clone(p.Frame())})
			e.c.Frag[FragHeld].Add(1)
			return Consumed
		case fragPass:
			e.c.Frag[FragPassed].Add(1)
			if d.prog.Add(fr, p.End()-fr.Data) {
				e.fragForget(k, d, false)
			}
			return Passthrough
		case fragDrop:
			e.c.Frag[FragDiscarded].Add(1)
			if d.prog.Add(fr, p.End()-fr.Data) {
				e.fragForget(k, d, false)
			}
			return e.drop(DropFragment)
		}
		return e.fragAdd(now, k, d, p, fr, tx)
	}
	// The first fragment decides.
	held := d.held
	d.held = nil
	t.mem -= d.mem
	d.mem = 0
	v := e.fragDecide(now, k, d, from, p, fr, tx)
	complete := false
	if d.state == fragPass || d.state == fragDrop {
		// (p still holds the first fragment: only a reassembly, which
		// Handle decodes into e.pkt, may replace it.)
		complete = d.prog.Add(fr, p.End()-fr.Data)
	}
	for _, h := range held {
		if d.state == fragReasm {
			var hp packet.Packet
			if hp.Decode(h.b) != nil {
				continue // decoded once already
			}
			hf, _ := hp.Fragment()
			e.fragAdd(now, k, d, &hp, hf, tx)
			continue
		}
		if d.state == fragPass && e.sendCopy(tx[h.from.Other()], h.b) {
			e.c.Frag[FragPassed].Add(1)
		} else {
			e.c.Frag[FragDiscarded].Add(1)
			e.c.Drops[DropFragment].Add(1)
		}
		var hp packet.Packet
		hp.Decode(h.b)
		if hf, ok := hp.Fragment(); ok {
			complete = d.prog.Add(hf, hp.End()-hf.Data)
		}
	}
	if complete && e.frags.m[k] == d {
		e.fragForget(k, d, false)
	}
	return v
}

// fragDecide settles a datagram's fate from its first fragment (p, which
// it may clobber when p is e.pkt) and returns the first fragment's verdict.
func (e *Engine) fragDecide(now int64, k fragKey, d *fragDgram, from PortID, p *packet.Packet, fr packet.Fragment, tx [2]TxSink) Verdict {
	switch {
	case p.IsTCP():
		var fk flowKey
		if from == Inside {
			fk = flowKey{in: netip.AddrPortFrom(p.SrcAddr(), p.SrcPort()), out: netip.AddrPortFrom(p.DstAddr(), p.DstPort())}
		} else {
			fk = flowKey{in: netip.AddrPortFrom(p.DstAddr(), p.DstPort()), out: netip.AddrPortFrom(p.SrcAddr(), p.SrcPort())}
		}
		f := e.flows[fk]
		if f == nil && e.neg.has(fk) {
			// A negotiated connection this engine has no record of (a
			// previous run encrypted it): its fragments may carry
			// plaintext for the wire or ciphertext for a host. Dropped;
			// its next whole segment is reset (stray).
			d.state = fragDrop
			return e.drop(DropStale)
		}
		if f == nil || f.state == stPlain {
			break
		}
		if e.frags.perFlow[fk] >= e.cfg.Fragments.PerFlow {
			e.c.Frag[FragLimit].Add(1)
			e.fragDiscard(d)
			return e.drop(DropFragment)
		}
		e.frags.perFlow[fk]++
		d.state, d.flow, d.from, d.l3 = fragReasm, fk, from, p.L3Offset()
		d.head = fr.Head
		if p.IPVersion() == 6 {
			d.prev, d.next = fr.PrevNext, fr.Proto
		}
		// The fragments crossed the link the appliance is on: what the
		// engine sends must fit where the largest of them did.
		if mss := p.End() - fr.Data - 20; mss >= minMSS {
			f.mssR = min(f.mssR, uint16(min(mss, 0xffff)))
			f.mssL = min(f.mssL, uint16(min(mss, 0xffff)))
		}
		if !e.fragCharge(d, d.head) {
			e.c.Frag[FragLimit].Add(1)
			e.fragDiscard(d)
			return e.drop(DropFragment)
		}
		d.buf = append(make([]byte, 0, d.head+p.End()-fr.Data), p.Frame()[:d.head]...)
		return e.fragAdd(now, k, d, p, fr, tx)
	case p.IsICMP():
		if q := e.quotedFlow(p); q != nil && q.state != stPlain {
			d.state = fragDrop
			e.c.Frag[FragQuoteDropped].Add(1)
			if from == Inside {
				return e.drop(DropICMPQuote)
			}
			return e.drop(DropFragment)
		}
	}
	d.state = fragPass
	e.c.Frag[FragPassed].Add(1)
	return Passthrough
}

// fragAdd puts one fragment of a datagram under reassembly in place, and
// handles the datagram once it is whole.
func (e *Engine) fragAdd(now int64, k fragKey, d *fragDgram, p *packet.Packet, fr packet.Fragment, tx [2]TxSink) Verdict {
	data := p.Frame()[fr.Data:p.End()]
	o, n := fr.Offset, len(data)
	end := o + n
	// All but the last fragment carry a multiple of 8 bytes (RFC 791 §3.2,
	// RFC 8200 §4.5), and the datagram fits its 16-bit length field.
	hdrLen := d.head - d.l3
	if d.prev != 0 {
		hdrLen -= 40 // the IPv6 payload length does not count the fixed header
	}
	if fr.More && (n == 0 || n%8 != 0) || hdrLen+end > 0xffff ||
		d.total >= 0 && (end > d.total || !fr.More && end != d.total) {
		e.c.Frag[FragBad].Add(1)
		e.fragDiscard(d)
		return e.drop(DropFragment)
	}
	for _, r := range d.ranges {
		if o < r[1] && r[0] < end {
			if r[0] == o && r[1] == end && bytes.Equal(d.buf[d.head+o:d.head+end], data) {
				e.c.Frag[FragDuplicate].Add(1)
				return e.drop(DropFragment)
			}
			e.c.Frag[FragOverlap].Add(1)
			e.fragDiscard(d)
			return e.drop(DropFragment)
		}
	}
	if !fr.More {
		for _, r := range d.ranges {
			if r[1] > end {
				e.c.Frag[FragBad].Add(1)
				e.fragDiscard(d)
				return e.drop(DropFragment)
			}
		}
		d.total = end
	}
	grow := d.head + end - len(d.buf)
	if len(d.ranges) >= maxFragsPerDatagram || grow > 0 && !e.fragCharge(d, grow) {
		e.c.Frag[FragLimit].Add(1)
		e.fragDiscard(d)
		return e.drop(DropFragment)
	}
	if grow > 0 {
		d.buf = append(d.buf, make([]byte, grow)...)
	}
	copy(d.buf[d.head+o:], data)
	d.ranges = append(d.ranges, [2]int{o, end})
	d.seen += n
	if d.total < 0 || d.seen != d.total {
		return Consumed
	}
	// Whole: the first fragment's headers with the fragmentation undone.
	buf := d.buf[:d.head+d.total]
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
	from := d.from
	e.fragForget(k, d, false)
	e.c.Frag[FragReassembled].Add(1)
	e.frags.whole = true
	v := e.Handle(now, from, buf, tx)
	e.frags.whole = false
	switch v {
	case Passthrough, ForwardInPlace:
		// The flow no longer wants it rewritten (it fell back, or ended),
		// but the datagram cannot leave whole where its fragments could
		// not: the host resends, and the fragments of the resent one pass.
		e.c.Frag[FragWholeDropped].Add(1)
		e.c.Drops[DropFragment].Add(1)
	}
	return Consumed
}

// fragCharge takes n bytes of the table's memory for d.
func (e *Engine) fragCharge(d *fragDgram, n int) bool {
	if e.frags.mem+n > e.cfg.Fragments.Memory {
		return false
	}
	e.frags.mem += n
	d.mem += n
	return true
}

// fragDiscard drops what d holds; its later fragments are dropped until
// the timeout (RFC 5722: including those not yet received).
func (e *Engine) fragDiscard(d *fragDgram) {
	if d.state == fragReasm {
		e.fragUnflow(d)
	}
	d.state = fragDrop
	e.frags.mem -= d.mem
	d.mem, d.held, d.buf, d.ranges = 0, nil, nil, nil
}

func (e *Engine) fragUnflow(d *fragDgram) {
	if n := e.frags.perFlow[d.flow]; n > 1 {
		e.frags.perFlow[d.flow] = n - 1
	} else {
		delete(e.frags.perFlow, d.flow)
	}
}

// fragForget removes d; expired says the timeout did it.
func (e *Engine) fragForget(k fragKey, d *fragDgram, expired bool) {
	if expired && (d.state == fragReasm || d.state == fragHold) {
		e.c.Frag[FragTimeout].Add(1)
		if n := len(d.held); n > 0 {
			e.c.Drops[DropFragment].Add(uint64(n))
		}
	}
	if d.state == fragReasm {
		e.fragUnflow(d)
	}
	e.frags.mem -= d.mem
	delete(e.frags.m, k)
	// Fragments still in hand for d (held ones being replayed) are
	// dropped: d is done.
	d.state, d.mem, d.held, d.buf, d.ranges = fragDrop, 0, nil, nil, nil
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
