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

// Counters are the engine's event counts, read with atomics by the admin API
// while the worker runs. FramesSealed and FramesOpened are as of the
// engine's last Tick (publish).
type Counters struct {
	Flows, FlowsCapped, FlowsReclaimed                  atomic.Uint64
	EmbryonicEvicted                                    atomic.Uint64 // handshakes evicted for newer ones (MaxEmbryonic, memory)
	Handshakes, HandshakeFailures                       atomic.Uint64
	Encrypted, Resumed                                  atomic.Uint64
	Fallbacks                                           [NumFallbackReasons]atomic.Uint64
	AuthFailures, Aborts                                atomic.Uint64
	Rekeys, RekeysAnswered                              atomic.Uint64
	InitRetransmits, FrameRetransmits                   atomic.Uint64
	DupAcksOriginated, AcksSuppressed, AcksOriginated   atomic.Uint64
	AcksCoalesced                                       atomic.Uint64 // L's ACKs inside a release, folded into one to R (ackRelease)
	FramesSealed, FramesOpened                          atomic.Uint64
	Redelivered, KeepAlives, URGStripped, PTBTranslated atomic.Uint64
	ICMPTranslated                                      atomic.Uint64 // other ICMP errors from the outside, quoted sequence number put in host space (outsideError)
	IdleRefreshes                                       atomic.Uint64 // empty frames sent on connections idle for half of IdleTimeout (keepFresh)
	HostProbes, HostGone                                atomic.Uint64 // keep-alive probes sent to inside hosts silent for half of IdleTimeout, and connections ended with all unanswered (hostprobe.go)
	DeliverWaits                                        atomic.Uint64 // frames left unopened for want of room in the delivery ring until L's ACKs make some (consume)
	HeldPruned                                          atomic.Uint64 // times a flow's bytes from R past a hole were dropped, for memory or after bufIdle of silence (prune.go)
	ResumeNoRoom                                        atomic.Uint64 // SYNs without room for a resumption offer, offered fresh instead (outboundSYN)
	PreKeyQueued                                        atomic.Uint64
	SYNDataHeldBack                                     atomic.Uint64 // SYNs whose data or Fast Open cookie was left out for ENO (outboundSYN)
	HostHeld                                            atomic.Uint64 // host segments past a hole kept until the hole is filled (hostHold)
	StrayResets                                         atomic.Uint64 // mid-stream segments of negotiated connections without a record, reset
	ChallengeACKs                                       atomic.Uint64 // RFC 5961 challenge ACKs sent for in-window RSTs and SYNs
	PTBInside                                           atomic.Uint64 // packet-too-big from the inside honoured (pmtu.go)
	PMTUExpired                                         atomic.Uint64 // lowered segment sizes that expired back to the MSS (pmtu.go)
	ENOPathFailures                                     atomic.Uint64 // connections that failed because their path lost TCP-ENO after the SYNs, far address remembered (enopath.go)
	HostResized                                         atomic.Uint64 // host retransmissions that showed the host lowered its segment size (hostResized)
	Panics                                              atomic.Uint64 // engine bugs: panics recovered, the flows they hit dropped (recover.go)
	KeyGenInline, PoolRetries                           atomic.Uint64
	KeyLogLines, KeyLogLost                             atomic.Uint64 // key log lines Deps.KeyLog took, and refused (logKeys)
	Drops                                               [NumDropReasons]atomic.Uint64

	// Frag counts IP fragment decisions and drops (frag.go).
	Frag [NumFragEvents]atomic.Uint64
}

// Fallback reasons, counted in Counters.Fallbacks.
const (
	FallbackNoENO            = iota // the far side answered without TCP-ENO
	FallbackNegotiate               // TCP-ENO present but negotiation failed (see FlowInfo)
	FallbackSYNData                 // the SYN carried data or a Fast Open cookie
	FallbackNoENOInACK              // the third segment came without TCP-ENO (ENO-28)
	FallbackEndToEnd                // the inside host speaks TCP-ENO itself
	FallbackBypass                  // policy
	FallbackOptionRoom              // the option did not fit
	FallbackSimultaneousOpen        // both hosts opened actively and the far SYN's option disabled ENO (crossingSYN)
	FallbackMemory                  // the per-flow memory budget admits no new flow (Config.MemoryLimit)
	FallbackSYNRetries              // the host's SYNs with TCP-ENO went unanswered: a retransmission left without it (Config.SYNsWithENO)
	FallbackTCPAuth                 // the segments are signed end to end (TCP MD5 or TCP-AO): left alone
	FallbackNegotiatedFull          // the negotiated set had no room for the tuple (NegotiatedSet.Overflows): unheld, a restart would pass its segments
	FallbackSourceRouted            // the handshake was source-routed: an IPv6 routing header with segments left, or an IPv4 source route (leftAlone)
	FallbackENOPathStripped         // the far address's path lost TCP-ENO after the SYNs a short while ago (enopath.go)
	FallbackSYNFlood                // a SYN with TCP-ENO from an unknown source under a SYN flood, passed on as it came with no record (flood.go)
	NumFallbackReasons
)

