package engine

import (
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tcpinc/tcpinc/appliance/packet"
)

// Floods. Two bounds keep a flood of new connections (spoofed SYNs with
// TCP-ENO, which the inside host answers, so they reach SYN-ACK-SENT) from
// taking what established connections need:
//
//   - Embryonic records (SYN-SENT, SYN-RECEIVED, SYN-ACK-SENT and
//     key-exchange) are kept on a list in the order they were created and
//     bounded by Config.MaxEmbryonic per engine. A new SYN at the bound
//     evicts the oldest one (one still in a SYN state before one in key
//     exchange, so a live handshake waiting for its Diffie-Hellman is not
//     the first to go). Under a flood of rate r an embryonic record lives
//     MaxEmbryonic/r seconds, far longer than a real handshake's round trip.
//     Established flows are never evicted.
//   - A Memory budget, shared by the workers' engines, bounds the memory of
//     all flows: a fixed charge per record plus the capacity of every
//     per-flow buffer (rings and frame maps, which start empty and grow
//     with use). A new flow is admitted only below 7/8 of the limit (and
//     evicts the oldest embryonic record before it is refused); buffers of
//     flows already under way may grow up to the limit. So new SYNs are
//     shed (left in plain TCP, counted as the "memory" fallback, or dropped
//     under the require policy) before established flows' frames are.
//     The far side's bytes held past holes go before either (prune.go).

// Memory is the global budget for per-flow memory. Its methods are safe for
// concurrent use; the engines of all workers share one (Deps.Memory).
type Memory struct {
	limit   atomic.Int64
	used    atomic.Int64
	peak    atomic.Int64
	refused atomic.Uint64
	// squeezes counts the times an engine found too little to prune of
	// its own: every engine prunes at its next Tick (prune.go), until
	// want, the bytes the last squeeze still lacked, went back.
	squeezes atomic.Uint64
	want     atomic.Int64
}

// NewMemory returns a budget of limit bytes.
func NewMemory(limit int64) *Memory {
	m := &Memory{}
	m.limit.Store(limit)
	return m
}

// SetLimit changes the limit; memory already in use above it stays until
// its flows end.
func (m *Memory) SetLimit(limit int64) { m.limit.Store(limit) }

// Limit, Used and Peak are in bytes; Refused counts the allocations the
// budget refused (new flows and buffer growth).
func (m *Memory) Limit() int64    { return m.limit.Load() }
func (m *Memory) Used() int64     { return m.used.Load() }
func (m *Memory) Peak() int64     { return m.peak.Load() }
func (m *Memory) Refused() uint64 { return m.refused.Load() }

// take charges n bytes if the total stays within the limit (within 7/8 of
// it when admitting a new flow).
func (m *Memory) take(n int64, admit bool) bool {
	if m == nil {
		return true
	}
	lim := m.limit.Load()
	if admit {
		lim -= lim / 8
	}
	u := m.used.Add(n)
	if u > lim {
		m.used.Add(-n)
		m.refused.Add(1)
		return false
	}
	for p := m.peak.Load(); u > p && !m.peak.CompareAndSwap(p, u); p = m.peak.Load() {
	}
	return true
}

// excess is how many bytes must go back before take(n, admit) succeeds.
func (m *Memory) excess(n int64, admit bool) int64 {
	if m == nil {
		return 0
	}
	lim := m.limit.Load()
	if admit {
		lim -= lim / 8
	}
	return m.used.Load() + n - lim
}

// force charges n bytes whatever the limit (small allocations a flow cannot
// do without once admitted: its Init message, frame map growth bounded by
// its rings).
func (m *Memory) force(n int64) {
	if m == nil {
		return
	}
	u := m.used.Add(n)
	for p := m.peak.Load(); u > p && !m.peak.CompareAndSwap(p, u); p = m.peak.Load() {
	}
}

func (m *Memory) give(n int64) {
	if m != nil && n != 0 {
		m.used.Add(-n)
	}
}

