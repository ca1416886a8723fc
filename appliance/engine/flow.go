package engine

import (
	"net/netip"
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

type flowKey struct{ in, out netip.AddrPort }

// Flow states.
const (
	stSynSent    = iota + 1 // A: the inside host's SYN went out with our ENO option
	stSynRcvd               // B: a SYN with ENO was forwarded to the inside host
	stSynAckSent            // B: the inside host's SYN-ACK went out with our ENO option
	stKex                   // negotiated: Init messages under way
	stOpen                  // keys in place: frames both ways
	stDead                  // to be removed
	stPlain                 // not encrypted (fallback, end to end): kept for the admin API only
)

var stateNames = [...]string{"", "syn-sent", "syn-received", "syn-ack-sent", "key-exchange", "encrypted", "closed", "plain"}

// shownState is the state the admin API shows: an encrypted connection
// whose FINs are both acknowledged (closeCheck), waiting to be removed,
// is closed.
func (f *flow) shownState() uint8 {
	if f.state == stOpen && f.closeAt != 0 {
		return stDead
	}
	return f.state
}

// frameRec places one frame in both spaces: host bytes [h, h+n) at wire
// bytes [w, w+wl).
type frameRec struct {
	h, w   int64
	n, wl  int32
	fin    bool
	fast   bool   // an appliance-owned frame already sent again on R's duplicate ACKs
	urg    bool   // R's frame had URGp (decrypting direction only)
	urgent uint16 // its urgent field
}

// owned reports whether the appliance owns the frame's bytes: an empty
// frame it put in the stream itself (a rekey frame), which no host resends.
func (r *frameRec) owned() bool { return r.n == 0 && !r.fin }

// frameQ is a growable FIFO of frames (one allocation per doubling). It
// starts at frameQStart entries: a short connection has a frame or two in
// flight each way, and a bulk flow doubles past it within its first round
// trips (64 entries to start with were 4 KiB of each connection's
// allocation at both appliances, BenchmarkConnection).
const frameQStart = 8

type frameQ struct {
	r       []frameRec
	head, n int
	mem     *Memory // charged for r (bounded by the rings the frames live in)
}

func (q *frameQ) push(f frameRec) { *q.add() = f }

// add appends a frame and returns it to be filled in field by field: a
// frameRec built on the stack and copied in stalls the copy's wide loads
// on the narrower stores that built it (store forwarding).
func (q *frameQ) add() *frameRec {
	if q.n == len(q.r) {
		nr := make([]frameRec, max(frameQStart, 2*len(q.r)))
		q.mem.force(frameRecSize * int64(len(nr)-len(q.r)))
		for i := 0; i < q.n; i++ {
			nr[i] = *q.at(i)
		}
		q.r, q.head = nr, 0
	}
	r := &q.r[(q.head+q.n)&(len(q.r)-1)]
	q.n++
	return r
}

// The queue's size is a power of two (push doubles it from frameQStart), so an
// index wraps with a mask, not a division.
func (q *frameQ) at(i int) *frameRec { return &q.r[(q.head+i)&(len(q.r)-1)] }
func (q *frameQ) pop()               { q.head = (q.head + 1) & (len(q.r) - 1); q.n-- }

// encDir is the encrypting direction: inside host L to far side R.
type encDir struct {
	initLen      int64 // our Init message at W[0, initLen); 0 when resumed
	initTries    int
	initDue      int64
	initRTO      int64
	nextH, nextW int64 // next new host byte and its wire offset
	sentW        int64 // end of the wire bytes sent so far: the wire's SND.NXT (FIN aside)
	edgeL        int64 // the highest right edge L was given (scaleWin)
	ackW         int64 // R's cumulative wire ACK
	ackH         int64 // its translation: end of the last whole frame acknowledged
	finH, finW   int64 // the host FIN and the wire FIN (after the FINp frame), -1 until sent
	store        ring  // wire bytes [ackW, nextW): Init and sealed frames
	frames       frameQ
	pre          ring // host bytes queued before keys: H[nextH, preEnd)
	preEnd       int64
	hh           *hostHeld // L's bytes past a hole (hosthold.go); nil until L leaves one
	genBytes     int64     // bytes sealed under the current generation
	genStart     int64     // when the current generation started
	refreshed    int64     // when keepFresh last sent an empty frame for an idle flow
	ownedDue     int64     // retransmission time of appliance-owned empty frames
	ownedRTO     int64
	ownedN       int    // appliance-owned empty frames in frames
	dupAcks      int    // R's duplicate ACKs at ackW (RFC 5681 §2)
	forgotBelow  uint64 // sending keys below this generation are forgotten
	initSent     bool
	preFIN       bool
	initFast     bool // the Init was sent again on R's duplicate ACKs
	// (The flags together at the end: each between wider fields cost 7
	// bytes of padding, see decDir.)
}

// decDir is the decrypting direction: far side R to inside host L.
type decDir struct {
	rcvW      int64 // next in-order wire byte
	initLen   int64
	reasm     ring  // out-of-order and not yet usable wire bytes from rcvW on
	held      spans // which of them are present
	pendFIN   int64 // wire offset of a TCP FIN seen, -1 if none
	nextH     int64 // next host byte to deliver
	ackH      int64 // L's cumulative ACK
	ackW      int64 // its translation: end of the last whole frame L acknowledged
	frames    frameQ
	plain     ring  // opened plaintext H[ackH, nextH), for delivery and re-delivery
	sentH     int64 // end of what L was sent: H[sentH, nextH) waits for L's window
	plainFrom int64 // the ring holds nothing below this host offset
	finH      int64 // host offset of the FIN delivered to L, -1 if none
	finW      int64 // wire offset of R's TCP FIN, -1 if none
	lastAckW  int64 // the wire ACK R last got from us
	custody   int64 // highest wire ACK R got for bytes of a frame not yet opened (ackToR)
	toldEdge  int64 // the highest right edge R was given, its ACK plus window (acceptEnd)
	// releaseEnd is the end of the plaintext delivered at once when a
	// hole on the wire filled (0: none pending). L acknowledges such a
	// release in several ACKs; they go to R as one (release.go).
	releaseEnd int64
	lastWin    uint16
	initDone   bool
	finOut     bool  // the FIN went to L
	answer     bool  // let the next ACK from L through even if it repeats
	ackWait    uint8 // ACKs to R that wait: a release's, a duplicate ACK's for the round's end, and list places (release.go, dupack.go); L's loss delivered again (hostloss.go)
	roomWait   bool  // wire bytes wait for room in the ring (consume): drain when L's ACK may have made some
	urgWait    bool  // a frame with URGp waits for L's window (sendPending)
	// (The flags together after the 8-byte fields: a flow record must stay
	// within 2040 bytes, the 2048-byte size class with its malloc header.)
}

type flow struct {
	id       uint64
	idx      int // slot in Engine.list
	key      flowKey
	state    uint8
	policy   Policy
	role     eno.Role
	probes   uint8 // keep-alive probes sent to L since hostSeen (hostprobe.go)
	hostSeen int32 // when L's last segment came, rounded up to units of 2^30 ns (in padding: see decDir)
	settings *eno.Settings
	started  int64 // Deps.Now in Unix nanoseconds (a time.Time takes 24 bytes of a full record)
	last     int64
	closeAt  int64
	reason   string

	local    [eno.MaxOptionsLen]byte // our SYN-form option as sent
	localLen int
	peer     [eno.MaxOptionsLen]byte // B: the far side's SYN option; A: a compatible crossing SYN's (simAcked)
	peerLen  int
	outcome  eno.Outcome
	enoOut   bool // add `45 02` to segments to R (until a non-SYN segment from R)
	// watchInit1: B, plain after a third segment without ENO, until A's
	// first bytes show whether they are an Init1 (enopath.go).
	watchInit1 bool
	// synAckAgain: A, R repeated its SYN-ACK after we took it: it had not
	// got our third segment then (enopath.go).
	synAckAgain bool

	isnL, isnR uint32
	mssL, mssR uint16
	pmssL      uint16    // segment size toward L after an inside packet-too-big, 0 if none (pmtu.go)
	pmssR      uint16    // the same toward R, from the outside
	pmtuAt     int64     // when a packet-too-big last lowered pmssL or pmssR
	capMSS     [2]uint16 // the largest segment each port carries, 0 if no cap (mss.go)
	tsL, tsR   uint32    // latest TSval from L and from R
	tsRecent   uint32    // R's TS.Recent (RFC 7323 §4.3): PAWS's reference (wireAccept)
	tsRecentAt uint32    // when it was set, in units of 2^30 ns (paws)
	ecrL, ecrR uint32    // latest TSecr from L and from R
	tsOK       bool      // both SYNs carried timestamps (RFC 7323)
	sackOK     bool      // both SYNs carried SACK-permitted (RFC 2018 §2)
	wsR        uint8     // R's window shift, when both SYNs had window scale
	wsL        int8      // L's shift from its SYN (-1: none)
	wsLe       uint8     // L's window shift in effect (both SYNs had window scale)
	winL, winR uint16
	segMaxL    uint16 // L's largest data segment, payload and options (MSS sense; pmtu.go)
	toR, toL   tmpl

	res *tcpcrypt.Resumption // a secret offered (A) or accepted (B)
	// resOpener: B, during watchInit1 of a session it agreed to resume:
	// opens A's first frame (enopath.go).
	resOpener *tcpcrypt.Opener
	resBuf    [32]byte
	kp        *tcpcrypt.KeyPair
	ini       *tcpcrypt.Initiator
	rsp       *tcpcrypt.Responder
	kexBusy   bool
	kexWant   bool
	// ceToL, ceToR: segments still to mark CE toward L and toward R, for
	// the CE-marked data that came from the other side (ecn.go).
	ceToL, ceToR uint16
	// resegR is the segment size toward R while L's are smaller: lowered
	// when a retransmission of L's shows it lowered its own, raised by its
	// larger segments (0: none; pmtu.go).
	resegR uint16

	sessOut *tcpcrypt.Session
	sessErr error
	sess    *tcpcrypt.Session
	keys    *tcpcrypt.KeyRing
	dec     *tcpcrypt.FrameDecoder

	enc encDir
	rcv decDir

	lastHostAck int64  // the host ACK L last got from us
	lastWinR    uint16 // R's window field when L last got an ACK from us
	ackOwed     bool   // an empty frame was consumed: acknowledge it
	consuming   bool   // inside consume: sessionDone must not drain
	held        bool   // the tuple is held in the NegotiatedSet
	idled       bool   // removed for idleness (the hosts may still hold it)
	ahead       bool   // on Engine.ahead: R's bytes held past a hole (prune.go)

	prev          *flow  // the record of the connection a SYN displaced, until the SYN is answered (acceptance.go)
	unknownPrev   bool   // B: the SYN found neither a record nor a negotiated tuple: a plain connection the engine forgot may be live (acceptance.go)
	sim           uint8  // A: simCrossed, simENO, simAnswered (a simultaneous open, acceptance.go)
	synResends    uint8  // A: the host's SYN retransmissions seen (resendSYN)
	simWS         int8   // A: the crossing SYN's window shift, -1 if none (simAcked)
	simISN        uint32 // the crossing SYN's sequence number
	challengeNext int64  // no challenge ACK before this time (RFC 5961 §7)
	maxWinR       int64  // the largest window R advertised, scaled (MAX.SND.WND)
	wl1, wl2      int64  // the wire offsets (R's sequence, its ACK) of the segment winR came from (SND.WL1, SND.WL2)
	e2e           uint8  // plain, end to end under require: what is still to be checked (require.go)
	synFrom       uint8  // plain: 1 + the port whose SYN made the record (plain), 0 if none; its ISN is isnL or isnR
	ecn           ecnState

	charged          bool  // recordCost is charged to the budget
	embIn            bool  // on the embryonic list
	counted          uint8 // the bucket of Engine.counts it is counted in, 0 if none (recount; in padding)
	embPrev, embNext *flow // the embryonic list, oldest first

	bytesIn, bytesOut, pktsIn, pktsOut uint64

	keyLogNext uint64 // the first key generation not yet given to Deps.KeyLog
}

// setCaps sets the flow's buffer caps. A ring already larger than its new
// cap keeps its bytes and size: the cap bounds growth (ring.reserve).
func (f *flow) setCaps(c *Config) {
	f.enc.store.max = c.RetransmitBytes
	f.enc.pre.max = c.PreKeyBytes
	f.rcv.reasm.max = c.ReassemblyBytes
	f.rcv.plain.max = c.DeliverBytes
}

func (f *flow) info() FlowInfo {
	fi := FlowInfo{
		ID: f.id, Inside: f.key.in, Outside: f.key.out, State: stateNames[f.shownState()],
		Encrypted: f.sess != nil, FallbackReason: f.reason, Started: time.Unix(0, f.started),
		BytesIn: f.bytesIn, BytesOut: f.bytesOut, PacketsIn: f.pktsIn, PacketsOut: f.pktsOut,
	}
	if f.state >= stKex && f.state != stPlain {
		fi.Role = "A"
		if f.role == eno.RoleB {
			fi.Role = "B"
		}
		fi.TEP = f.outcome.TEPByte
		fi.Transcript = append([]byte(nil), f.outcome.Transcript()...)
	}
	if f.sess != nil {
		fi.AEAD = f.sess.Suite.String()
		fi.SessionID = f.sess.ID
		fi.Resumed = f.sess.Resumed
		if f.keys != nil {
			fi.KeyGeneration = uint32(f.keys.Local())
		}
		fi.Stream = f.stream()
	}
	return fi
}

// stream reports both directions' offsets (FlowInfo.Stream).
func (f *flow) stream() *StreamInfo {
	en, d := &f.enc, &f.rcv
	heldEnd := d.held.top(d.rcvW)
	return &StreamInfo{
		Out: StreamOut{
			HostNext: en.nextH, HostAcked: en.ackH,
			WireNext: en.nextW, WireSent: en.sentW, WireAcked: en.ackW,
			Frames: en.frames.n, PreKey: max(en.preEnd-en.nextH, 0),
			WindowR: int64(f.winR) << f.wsR, DupAcks: en.dupAcks, FIN: en.finW >= 0,
		},
		In: StreamIn{
			WireNext: d.rcvW, WireHeldSpans: d.held.len(), WireHeldEnd: heldEnd,
			WireAcked: d.ackW, WireAckSent: d.lastAckW, Custody: d.custody,
			HostOpened: d.nextH, HostSent: d.sentH, HostAcked: d.ackH, PlainFrom: d.plainFrom,
			Frames: d.frames.n, WindowL: int64(f.winL) << f.wsLe, FIN: d.finOut,
		},
	}
}

// scaleWin turns the window R advertised into the one L gets: lowered by the
// frame overhead ratio (L's bytes grow by 20 per frame on the wire) and by
// the room left in the retransmit store, so L does not send what the store
// would have to drop (RFC 7323 window scale taken into account). It notes
// the right edge it gives L.
func (f *flow) scaleWin(w uint16) uint16 {
	m := int64(f.segR())
	en := &f.enc
	if w == 0 {
		// R shut its window (its reader stopped): so does L's, even
		// below an edge L was given, over bytes L has in flight that
		// wait in the store (a TCP sender copes, RFC 9293 §3.8.6). Only
		// a zero window keeps a Linux sender probing for as long as it
		// takes instead of counting its retransmissions toward giving
		// up (tcp_retries2).
		en.edgeL = en.ackH
		return 0
	}
	// L's right edge: what is framed already plus the plaintext that fits in
	// R's window beyond it (RFC 9293 §3.8.6); frames the appliance put in
	// the stream itself (rekey answers) and short frames use R's window too.
	free := max(en.ackW+int64(w)<<f.wsR-en.nextW, 0)
	if m > tcpcrypt.Overhead {
		free = free * (m - tcpcrypt.Overhead) / m
	}
	// The store takes room more wire bytes: beyond what L has in flight,
	// as free is (counting it from ackH as well would move L's right edge
	// back as L's bytes arrive, and halve what L may have in flight).
	room := int64(f.enc.store.max) - (f.enc.nextW - f.enc.ackW)
	if m > tcpcrypt.Overhead {
		room = room * (m - tcpcrypt.Overhead) / m
	}
	room = max(room-m, 0) // one frame of slack
	win := max(en.nextH-en.ackH, 0) + min(free, room)
	win >>= f.wsR
	// Never back from an edge L was given (RFC 9293 §3.8.6), which L's
	// short segments, each a frame of its own, and the scaling would do:
	// what L sends up to it waits in the store while R's window does not
	// take it (sealNew).
	if told := en.edgeL - en.ackH; win<<f.wsR < told {
		win = (told + 1<<f.wsR - 1) >> f.wsR
	}
	if win > 0xffff {
		win = 0xffff
	}
	en.edgeL = max(en.edgeL, en.ackH+win<<f.wsR)
	return uint16(win)
}

// winToR is the window R gets: L's, clamped to the plaintext the appliance
// can still keep for re-delivery (so a loss on the inside link can always be
// repaired from it), counted from the end of the frames L acknowledged. A
// frame held in custody may end beyond that: the window then reaches its
// end, or R could never complete it (a frame opens only whole).
//
// The ring's room is counted beyond the frames opened, whose plaintext it
// already holds: so the right edge never moves back as R's frames arrive
// (RFC 9293 §3.8.6.2.2; each frame moves it on by its 20 bytes of
// overhead). Counted from the acknowledged end instead, it shrank by every
// frame L had not acknowledged yet: R then sent past the edge it knew, and
// its pure ACKs, numbered at that edge, fell below what we held.
//
// The edge is no further than the reassembly holds out-of-order bytes
// (from rcvW on), and the window counts from the ACK the segment carries
// (ackToR), which custody may put past ackW. R may still send up to an
// edge it was given before (acceptEnd).
func (f *flow) winToR() uint16 {
	d := &f.rcv
	room := max(int64(d.plain.max)-(d.nextH-d.ackH), 0)
	opened := d.rcvW // the wire end of the frames opened
	if f.dec != nil {
		opened = int64(f.dec.Offset())
	}
	edge := d.ackW + min(int64(f.winL)<<f.wsLe, max(opened-d.ackW, 0)+room)
	edge = min(edge, d.rcvW+int64(d.reasm.max))
	ack := f.ackToR()
	win := max(edge-ack, 0) >> f.wsLe
	if fe := f.partialEnd(); fe >= 0 && ack+win<<f.wsLe < fe {
		win = (fe - ack + 1<<f.wsLe - 1) >> f.wsLe // rounded up: the scaled window must still reach the frame's end
	}
	if win > 0xffff {
		win = 0xffff
	}
	return uint16(win)
}

// toldR notes the right edge a segment to R carried: its ACK and window.
func (f *flow) toldR(ack int64, win uint16) {
	f.rcv.toldEdge = max(f.rcv.toldEdge, ack+int64(win)<<f.wsLe)
}

// tsToR adds the timestamp option of a segment the appliance sends R on L's
// behalf, if both SYNs negotiated timestamps (RFC 7323): L's latest TSval,
// and as TSecr L's own latest echo for segments carrying L's data (so R's
// RTT samples cover the whole path) or R's latest TSval for segments the
// appliance originates.
func (f *flow) tsToR(o *tcpOpts, hostEcho bool) {
	if !f.tsOK {
		return
	}
	ecr := f.tsR
	if hostEcho && f.ecrL != 0 {
		ecr = f.ecrL
	}
	o.ts(f.tsL, ecr)
}

// tsToL is tsToR for segments to L on R's behalf.
func (f *flow) tsToL(o *tcpOpts, hostEcho bool) {
	if !f.tsOK {
		return
	}
	ecr := f.tsL
	if hostEcho && f.ecrR != 0 {
		ecr = f.ecrR
	}
	o.ts(f.tsR, ecr)
}

// newerTS keeps the later of two TSvals (serial arithmetic): segments the
// appliance builds must never go back in time, or the host's PAWS check
// (RFC 7323 §5) would drop them after a reordered segment.
func newerTS(cur, v uint32) uint32 {
	if int32(v-cur) > 0 {
		return v
	}
	return cur
}