// Drop reasons, counted in Counters.Drops.
const (
	DropMalformed   = iota // undecodable frame or TCP options
	DropTxFull             // no TX buffer
	DropStoreFull          // retransmit store full: host data dropped, the host retransmits
	DropReasmFull          // reassembly buffer full
	DropPreKeyFull         // pre-key queue full
	DropOutOfWindow        // segment outside what the flow can place
	DropStale              // segment for a flow that is closing or unknown state
	DropDeliverFull        // plaintext kept for re-delivery over its cap (not a frame drop)
	DropPolicy             // a plain connection from a prefix whose policy requires encryption
	DropFragment           // an IP fragment not forwarded (Counters.Frag says why)
	DropChecksum           // a segment of an encrypted connection, a handshake's, or a stray RST, or an ICMP error acted on, with a bad checksum
	DropICMPQuote          // an ICMP error from the inside quoting a segment of a negotiated connection (plaintext)
	DropICMPWindow         // a packet-too-big quoting a sequence number not in flight (RFC 5927 §4.1)
	DropSYNFlood           // a SYN from the outside shed under a SYN flood, beyond those passed with no record: its source has no encrypted connection yet (flood.go)
	DropHostGap            // the inside host's data past a hole in its stream that cannot be held (hostHold: over the reassembly cap)
	DropRSTRejected        // a far-side RST not at the next sequence number (RFC 5961 §3): blind, or late from a closed peer
	DropPAWS               // a far-side segment with data whose timestamp is older than TS.Recent: an old duplicate (RFC 7323 §5)
	DropOtherVLAN          // a segment of a negotiating or encrypted flow with other VLAN IDs than the flow's: another address space's connection on the same tuple (sameVLANs)
	NumDropReasons
)