// squeeze asks the engines sharing m to prune n bytes (prune.go);
// squeezed counts the requests.
func (m *Memory) squeeze(n int64) {
	if m != nil {
		m.want.Store(n)
		m.squeezes.Add(1)
	}
}

// wanted is what the last squeeze still lacks; gave takes n bytes given
// back off it.
func (m *Memory) wanted() int64 { return max(m.want.Load(), 0) }
func (m *Memory) gave(n int64)  { m.want.Add(-n) }

func (m *Memory) squeezed() uint64 {
	if m == nil {
		return 0
	}
	return m.squeezes.Load()
}

// recordCost is what one flow record is charged: the struct plus its map
// entry, list slot and TCP-ENO settings (an estimate of the latter three,
// checked by TestRecordCostCoversHandshake).
const recordCost = int64(unsafe.Sizeof(flow{})) + 512

// frameRecSize is the size of one frame map entry.
const frameRecSize = int64(unsafe.Sizeof(frameRec{}))

// bufBytes is the capacity of the flow's per-flow buffers.
func (f *flow) bufBytes() int64 {
	return int64(len(f.enc.store.b)+len(f.enc.pre.b)+len(f.rcv.reasm.b)+len(f.rcv.plain.b)) +
		frameRecSize*int64(len(f.enc.frames.r)+len(f.rcv.frames.r)) + f.enc.hh.cost() + f.rcv.held.cost() + f.decBytes()
}

// decBytes is the frame decoder's partial-frame buffer (up to a largest
// frame per flow; a far side can make every flow hold one). It only grows
// in consume, which charges the growth (chargeDecoder), and goes with
// releaseBufs.
func (f *flow) decBytes() int64 {
	if f.dec == nil {
		return 0
	}
	return int64(f.dec.BufferSize())
}

// chargeDecoder charges what the decoder's buffer grew by since it was
// before bytes: allocated already, so whatever the limit.
func (e *Engine) chargeDecoder(f *flow, before int64) {
	if n := f.decBytes(); n > before && f.charged {
		e.mem.force(n - before)
	}
}

// uncharge gives a record's memory back to the budget (it is gone, or
// kept aside: acceptance.go).
func (e *Engine) uncharge(f *flow) {
	if f.charged {
		f.charged = false
		e.mem.give(recordCost + f.bufBytes())
	}
}

// recharge charges a record put back in the table (reinstate), whatever
// the limit: it stands for a connection that was there before.
func (e *Engine) recharge(f *flow) {
	if !f.charged {
		f.charged = true
		e.mem.force(recordCost + f.bufBytes())
	}
}

// freeBufs returns the buffers' memory to the budget (the caller drops
// them).
func (e *Engine) freeBufs(f *flow) {
	e.mem.give(f.bufBytes())
}

// admit charges a new flow record. It reports false when memory refuses
// it. It evicts nothing: under memory pressure from established flows the
// handshakes under way are live connections (a flood is bounded by
// MaxEmbryonic and shed apart). R's bytes held past holes go first
// (prune.go): else a far side could keep every new connection plain with
// them.
func (e *Engine) admit() bool {
	return e.mem.take(recordCost, true) || e.pruneHeld(e.mem.excess(recordCost, true), false) && e.mem.take(recordCost, true)
}

// releaseBufs frees the buffers of a flow that holds no byte either way:
// one whose both FINs are acknowledged (closeCheck; the record lingers
// for HandshakeTimeout, for late segments and tuple reuse, at the cost of
// the record alone), or an open one quiet for bufIdle (releaseIdle). A
// buffer needed again is allocated again, from ringStart up.
func (e *Engine) releaseBufs(f *flow) {
	if f.bufsLive() {
		return
	}
	e.freeBufs(f)
	en, d := &f.enc, &f.rcv
	en.store.b, en.pre.b, d.reasm.b, d.plain.b, en.hh = nil, nil, nil, nil, nil
	e.putSpans(d.held.narrow()) // no range held (bufsLive): freeBufs gave its cost back
	en.frames.r, en.frames.head, d.frames.r, d.frames.head = nil, 0, nil, 0
	if f.dec != nil {
		f.dec.Trim() // holds no partial frame (bufsLive)
	}
}

