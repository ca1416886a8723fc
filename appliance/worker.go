package appliance

import (
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
	"github.com/tcpinc/tcpinc/flowtable"
)

// worker runs one queue index q: it owns inside[q] and outside[q], RX and TX
// of both, so its FrameHandler can transmit on either port for one flow
// (translated data onward, acknowledgements and retransmissions back). It
// owns the flows whose symmetric hash selects it; frames of other flows are
// handed over to their owner.
// queueOf maps a flow to the queue (worker) that receives both of its
// directions: flow.RSS, flow.Fanout.
type queueOf interface{ Queue(k flow.Key) int }

type worker struct {
	id    int // queue index, and index among the workers
	cpu   int // -1: not pinned
	ports [2]Port
	rxd   []Desc // RX batch
	tx    [2]txQueue
	sinks [2]TxSink // &tx[0], &tx[1]
	h     FrameHandler
	blog  Backlogged // h, if it wants to know (nil otherwise)
	ender RoundEnder // h, if it has work at each round's end (nil otherwise)
	// behind: the last batch from the outside port was full (rxFull
	// frames: its port returns no more a call) or frames were held;
	// anyBehind counts the workers behind: a SYN handed over is judged by
	// the appliance, not by its owner's own port.
	behind    bool
	rxFull    int
	anyBehind *atomic.Int32
	idle      time.Duration // longest sleep when idle
	pkt       packet.Packet
	t         [2]tally     // this batch's counts, by arrival port
	c         *[2]counters // published counts, by arrival port

	flows    *flowtable.Table[flowState]
	pass     *passthrough
	nwork    int
	owners   queueOf  // the queue both directions of a flow arrive on (symmetric RSS, fanout); nil: SipHash (flow.Key.Owner)
	out      []*lane  // out[j]: frames for worker j (nil for self)
	in       []*lane  // frames from the other workers
	nextAge  int64    // when to run the next expiry pass (ns)
	nextTick int64    // when the handler's Tick is next due (ns)
	gso      uint16   // Desc.GSO of the frame being handled
	segBufs  [][]byte // handOffSegments' segments, a lane slot each (grown on first use)
	segSizes []int
	segsDone [2]int // segments of the super-segment held at each port that were handed over (handOffSegments)
	csumOK   bool   // its port vouches for its checksums (bump.CsumVerified)
	lastKey  flow.Key
	lastPass bool
	hasLast  bool
	req      chan func(FrameHandler) // Inspect requests (Start mode)
	frag     fragSteer
	wake     *bump.Wake   // ends this worker's wait: the handler's work (Waker) or a hand-off; nil with neither
	peers    []*bump.Wake // peers[j]: worker j's wake source
	handed   []bool       // handed[j]: this round handed worker j frames
	held     [2][]Desc    // received frames waiting for a full lane, by port (receive)
	// A round that comes more than stallGap after the one before means
	// the worker stood still (tcpincd stopped, a paused or migrating VM, a
	// starved CPU) while frames queued in its ports. Until it has read
	// them (a batch short of full from each port) or for catchUpMax, the
	// flow table's expiry and the handler's timers wait: they would judge
	// flows idle by the clock's jump alone, their latest segments unread
	// in the rings (a key exchange aborted with its answer waiting).
	lastRound  int64
	catchUntil int64   // 0: not catching up
	full       [2]bool // the last receive from each port took a full batch, or frames are held
	// catching counts the workers of the appliance that are still reading
	// their ports' backlog (caught: this one is done with its own): a
	// flow's frames may wait in another worker's ring (hand-offs), so the
	// timers wait for all of them, or for catchUpMax.
	catching *atomic.Int32
	caught   bool
}