// Engine runs the per-flow state machine for one worker. It is not safe for
// concurrent use; Counters may be read from any goroutine.
type Engine struct {
	cfg         Config
	deps        Deps
	cache       *tcpcrypt.Cache[netip.Addr] // Deps.Cache, kept while NoResumption hides it
	client      *cryptopool.Client
	flows       map[flowKey]*flow
	nextID      uint64
	c           Counters
	pkt         packet.Packet
	si          segInfo
	opts        tcpOpts
	jobs        [16]cryptopool.Job
	cur         *flow   // the flow being worked on, for recovered (recover.go)
	panicLogged int64   // when recovered last logged a panic
	retry       []*flow // flows waiting for the pool to take their key exchange, oldest first (retryKex)
	scratch     [tcpcrypt.MaxFrameLen + 64]byte
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
	due        []int64 // due[i]: the sweep skips list[i] until then (sweepDue; 0: never skips)
	reclaimAt  int     // next slot of list that reclaim examines
	cursor     int
	neg        *NegotiatedSet
	frags      fragTable
	mem        *Memory
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
	e := &Engine{cfg: c, deps: deps, flows: make(map[flowKey]*flow), neg: deps.Negotiated, mem: deps.Memory, trusted: deps.Trusted, plainPeers: make(map[netip.Addr]int64), enoPaths: make(map[netip.Addr]int64)}
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
	return e.HandlePacket(now, from, &e.pkt, tx)
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

// FallbackNames and DropNames label Counters.Fallbacks and Counters.Drops
// for metrics and the admin API.
var (
	FallbackNames = [NumFallbackReasons]string{"no_eno", "negotiation", "syn_data", "no_eno_in_ack", "end_to_end", "bypass", "option_room", "simultaneous_open", "memory", "syn_retries", "tcp_auth", "negotiated_set_full", "source_routed", "eno_path_stripped", "syn_flood"}
	DropNames     = [NumDropReasons]string{"malformed", "tx_full", "store_full", "reassembly_full", "prekey_full", "out_of_window", "stale", "deliver_full", "policy", "fragment", "checksum", "icmp_quote", "icmp_out_of_window", "syn_flood", "host_gap", "rst_rejected", "paws", "other_vlan"}
)

// Lookup returns the snapshot of the flow between inside and outside (the
// admin API's session lookup by 4-tuple). Call it between batches.
func (e *Engine) Lookup(inside, outside netip.AddrPort) (FlowInfo, bool) {
	f := e.flows[flowKey{in: inside, out: outside}]
	if f == nil {
		return FlowInfo{}, false
	}
	return f.info(), true
}

// stray handles a mid-connection segment of a connection the engine has no
// record of: one that began before this engine started (a restart) or whose
// record expired. Unless its tuple is in the negotiated set it is plain TCP
// and passes unchanged: the appliance never resets plain TCP. A negotiated
// tuple's segment may be ciphertext for a host or plaintext for the wire,
// so it is dropped and the connection reset (strayReset). RSTs pass.
func (e *Engine) stray(k flowKey, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	fl := p.Flags()
	if fl&packet.FlagSYN != 0 {
		// A SYN-ACK of a connection whose SYN the engine did not see
		// (or whose record an RST ended): it would go on in plain TCP.
		far := p.DstAddr()
		if from == Outside {
			far = p.SrcAddr()
		}
		if e.cfg.policyFor(far) == Require {
			return e.drop(DropPolicy)
		}
		if from == Inside && fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN|packet.FlagACK && e.synAnswered(k, from, p.Ack()) {
			// The inside host accepts a new connection on the tuple,
			// answering a SYN that passed with no record: it holds no
			// old one there. A SYN-ACK from outside, forged or not,
			// proves nothing of the host; nor does the host's SYN-ACK
			// to a SYN this engine did not see pass (a retransmission
			// of one a previous run negotiated): the tuple stays.
			e.neg.forget(k)
		}
		return Passthrough
	}
	if !e.neg.has(k) {
		return Passthrough
	}
	if fl&packet.FlagRST != 0 {
		if len(p.Payload()) > 0 {
			return e.drop(DropStale) // RST data might be plaintext of a forgotten connection
		}
		if !p.VerifyL4Checksum() {
			// Corrupted on the way: the host would drop it; the
			// engine forwards only segments it can vouch for.
			return e.drop(DropChecksum)
		}
		return Passthrough
	}
	e.strayReset(p, from, tx)
	return e.drop(DropStale)
}

// strayReset resets both ends of a negotiated connection the engine has no
// record of. Without the record the engine knows the sequence numbers of
// the sender only: it gets an RST at the number it expects next (the
// segment's ACK; RFC 9293 §3.10.7.4, RFC 5961 §3.2 exact match). The other
// end's numbers live in another sequence space (host or wire), so it gets
// an empty ACK half the sequence space away, which it cannot accept and
// answers with an ACK of its own (RFC 9293 §3.10.7.4: "an acknowledgment
// should be sent in reply"); that answer comes here as a stray and gets
// its exact RST. Only segments with data or FIN get a probe, so two ends
// never keep probing each other.
func (e *Engine) strayReset(p *packet.Packet, from PortID, tx [2]TxSink) {
	e.c.StrayResets.Add(1)
	fl := p.Flags()
	var t tmpl
	if !t.set(p) {
		return
	}
	var probe tmpl
	probe = t
	t.reverse()
	s := seg{seq: p.Ack(), flags: packet.FlagRST}
	if fl&packet.FlagACK == 0 {
		s.seq, s.flags = 0, packet.FlagRST|packet.FlagACK
		s.ack = p.Seq() + uint32(len(p.Payload()))
		if fl&packet.FlagFIN != 0 {
			s.ack++
		}
	}
	e.opts.reset()
	e.send(tx[from], &t, &s, nil)
	if len(p.Payload()) > 0 || fl&packet.FlagFIN != 0 {
		e.send(tx[from.Other()], &probe, &seg{seq: p.Seq() + 1<<31, ack: p.Ack(), flags: packet.FlagACK, win: p.Window()}, nil)
	}
}

// icmp handles an ICMP message: an error from the outside may be about our
// wire segments (pmtu.go); an error from the inside about a negotiated
// connection never leaves.
func (e *Engine) icmp(now int64, from PortID, p *packet.Packet, tx [2]TxSink) Verdict {
	if from == Outside {
		return e.outsideError(now, p)
	}
	if from == Inside {
		// An ICMP error about a segment the appliance delivered quotes
		// decrypted plaintext (Linux quotes up to 548 bytes); one about
		// a host segment quotes what was never sent as such. Neither may
		// leave; the far side's path is the far appliance's business. A
		// packet-too-big still lowers what the appliance sends L. One
		// about a segment without payload before the key exchange (an
		// inside firewall rejecting the far side's SYN) holds no
		// plaintext, and both spaces are still one: it goes on, so the
		// far side fails at once as over plain TCP.
		if f := e.quotedFlow(p); f != nil && f.state < stKex && quotesNoPayload(p) {
			return Passthrough
		} else if f != nil && f.state != stPlain {
			if p.IsPathMTU() {
				if !p.VerifyL4Checksum() {
					return e.drop(DropChecksum) // corrupted: its MTU may be anything
				}
				return e.insidePTB(now, f, p, tx)
			}
			return e.drop(DropICMPQuote)
		} else if f == nil && e.quotedNegotiated(p) {
			return e.drop(DropICMPQuote) // about a segment a previous run delivered
		}
	}
	return Passthrough
}

// quotedTuple returns the source and destination of the TCP segment an ICMP
// error quotes, as the quoted header names them.
func quotedTuple(p *packet.Packet) (src, dst netip.AddrPort, ok bool) {
	q, ok := p.Quote()
	if !ok || q.Proto != packet.ProtoTCP {
		return src, dst, false
	}
	sp, dp, ok := p.QuotedPorts()
	if !ok {
		return src, dst, false
	}
	fr := p.Frame()
	var qs, qd netip.Addr
	switch {
	case q.Version == 4 && q.L3+20 <= len(fr):
		qs, _ = netip.AddrFromSlice(fr[q.L3+12 : q.L3+16])
		qd, _ = netip.AddrFromSlice(fr[q.L3+16 : q.L3+20])
	case q.Version == 6 && q.L3+40 <= len(fr):
		qs, _ = netip.AddrFromSlice(fr[q.L3+8 : q.L3+24])
		qd, _ = netip.AddrFromSlice(fr[q.L3+24 : q.L3+40])
	default:
		return src, dst, false
	}
	return netip.AddrPortFrom(qs, sp), netip.AddrPortFrom(qd, dp), true
}

// quotedNegotiated reports whether the TCP segment an ICMP error quotes
// belongs to a tuple in the negotiated set, in either direction.
func (e *Engine) quotedNegotiated(p *packet.Packet) bool {
	a, b, ok := quotedTuple(p)
	return ok && (e.neg.has(flowKey{in: a, out: b}) || e.neg.has(flowKey{in: b, out: a}))
}

// quotedFlow returns the flow of the TCP segment an ICMP error quotes, in
// either direction, or nil.
func (e *Engine) quotedFlow(p *packet.Packet) *flow {
	a, b, ok := quotedTuple(p)
	if !ok {
		return nil
	}
	if f := e.flows[flowKey{in: a, out: b}]; f != nil {
		return f
	}
	return e.flows[flowKey{in: b, out: a}]
}

// EachEvent calls fn with the name and value of every counter of c that the
// admin API has no field of its own for (tcpinc_engine_events_total).
func (c *Counters) EachEvent(fn func(name string, n uint64)) {
	for _, ev := range []struct {
		name string
		n    *atomic.Uint64
	}{
		{"flows", &c.Flows},
		{"flows_capped", &c.FlowsCapped},
		{"flows_reclaimed", &c.FlowsReclaimed},
		{"aborts", &c.Aborts},
		{"rekeys_answered", &c.RekeysAnswered},
		{"frame_retransmits", &c.FrameRetransmits},
		{"acks_suppressed", &c.AcksSuppressed},
		{"acks_coalesced", &c.AcksCoalesced},
		{"acks_originated", &c.AcksOriginated},
		{"redelivered", &c.Redelivered},
		{"keepalives", &c.KeepAlives},
		{"resume_no_room", &c.ResumeNoRoom},
		{"syn_data_held_back", &c.SYNDataHeldBack},
		{"urg_stripped", &c.URGStripped},
		{"ptb_translated", &c.PTBTranslated},
		{"icmp_translated", &c.ICMPTranslated},
		{"idle_refreshes", &c.IdleRefreshes},
		{"host_probes", &c.HostProbes},
		{"host_gone", &c.HostGone},
		{"deliver_waits", &c.DeliverWaits},
		{"held_pruned", &c.HeldPruned},
		{"ptb_inside", &c.PTBInside},
		{"pmtu_expired", &c.PMTUExpired},
		{"eno_path_failures", &c.ENOPathFailures},
		{"host_resized", &c.HostResized},
		{"panics", &c.Panics},
		{"prekey_queued", &c.PreKeyQueued},
		{"host_segments_held", &c.HostHeld},
		{"challenge_acks", &c.ChallengeACKs},
		{"key_gen_inline", &c.KeyGenInline},
		{"pool_retries", &c.PoolRetries},
		{"key_log_lines", &c.KeyLogLines},
		{"key_log_lost", &c.KeyLogLost},
	} {
		fn(ev.name, ev.n.Load())
	}
}
