package engine

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// PortID names the appliance's two ports (the workers' bump.PortID).
type PortID = bump.PortID

const (
	Inside  = bump.Inside  // toward the protected hosts
	Outside = bump.Outside // toward the untrusted network
)

// Verdict tells the worker what to do with the frame it handed in.
type Verdict uint8

const (
	// Forwarded: the engine wrote what had to go on (possibly several
	// frames, possibly to both ports) to the sinks; drop the input.
	Forwarded Verdict = iota + 1
	// ForwardInPlace: send the input frame, which the engine may have
	// rewritten in place without changing its length, out of the other
	// port. The flow stays with the engine: no fast path.
	ForwardInPlace
	// Passthrough: send the frame unchanged out of the other port; the
	// flow needs nothing from the engine and may go on the fast path.
	Passthrough
	// Consumed: the engine used the frame and nothing goes on (for example
	// a suppressed duplicate ACK or a queued pre-key segment).
	Consumed
	// Dropped: the frame is discarded; Counters.Drops says why.
	Dropped
)

func (v Verdict) String() string {
	switch v {
	case Forwarded:
		return "forwarded"
	case ForwardInPlace:
		return "forward-in-place"
	case Passthrough:
		return "passthrough"
	case Consumed:
		return "consumed"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Deps are the shared services an engine uses. All are optional.
type Deps struct {
	// Pool runs the Diffie-Hellman of each key exchange off the packet
	// path; results come back through Tick. Nil runs it inline (tests).
	Pool *cryptopool.Pool
	// Keys hands out ready ephemeral key pairs per TEP (cryptopool.Stock);
	// a missing or empty stock makes the engine generate one inline.
	Keys map[tcpcrypt.TEP]*cryptopool.Stock[*tcpcrypt.KeyPair]
	// Cache is the resumption cache, keyed by the far side's address
	// (shared by the workers). Nil disables resumption.
	Cache *tcpcrypt.Cache[netip.Addr]
	// Memory is the budget for per-flow memory shared by the workers'
	// engines. Nil: the engine has its own, of Config.MemoryLimit.
	Memory *Memory
	Log    *slog.Logger
	// Now is the wall clock for FlowInfo.Started (default time.Now).
	Now func() time.Time
	// Negotiated is the set of tuples whose connections negotiated
	// TCP-ENO, shared by the workers' engines and kept where a restarted
	// daemon finds it. Nil: the engine keeps its own, in memory (record
	// expiry is then covered, a restart is not).
	Negotiated *NegotiatedSet
	// KeyLog, when set, is called on the worker's goroutine once per
	// encrypted connection and key generation, with the keys: for
	// debugging decryption only (it exposes the traffic). It must not
	// block; it reports whether it took the line (Counters.KeyLogLines,
	// KeyLogLost). Nil: nothing.
	KeyLog func(KeyLogEntry) bool
	// FlowIDs numbers the flows of all the workers' engines, so that a
	// flow ID names one flow of the appliance (the admin API's
	// /api/v1/flows/{id}, its paging cursor). Nil: the engine numbers its
	// own from 1.
	FlowIDs *atomic.Uint64
	// MTU is the largest IP packet each port carries (indexed by PortID:
	// the interface's MTU, and no more than a TX frame holds). No segment
	// the engine builds toward a port is larger, whatever MSS the hosts
	// announce, and inside hosts are told an MSS whose full segments,
	// sealed, fit the outside port (mss.go). 0: no limit.
	MTU [2]int
	// Trusted is the set of far peers with an encrypted connection, whose
	// SYNs a flood does not shed, shared by the workers' engines (a
	// peer's next connection may land on another worker). Nil: the
	// engine's own.
	Trusted *TrustedPeers
}

// FlowInfo is a snapshot of one flow for the admin API.
type FlowInfo struct {
	ID              uint64
	Inside, Outside netip.AddrPort
	State           string
	Encrypted       bool
	FallbackReason  string
	Role            string // "A" or "B"
	TEP             byte
	AEAD            string
	SessionID       [tcpcrypt.SessionIDLen]byte // valid when Encrypted
	KeyGeneration   uint32
	Resumed         bool
	BytesIn         uint64 // plaintext delivered to the inside host
	BytesOut        uint64 // plaintext sealed toward the far side
	// PacketsIn counts the segments of the connection that came from the
	// far side, PacketsOut those that went to it (frames, the Init
	// message, ACKs the engine sent; a plain flow's segments forwarded),
	// both on the outside port and from the third segment of the TCP
	// handshake on. Segments the kernel fast path carries are not seen;
	// a super-segment a port backend hands over (GRO) counts once.
	PacketsIn  uint64
	PacketsOut uint64
	Started    time.Time
	Transcript []byte
	// Stream is where each direction of an encrypted flow stands, in
	// stream offsets (from ISN+1, host and wire space apart): what a
	// stuck transfer is waiting for. Nil before keys.
	Stream *StreamInfo
}

// StreamInfo is an encrypted flow's progress, both directions.
type StreamInfo struct {
	Out StreamOut // inside host L to far side R: L's bytes sealed
	In  StreamIn  // far side R to inside host L: R's frames opened
}

// StreamOut is the encrypting direction (encDir).
type StreamOut struct {
	HostNext, HostAcked           int64 // L's bytes taken in; R's ACK of them, translated
	WireNext, WireSent, WireAcked int64 // wire bytes framed, sent, acknowledged by R
	Frames                        int   // frames kept for retransmission
	PreKey                        int64 // L's bytes queued before the keys
	WindowR                       int64 // R's window, scaled
	DupAcks                       int
	FIN                           bool // L's FIN went out as a FINp frame
}

// StreamIn is the decrypting direction (decDir).
type StreamIn struct {
	WireNext      int64 // next in-order wire byte (RCV.NXT)
	WireHeldSpans int   // out-of-order wire ranges held
	WireHeldEnd   int64 // end of the highest held range (WireNext if none)
	WireAcked     int64 // end of the last whole frame L acknowledged
	WireAckSent   int64 // the wire ACK R last got
	Custody       int64 // highest wire ACK of a partial frame's bytes
	HostOpened    int64 // plaintext opened (next host byte)
	HostSent      int64 // plaintext sent to L
	HostAcked     int64 // L's cumulative ACK
	PlainFrom     int64 // the re-delivery ring holds nothing below this
	Frames        int   // opened frames L has not acknowledged
	WindowL       int64 // L's window, scaled
	FIN           bool  // R's FIN went to L
}

// Engine runs the per-flow state machine for one worker. It is not safe for
// concurrent use; Counters may be read from any goroutine.
type Engine struct {
	cfg    Config
	deps   Deps
	cache  *tcpcrypt.Cache[netip.Addr] // Deps.Cache, kept while NoResumption hides it
	client *cryptopool.Client
	flows  map[flowKey]*flow
	nextID uint64
	// byID finds a listed flow's slot in list by its ID (Flow), without a
	// scan: kept by listAdd and detach, pointer-free so the collector does
	// not scan it.
	byID map[uint64]uint32
	// counts is the number of listed flows by shownState, plus countEnc
	// for those with a session (recount): the admin API's counts without
	// a scan. counts[0] is the bucket of flows out of the list.
	counts   [2 * countEnc]int
	c        Counters
	pkt      packet.Packet
	si       segInfo
	opts     tcpOpts
	jobs     [16]cryptopool.Job
	cur      *flow    // the flow being worked on, for recovered (recover.go)
	panicLog logLimit // recovered's log line: one a second (recover.go)
	flowLogs logLimit // the per-flow debug lines (flowLog)
	clock    int64    // now of the call under way (HandlePacket, Tick, EndRound)
	retry    []*flow  // flows waiting for the pool to take their key exchange, oldest first (retryKex)
	scratch  [tcpcrypt.MaxFrameLen + 64]byte
	// loans: tails lent to sinks that may not have read them yet
	// (reserveLent).
	loans []loan
	// lastBefore is the handled flow's last before this segment: stale
	// puts it back (a segment a handshake has no use for is no progress).
	lastBefore int64
	// ipIDs numbers the IPv4 frames built without DF (tmpl.finish); it
	// starts anywhere, so that the workers' engines do not count alike.
	ipIDs     uint16
	nextSweep int64
	// nextExpire: when tick next has the resumption cache drop what is
	// past its TTL (cacheExpireEvery).
	nextExpire int64
	list       []*flow // every flow, for sweeps and snapshots (f.idx is its slot)
	// scan is the paged listing under way (FlowPageStep), nil if none: it
	// has visited the slots of list below scanAt, and detach and listAdd
	// keep every flow on its side of scanAt.
	scan      *FlowScan
	scanAt    int
	scanIdle  int     // sweeps since its last step (scanAbandoned)
	due       []int64 // due[i]: the sweep skips list[i] until then (sweepDue; 0: never skips)
	reclaimAt int     // next slot of list that reclaim examines
	cursor    int
	neg       *NegotiatedSet
	frags     fragTable
	mem       *Memory
	// The embryonic list (flood.go), oldest first.
	embHead, embTail *flow
	embN             int
	floodUntil       int64                // shedding untrusted SYNs until then
	synTokens        float64              // untrusted SYNs admitted while shedding
	passTokens       float64              // untrusted SYNs passed with no record while shedding
	backlog          bool                 // the worker is behind its outside port (SetBacklog)
	synAt            int64                // when synTokens was last refilled
	trusted          *TrustedPeers        // far addresses with an encrypted connection (Deps.Trusted)
	plainPeers       map[netip.Addr]int64 // far addresses that answered a SYN with ENO without, and when (plainpeers.go)
	enoPaths         map[netip.Addr]int64 // far addresses whose path lost ENO after the SYNs, and when (enopath.go)
	// hot is the flow lookup found last, while it is in flows.
	hot *flow
	// ackHeld lists the flows whose ACK to R waits for the rest of a
	// release (ackRelease); Tick sends what is still held.
	ackHeld []*flow
	// dupOwed lists the flows owed a duplicate ACK at the round's end
	// (dupack.go).
	dupOwed []*flow
	// spanFree: blocks of held ranges no flow uses, spanFreeN of them
	// (spans.go).
	spanFree  *spanBlock
	spanFreeN int
	// guard marks a guard (NewGuard, guard.go), which handles every
	// frame in guardPacket.
	guard bool
	// passedSYNs are SYNs that passed with no record on a tuple in the
	// negotiated set: the other end's SYN-ACK answering one shows a new
	// connection there (guard.go).
	passedSYNs map[flowKey]passedSYN
	// bareSYN: the far SYN in hand found no record on a tuple in the
	// negotiated set; if it leaves the connection plain, plain keeps no
	// record (farSYN).
	bareSYN bool
	// ahead lists the flows that hold R's bytes past a hole, the first
	// listed first (prune.go); aheadMax is its length at which it is
	// next compacted, aheadGone says a listed flow was removed since
	// (the sweep compacts it), squeezeSeen is the budget's squeeze count it last
	// answered.
	ahead       []*flow
	aheadMax    int
	aheadGone   bool
	squeezeSeen uint64
	// Frames sealed and opened since the last Tick, published to
	// Counters there: an atomic add per frame cost more than the rest of
	// the frame's bookkeeping together.
	sealed, opened uint64
}

// New returns an engine.
func New(cfg Config, deps Deps) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	e := &Engine{cfg: c, deps: deps, flows: make(map[flowKey]*flow), byID: make(map[uint64]uint32), neg: deps.Negotiated, mem: deps.Memory, trusted: deps.Trusted, plainPeers: make(map[netip.Addr]int64), enoPaths: make(map[netip.Addr]int64)}
	e.ipIDs = uint16(rand.Uint32())
	if e.mem == nil {
		e.mem = NewMemory(c.MemoryLimit)
	}
	if e.trusted == nil {
		e.trusted = NewTrustedPeers()
	}
	if e.neg == nil {
		e.neg = NewNegotiatedSet(NegotiatedConfig{Capacity: 2 * c.MaxFlows, Now: deps.Now})
	}
	if deps.Pool != nil {
		e.client, err = deps.Pool.NewClient(1024)
		if err != nil {
			return nil, err
		}
	}
	e.cache = deps.Cache
	if c.NoResumption {
		e.deps.Cache = nil
	}
	return e, nil
}

// Counters returns the engine's counters.
func (e *Engine) Counters() *Counters { return &e.c }

// Config returns the configuration in force, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Reconfigure replaces the configuration while the engine runs (it
// implements control.Reconfigurer). Call it on the worker's goroutine
// between two calls of Handle or Tick. cfg is checked as New checks it; on
// an error nothing changes, else all of it applies at once:
//   - new connections use all of it: TEPs, AEADs, policies, caps, rekey
//     settings, resumption on or off, timers. A TEP without a key stock in
//     Deps.Keys gets its key pairs generated inline (Counters.KeyGenInline).
//   - existing connections keep what they negotiated or were given at
//     their SYN (TEP, AEAD, role, policy); from now on they use the new
//     rekey thresholds, measured over the current key generation (a flow
//     already past a lowered threshold rekeys with its next frame, or at
//     the next sweep when idle), and the new timers.
//   - the per-flow buffer caps apply to existing flows as limits on
//     growth: a buffer already larger than a lowered cap keeps its size and
//     what it holds, only new allocations obey the cap (the windows the
//     engine advertises follow the new caps, so the hosts slow down).
//     Flows beyond a lowered MaxFlows stay; new ones are refused until
//     the count falls under it.
func (e *Engine) Reconfigure(cfg Config) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	// The caller keeps its slices: take copies, so that a later change to
	// them cannot reach a running engine by the side door.
	c.TEPs, c.AEADs, c.Policies = slices.Clone(c.TEPs), slices.Clone(c.AEADs), slices.Clone(c.Policies)
	e.cfg = c
	e.mem.SetLimit(c.MemoryLimit)
	e.deps.Cache = e.cache
	if c.NoResumption {
		e.deps.Cache = nil
	}
	for _, f := range e.list {
		if f.state != stPlain {
			f.setCaps(&c)
		}
	}
	clear(e.due) // the timers changed: the next sweep looks at every flow again
	return nil
}