const (
	// agePeriod is how often a worker expires flows.
	agePeriod = int64(100 * time.Millisecond)
	// tickPeriod is how often a busy worker calls its handler's Tick;
	// an idle one sleeps at most engineIdleWait.
	tickPeriod     = int64(time.Millisecond)
	engineIdleWait = 2 * time.Millisecond
	// idleWait bounds an idle worker's sleep when its handler is
	// Passthrough (no timers), so hand-offs, expiry and Stop are noticed.
	idleWait = 20 * time.Millisecond
	// handoffBatch bounds the frames taken from one lane per poll.
	handoffBatch = 256
	// stallGap: a running worker polls at least every idleWait; a gap
	// longer than stallLog is logged (Appliance.run).
	stallGap   = int64(500 * time.Millisecond)
	catchUpMax = int64(time.Second)
	stallLog   = time.Second
)

// testHookAfterLanes, if set (tests only), runs in each round after the
// worker took what its lanes held.
var testHookAfterLanes func(*worker)

// poll runs one round to completion: frames handed over by other workers,
// then a batch from each port, the handler's timers, one transmission per
// port. It returns the number of frames handled. now is the worker's clock
// in nanoseconds (monotonic).
func (w *worker) poll(now int64) int {
	select {
	case fn := <-w.req:
		fn(w.h)
	default:
	}
	if now-w.lastRound > stallGap {
		if w.catchUntil == 0 || w.caught {
			w.catching.Add(1)
		}
		w.catchUntil, w.caught = now+catchUpMax, false
	}
	w.lastRound = now
	if now >= w.nextAge && w.catchUntil == 0 {
		w.pass.expire(w, now)
		w.nextAge = now + agePeriod
	}
	if w.wake != nil && w.wake.Signaled() {
		// The handler's work finished (a key exchange on the pool): a
		// busy worker, which never sleeps and so never sees its wake
		// source in wait, collects it now, not at its next tickPeriod.
		// At thousands of fresh connections a second that was up to a
		// millisecond more at each appliance for most of them.
		// Drained first in the round: a signal that comes after this
		// (a frame handed over, Stop) stays set for wait; drained after
		// the lanes, one that came in between was lost with its frame
		// until the next idle timeout.
		w.wake.Drain()
		w.nextTick = 0
	}
	w.hasLast = false
	n := w.drainHandoffs(now)
	if testHookAfterLanes != nil {
		testHookAfterLanes(w)
	}
	n += w.receive(Inside, now)
	n += w.receive(Outside, now)
	if w.ender != nil {
		w.ender.EndRound(now, w.sinks)
	}
	if w.catchUntil != 0 {
		if !w.caught && (!w.full[Inside] && !w.full[Outside] || now >= w.catchUntil) {
			w.caught = true
			w.catching.Add(-1)
		}
		if w.caught && w.catching.Load() == 0 || now >= w.catchUntil {
			w.catchUntil, w.caught = 0, false
		}
	}
	if now >= w.nextTick && w.catchUntil == 0 {
		w.h.Tick(now, w.sinks)
		w.nextTick = now + tickPeriod
	}
	w.tx[0].flush()
	w.tx[1].flush()
	w.c[0].add(&w.t[0])
	w.c[1].add(&w.t[1])
	w.wakeOwners() // after the counts: an owner woken may read them
	return n
}

// receive takes one batch from port p and dispatches every frame. A frame
// whose owner's lane is full stops the batch: it and the rest stay held,
// unreleased, and go first next round, while no new frame is taken from
// the port (backpressure into its RX ring instead of a drop in the lane).
func (w *worker) receive(p PortID, now int64) int {
	port := w.ports[p]
	descs := w.held[p]
	held := len(descs) > 0
	if !held {
		descs = w.rxd[:port.Receive(w.rxd)]
	}
	batch := w.rxFull // what a port returns at most a call (no handler: the batch)
	if batch == 0 {
		batch = len(w.rxd)
	}
	w.full[p] = held || len(descs) >= batch
	if p == Outside && w.blog != nil {
		w.noteBacklog(w.full[p])
	}
	if len(descs) == 0 {
		return 0
	}
	t := &w.t[p]
	done := len(descs)
	for i, d := range descs {
		frame := port.Frame(d)
		w.gso, w.csumOK = d.GSO, d.Csum == bump.CsumVerified
		if !w.dispatch(p, frame, now) {
			done = i
			break
		}
		t.frames++
		t.bytes += uint64(len(frame))
	}
	port.Release(descs[:done])
	// Keep the rest (copy: descs may be w.held[p] itself).
	w.held[p] = append(w.held[p][:0], descs[done:]...)
	w.gso, w.csumOK = 0, false
	if done == 0 {
		return 1 // held frames: not idle, the owner is draining its lane
	}
	return done
}