// bufsLive reports whether a buffer of f still holds bytes it may need:
// frames R has not acknowledged (the Init among them), host bytes before
// the keys or past a hole, wire bytes past a hole or of a partial frame,
// plaintext L has not acknowledged.
func (f *flow) bufsLive() bool {
	en, d := &f.enc, &f.rcv
	return en.frames.n != 0 || en.ackW < en.nextW || en.preEnd > en.nextH || en.hh != nil && en.hh.held.n != 0 ||
		d.frames.n != 0 || d.held.n != 0 || d.ackH < d.nextH || f.dec != nil && f.dec.Buffered() != 0
}

// bufIdle is how long an encrypted connection is quiet before its buffers
// go back to the budget. They grow with the connection's rate (up to the
// retransmit, reassembly and delivery caps, megabytes each) and would
// otherwise stay at their peak until it closes: 75 idle connections that
// once moved bulk data at full window (pooled HTTP or database
// connections, 12 MiB each at the default caps) would hold 7/8 of a 1 GiB
// budget, and every new connection would stay in plain TCP
// (FallbackMemory). Ten seconds of silence means the connection is between
// exchanges; growing the buffers again costs a few allocations, nothing
// per packet.
const bufIdle = int64(10 * time.Second)

// releaseIdle frees the buffers of an open flow quiet for bufIdle, when
// they hold nothing (releaseBufs). R's bytes held past a hole go first:
// after such a silence R has them to send again if they are still wanted,
// and kept they would hold the buffers until the idle timeout.
func (e *Engine) releaseIdle(now int64, f *flow) {
	if f.state == stOpen && now-f.last >= bufIdle && f.bufBytes() != 0 {
		e.dropAhead(f)
		e.releaseBufs(f)
	}
}

// embJoin puts a new handshake at the tail of the embryonic list.
func (e *Engine) embJoin(f *flow) {
	if f.embIn {
		return
	}
	f.embIn, f.embPrev, f.embNext = true, e.embTail, nil
	if e.embTail != nil {
		e.embTail.embNext = f
	} else {
		e.embHead = f
	}
	e.embTail = f
	e.embN++
}

// embLeave takes f off the embryonic list (established, plain or gone).
func (e *Engine) embLeave(f *flow) {
	if !f.embIn {
		return
	}
	if f.embPrev != nil {
		f.embPrev.embNext = f.embNext
	} else {
		e.embHead = f.embNext
	}
	if f.embNext != nil {
		f.embNext.embPrev = f.embPrev
	} else {
		e.embTail = f.embPrev
	}
	f.embIn, f.embPrev, f.embNext = false, nil, nil
	e.embN--
}

// embScan is how many of the oldest embryonic records eviction looks at to
// find one still in a SYN state.
const embScan = 8

// makeRoomEmbryo evicts the oldest embryonic record while the list is at
// its bound, so a new handshake can join.
func (e *Engine) makeRoomEmbryo(now int64, tx [2]TxSink) {
	for e.embN >= e.cfg.MaxEmbryonic && e.evictEmbryo(now, tx) {
	}
}