// publish adds the frames sealed and opened since the last call to the
// counters. Tick calls it: a busy worker ticks every millisecond.
func (e *Engine) publish() {
	if e.sealed != 0 {
		e.c.FramesSealed.Add(e.sealed)
		e.sealed = 0
	}
	if e.opened != 0 {
		e.c.FramesOpened.Add(e.opened)
		e.opened = 0
	}
}

func (e *Engine) drop(r int) Verdict {
	e.c.Drops[r].Add(1)
	return Dropped
}

// Handle processes one frame received at port from. now is monotonic
// nanoseconds. tx are the two ports' sinks, indexed by PortID.
func (e *Engine) Handle(now int64, from PortID, frame []byte, tx [2]TxSink) Verdict {
	e.pkt.Decode(frame) // HandlePacket looks at the outcome
	v := e.HandlePacket(now, from, &e.pkt, tx)
	e.EndRound(now, tx) // a round of one frame
	return v
}

// handlePacket is HandlePacket (recover.go) without its recovery.
func (e *Engine) handlePacket(now int64, from PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	e.cur = nil
	if e.guard {
		return e.guardPacket(now, from, p, tx)
	}
	e.poll(now, tx, false)
	if p.Err() != nil {
		// Malformed: it could be part of an encrypted connection that the
		// far end would still accept, so it must not leave as it is.
		return e.drop(DropMalformed)
	}
	if p.IsFragment() {
		// Reassembled for a flow the engine handles, else passed
		// (frag.go); a fragmented ICMP error is decided there too.
		return e.fragment(now, from, p, tx)
	}
	if p.IsICMP() {
		return e.icmp(now, from, p, tx)
	}
	if !p.IsTCP() {
		return Passthrough
	}
	k := flowKeyOf(p, from)
	e.si.read(p)
	f := e.lookup(k)
	e.cur = f
	if f != nil && (f.state != stPlain || f.watchInit1) {
		// Its segments may make timers due earlier than the sweep
		// was told (a rekey answer owed, bytes held, the ring full,
		// a FIN): the sweep looks at it again (sweepDue). A plain
		// record's only timer runs from its last segment, unless it
		// still watches for an Init1 (firstBytes may start a key
		// exchange).
		e.wake(f)
	}
	fl := p.Flags()
	if (fl&packet.FlagSYN != 0 || f != nil && f.state < stOpen) && !p.SegmentsLeft() && !p.VerifyL4Checksum() {
		// A handshake segment the receiver will drop (corrupted on the
		// way, or forged without care) must not move the record: one
		// passed, it had set the peer's TEP, window scale or MSS, made
		// a fallback or reached the host rewritten with a good sum. (A
		// source-routed one's sum covers an address the engine does not
		// check against; it stays plain: leftAlone.)
		return e.drop(DropChecksum)
	}
	if f != nil && f.state < stDead && !f.sameVLANs(p, from) {
		// Flows are keyed without VLAN IDs (docs/architecture.md): one
		// of another VLAN with the same addresses and ports is not this
		// connection, and must never be sealed into its stream or take
		// its place.
		return e.drop(DropOtherVLAN)
	}
	if f != nil && !f.held && fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK && f.answers(p, from) {
		// A new connection on the tuple completes its handshake (a SYN
		// alone proves nothing: anyone can send one): what the set
		// remembers of an older connection no longer applies.
		e.neg.forget(k)
	}
	if f != nil && f.state == stPlain {
		return e.plainSegment(now, k, f, p, from, tx)
	}
	if f != nil && (f.state == stKex || f.state == stOpen) && fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN && e.reuses(f, p, from) {
		return e.reuse(now, f, p, from, tx) // as TIME-WAIT (acceptance.go)
	}
	if f == nil {
		if fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN {
			return e.noteSYN(k, p, from, nil, e.synOnTuple(now, k, nil, p, from, tx))
		}
		if from == Outside && e.earlySYNACK(now, k, p) {
			return e.drop(DropStale)
		}
		return e.stray(k, p, from, tx)
	}
	e.lastBefore, f.last = f.last, now // stale puts it back
	if from == Inside {
		return e.fromInside(now, f, p, tx)
	}
	return e.fromOutside(now, f, p, tx)
}