// noteBacklog records whether this worker is behind its outside port and
// tells its handler whether any worker is.
func (w *worker) noteBacklog(behind bool) {
	if behind != w.behind {
		w.behind = behind
		if behind {
			w.anyBehind.Add(1)
		} else {
			w.anyBehind.Add(-1)
		}
	}
	w.blog.SetBacklog(w.anyBehind.Load() > 0)
}

// frameKind is what the worker needs to know about a frame to route it.
type frameKind uint8

const (
	kindOther     frameKind = iota // not a flow's frame: forwarded by whoever receives it
	kindTCP                        // TCP segment: key is its direction
	kindICMPQuote                  // ICMP error quoting TCP: key is the quoted segment's direction
	kindFragment                   // an IP fragment, for the handler of its datagram's flow (fragsteer.go)
)

// classify decodes frame into w.pkt.
func (w *worker) classify(from PortID, frame []byte) (frameKind, flow.Key) {
	err := w.pkt.Decode(frame)
	if w.pkt.IsFragment() {
		// Every fragment goes to a handler that may need it (an engine),
		// even one that does not decode: a later fragment has no ports, a
		// first one may belong to an encrypted flow.
		if _, none := w.h.(Passthrough); !none {
			return kindFragment, flow.Key{}
		}
	}
	if err != nil {
		w.t[from].unparsed++
		return kindOther, flow.Key{}
	}
	if k, ok := w.pkt.FlowKey(); ok {
		return kindTCP, k
	}
	if w.pkt.IsICMP() {
		if k, ok := w.pkt.QuotedFlowKey(); ok {
			return kindICMPQuote, k
		}
	}
	return kindOther, flow.Key{}
}

// dispatch handles a frame this worker received: its own flows here, other
// workers' flows through their lane, everything else forwarded unchanged.
// It reports false, having done nothing, when the frame belongs to another
// worker whose lane is full.
func (w *worker) dispatch(from PortID, frame []byte, now int64) bool {
	kind, key := w.classify(from, frame)
	if kind == kindOther {
		w.tx[1-from].forward(frame, w.gso)
		return true
	}
	if kind == kindFragment && w.nwork > 1 {
		w.dispatchFragment(from, frame, now)
		return true
	}
	if owner := w.ownerOf(key); owner != w.id && kind != kindFragment {
		l := w.out[owner]
		if len(frame) > l.size && w.gso > 0 {
			return w.handOffSegments(owner, from, frame)
		}
		if len(frame) <= l.size && l.full() {
			return false
		}
		w.handOff(owner, from, frame, false, w.gso)
		return true
	}
	w.process(from, frame, now, kind, key)
	return true
}

// ownerOf is the worker that owns k's flow: the queue symmetric RSS (or
// the AF_PACKET fanout program) puts both of its directions on, so the
// kernel brings the owner its frames and only frames it cannot place
// (fragments, ICMP errors) are handed over;
// without it a keyed hash, and the frames that arrive elsewhere are handed
// over. Both are the same for k and k.Reverse().
func (w *worker) ownerOf(k flow.Key) int {
	if w.nwork <= 1 {
		return 0
	}
	if w.owners != nil {
		return w.owners.Queue(k)
	}
	return k.Owner(w.nwork)
}