// evictEmbryo ends the oldest embryonic record, preferring one in a SYN
// state. It reports false when there is none.
func (e *Engine) evictEmbryo(now int64, tx [2]TxSink) bool {
	v := e.embHead
	if v == nil {
		return false
	}
	for f, i := v, 0; f != nil && i < embScan; f, i = f.embNext, i+1 {
		if f.state != stKex {
			v = f
			break
		}
	}
	e.c.EmbryonicEvicted.Add(1)
	if now-v.last < floodAge {
		// Handshakes are pushed out before they could complete: SYNs
		// arrive faster than far sides answer. Shed the unknown ones.
		e.floodUntil = now + floodAge
	}
	switch v.state {
	case stSynAckSent:
		// Our SYN-ACK offered TCP-ENO: a real far side now counts on an
		// encrypted connection, and without the record its Init1 could
		// reach the host as data. Reset it (for a spoofed source the RST
		// goes nowhere). The host is left alone: one frame per evicted
		// record is what a flood costs here, and its SYN-RECEIVED state
		// (if any: a host under a flood answers with SYN cookies) ends when
		// its SYN-ACK retransmission draws the far side's RST.
		v.reason = "evicted in the handshake"
		e.opts.reset()
		if v.toR.ok {
			e.send(tx[Outside], &v.toR, &seg{seq: v.isnL + 1, ack: v.isnR + 1, flags: packet.FlagRST | packet.FlagACK}, nil)
		}
		e.remove(v)
	case stKex:
		e.abort(v, tx, "evicted in the key exchange")
	default:
		// SYN-SENT, SYN-RECEIVED: nothing committed yet. The answer
		// to the SYN passes untracked without TCP-ENO (or is dropped
		// under the require policy), so the connection goes on in
		// plain TCP or not at all, never half negotiated.
		e.remove(v)
	}
	return true
}

// SYN floods from the outside. Bounding handshakes keeps the table usable,
// but under a flood of rate r each record lives only MaxEmbryonic/r, and
// every flood SYN costs the worker a record, a frame to the host and one
// back: a flood beyond what the worker handles fills its receive rings, and
// the kernel then drops frames of established connections as readily as
// SYNs. So when a handshake record is evicted younger than floodAge (SYNs
// come faster than real far sides answer; legitimate handshakes finish in a
// round trip and leave the list), the engine sheds, for floodAge, SYNs from
// the outside whose source address has had no encrypted connection through
// it (a blind spoofer cannot make one: that takes the host's ISN). Of
// those, MaxEmbryonic per floodAge still get a record and TCP-ENO, so each
// admitted handshake lives about floodAge and new peers are not locked out;
// passFactor times as many go on as they came, with no record, as a bridge
// would pass them (the host answers, plain unless it speaks TCP-ENO itself:
// fallback syn_flood; a plain SYN is plain TCP either way), so that a small
// flood costs no connection that plain TCP would carry; only beyond that,
// or while the worker is behind its outside port (SetBacklog: a large
// flood, where forwarding it would cost the worker its rings), are they
// dropped (drop syn_flood). Known peers' SYNs and every segment of
// established flows go on as usual.
const (
	floodAge   = int64(4 * time.Second)
	passFactor = 4
)

// What shedSYN decides for a SYN.
const (
	shedNone = iota // handled as usual
	shedPass        // passed on as it came, with no record
	shedDrop        // dropped
)

// shedSYN decides what becomes of a SYN from the outside with source far
// under a flood.
func (e *Engine) shedSYN(now int64, far netip.Addr) int {
	if now >= e.floodUntil {
		return shedNone
	}
	if e.trusted.known(far, now) {
		return shedNone
	}
	rate := float64(now-e.synAt) * float64(e.cfg.MaxEmbryonic) / float64(floodAge)
	e.synTokens = min(e.synTokens+rate, 8)
	e.passTokens = min(e.passTokens+passFactor*rate, 8*passFactor)
	e.synAt = now
	switch {
	case e.synTokens >= 1:
		e.synTokens--
		return shedNone
	case e.passTokens >= 1 && !e.backlog:
		e.passTokens--
		return shedPass
	}
	return shedDrop
}

// SetBacklog tells the engine whether its worker is behind its outside
// port (appliance.Backlogged): then a flood's SYNs are not passed, each of
// which costs the worker a frame out and the host's answer back, but
// dropped, leaving the worker's time to the established connections.
func (e *Engine) SetBacklog(behind bool) { e.backlog = behind }