// flowKeyOf is the key of p's connection, p having arrived at from.
func flowKeyOf(p *packet.Packet, from PortID) flowKey {
	if from == Inside {
		return flowKey{in: netip.AddrPortFrom(p.SrcAddr(), p.SrcPort()), out: netip.AddrPortFrom(p.DstAddr(), p.DstPort())}
	}
	return flowKey{in: netip.AddrPortFrom(p.DstAddr(), p.DstPort()), out: netip.AddrPortFrom(p.SrcAddr(), p.SrcPort())}
}

// poll collects finished public-key work. Refused submissions go again
// (retryKex) when a completion freed room in the pool, or always (Tick):
// not at every frame, where each refusal would cost the pool's lock.
func (e *Engine) poll(now int64, tx [2]TxSink, always bool) {
	if e.client == nil {
		return
	}
	done := 0
	for {
		n := e.client.Poll(e.jobs[:])
		done += n
		for i := 0; i < n; i++ {
			j := &e.jobs[i]
			f := j.Arg.(*flow)
			j.Arg = nil
			f.kexBusy = false
			if f.state != stKex || f.id != j.Token {
				// The flow ended while the pool computed its
				// session: the job is done with the pair too.
				f.sessOut.Wipe()
				f.kp.Wipe()
				continue
			}
			if j.Err != nil {
				f.sessErr = j.Err
			}
			e.sessionDoneSafe(now, f, tx)
			f.sessOut, f.sessErr = nil, nil
		}
		if n < len(e.jobs) {
			break
		}
	}
	if done > 0 || always {
		e.retryKex()
	}
}

// NumFlows is the number of tracked flows.
func (e *Engine) NumFlows() int { return len(e.flows) }

// NumEmbryonic is the number of flows in their handshake.
func (e *Engine) NumEmbryonic() int { return e.embN }

// Memory returns the per-flow memory budget the engine charges.
func (e *Engine) Memory() *Memory { return e.mem }

// Lookup returns the snapshot of the flow between inside and outside (the
// admin API's session lookup by 4-tuple). Call it between batches.
func (e *Engine) Lookup(inside, outside netip.AddrPort) (FlowInfo, bool) {
	f := e.flows[flowKey{in: inside, out: outside}]
	if f == nil {
		return FlowInfo{}, false
	}
	return f.info(), true
}