// wakeOwners ends the wait of every worker this round handed frames to,
// so that they do not sit in a lane until the owner's idle timeout.
func (w *worker) wakeOwners() {
	for j, h := range w.handed {
		if h {
			w.handed[j] = false
			w.peers[j].Signal()
		}
	}
}

// drainHandoffs handles the frames other workers handed to this one.
func (w *worker) drainHandoffs(now int64) int {
	n := 0
	for _, l := range w.in {
		for range handoffBatch {
			h, ok := l.frames.Pop()
			if !ok {
				break
			}
			frame := l.frame(h)
			w.gso = h.gso // it goes on as the segments it came as
			if kind, key := w.classify(h.from, frame); kind == kindFragment && !h.steered {
				w.dispatchFragment(h.from, frame, now)
			} else if kind != kindOther {
				w.process(h.from, frame, now, kind, key)
			} else {
				w.tx[1-h.from].forward(frame, 0) // cannot happen: the sender classified it
			}
			w.gso = 0
			l.release(h)
			n++
		}
	}
	return n
}

// process gives a frame of an owned flow to the handler and carries out
// its verdict. w.pkt holds the frame's decoding.
func (w *worker) process(from PortID, frame []byte, now int64, kind frameKind, key flow.Key) {
	flags := w.pkt.Flags()
	frag := w.pkt.IsFragment()
	if w.csumOK {
		w.pkt.TrustL4Checksum() // the handler need not sum it again
	}
	// A super-segment's segment size (GRO): the size its sender chose,
	// which the engine's frames keep.
	w.pkt.SetSegSize(int(w.gso))
	v := w.h.HandlePacket(now, from, &w.pkt, w.sinks) // the frame parsed once
	t := &w.t[from]
	switch v {
	case engine.Passthrough, engine.ForwardInPlace:
		t.verdicts[v]++
		t.verdictBytes[v] += uint64(len(frame))
		w.tx[1-from].forward(frame, w.gso)
	case engine.Forwarded, engine.Consumed, engine.Dropped:
		t.verdicts[v]++
		t.verdictBytes[v] += uint64(len(frame))
	default:
		t.verdicts[0]++ // a handler bug: drop rather than guess
	}
	if kind == kindTCP && v != engine.Dropped {
		// A dropped frame went nowhere: it neither opens nor ends a
		// connection. (Under a SYN flood the engine drops most SYNs;
		// tracking each cost a flow-table insert and two fast-path map
		// deletes, and the worker fell behind its receive ring.)
		w.track(key, flags, now, v == engine.Passthrough && !frag)
	}
}

// track feeds the fast-path logic. A bulk transfer brings a batch of
// segments of one flow; the flow table needs only the first of them (it
// refreshes the idle time, and the batch shares one clock). Segments with
// SYN, FIN or RST always count.
func (w *worker) track(key flow.Key, flags uint8, now int64, pass bool) {
	const control = packet.FlagSYN | packet.FlagFIN | packet.FlagRST
	if flags&control == 0 && w.hasLast && key == w.lastKey && pass == w.lastPass {
		return
	}
	w.lastKey, w.lastPass, w.hasLast = key, pass, true
	w.pass.apply(w, &flowEvent{key: key, now: now, flags: flags, pass: pass})
}

// wait sleeps until either port may have frames, the handler's wake source
// fires (the next round then runs the handler's Tick at once), or the idle
// time passes.
func (w *worker) wait() error {
	if pw, ok := w.ports[0].(bump.PairWaiter); ok {
		if handled, woke, err := pw.WaitPair(w.ports[1], w.wake, w.idle); handled {
			if woke {
				w.wake.Drain()
				w.nextTick = 0 // the handler's Tick collects the finished work
			}
			return err
		}
	}
	// Ports of different kinds: wait on each in turn, briefly.
	if err := w.ports[0].Wait(w.idle / 2); err != nil {
		return err
	}
	return w.ports[1].Wait(w.idle / 2)
}
