package engine

import (
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// thirdAcceptable reports whether a non-SYN segment from R in SYN-ACK-SENT
// is one the inside host, in SYN-RECEIVED, would accept (RFC 9293
// §3.10.7.4): it acknowledges exactly the host's SYN-ACK and starts in the
// window that SYN-ACK offered (never scaled, RFC 7323 §2.2). Only such a
// segment may decide the negotiation: a blind one without ENO would make B
// fall back to plain TCP while A, which never saw it, encrypts, and A's
// Init1 would then reach the host as data.
func (e *Engine) thirdAcceptable(f *flow, p *packet.Packet) bool {
	if p.Flags()&packet.FlagACK == 0 || p.Ack() != f.isnL+1 {
		return false
	}
	off := int64(int32(p.Seq() - (f.isnR + 1)))
	return off >= 0 && off < max(int64(f.winL)<<f.wsLe, 1) // synWindow kept it shifted
}

// A SYN on the tuple of a plain connection's record is a new connection
// reusing the tuple, or a blind SYN (any sequence number; from outside
// with TCP-ENO it would make the record a negotiating flow, and every
// later segment of the live connection would be dropped). The appliance is
// no endpoint of a plain connection and cannot tell the two apart: it
// follows no sequence numbers there (the fast path carries most segments).
// The hosts can: a host with the connection alive answers the SYN with a
// challenge ACK (RFC 5961 §4), one without it with a SYN-ACK. So the SYN is
// handled as any SYN (and negotiated), and the plain record is kept aside
// in the new flow (prev) until the other side answers the SYN with a
// SYN-ACK that acknowledges it. Until then every segment that is not part
// of the new handshake passes as the old connection's, and if the
// handshake ends without that answer (a timeout, an RST) the plain record
// is back (remove). The old connection's segments do not keep the
// handshake alive: it times out HandshakeTimeout after its last segment of
// its own (stale).
//
// A SYN from outside that finds no record at all may equally be blind: the
// engine forgets a plain connection it has not seen for PlainRetention (the
// fast path carries it), and a restarted daemon knows none. Unless the
// tuple is in the negotiated set (an encrypted connection's, whose
// segments must stay dropped), the new flow is marked (unknownPrev), and
// until the SYN is answered the segments it has no use for pass as those
// of a plain prev.
//
// The same holds for a tracked plain connection's other segments: RST, FIN
// and data pass to the hosts, whose TCPs check them (RFC 9293 §3.10.7.4,
// RFC 5961); none changes the record.

// synOnTuple handles SYN p on tuple k, whose record prev (if not nil) was
// just taken out of the table: that of a plain connection that may still
// be live, or of a closed encrypted one (reuse).
func (e *Engine) synOnTuple(now int64, k flowKey, prev *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	var v Verdict
	if from == Inside {
		v = e.outboundSYN(now, k, p, tx)
	} else {
		v = e.farSYN(now, k, p, tx, prev != nil)
	}
	if prev == nil {
		return v
	}
	switch nf := e.flows[k]; {
	case nf == nil:
		e.reinstate(now, prev) // the SYN was dropped (policy, a full table)
	case nf.state == stSynSent || nf.state == stSynRcvd || nf.state == stPlain && prev.sess != nil:
		nf.prev, nf.unknownPrev = prev, false
	} // else a plain connection's record replaced by another's
	return v
}

// farSYN handles a SYN from the far side on an untracked tuple
// (inboundSYN), and remembers one that passes with no record on a tuple
// in the negotiated set, so that the inside host's SYN-ACK to it takes the
// tuple out (stray). displaced: the SYN took the place of a record
// (synOnTuple), which goes on handling the old connection's segments.
//
// A SYN that finds neither a record nor a displaced one on a tuple in the
// negotiated set may be forged, or an old duplicate, while both hosts
// still hold the encrypted connection (the record went with a restart, an
// idle expiry or a lost RST; its segments are reset as strays). If it
// leaves the connection plain, it gets no record: a plain record passes
// every segment, and the host's next data would leave in plaintext (and
// the workers would put the tuple on the kernel fast path).
func (e *Engine) farSYN(now int64, k flowKey, p *packet.Packet, tx [2]TxSink, displaced bool) Verdict {
	e.bareSYN = !displaced && e.neg.has(k)
	v := e.inboundSYN(now, k, p, tx)
	e.bareSYN = false
	if v == Passthrough && e.flows[k] == nil && e.neg.has(k) {
		e.rememberSYN(k, Outside, p.Seq())
	}
	return v
}

// reinstate puts the record of the connection a SYN displaced back in the
// table: its SYN was never answered.
func (e *Engine) reinstate(now int64, f *flow) {
	if e.flows[f.key] != nil || f.state == stDead && f.sess != nil {
		return // an encrypted connection's that ended meanwhile stays gone
	}
	if f.state == stDead {
		e.setState(f, stPlain)
	}
	f.last = max(f.last, now)
	e.recharge(f)
	e.flows[f.key] = f
	e.hot = nil
	e.listAdd(f)
}

// dropPrev forgets the record f displaced: f's SYN was answered, or f
// itself goes (reclaim). The displaced connection ended, so a tuple it
// held lingers as that of any connection that ended (CloseLinger): left
// held with no record, it would stay in the set for good and reset every
// later connection on the tuple as a stray. An answering SYN-ACK has
// taken the tuple out already (handlePacket), and a tuple f holds itself
// stays f's.
func (e *Engine) dropPrev(f *flow) {
	f.unknownPrev = false
	if q := f.prev; q != nil {
		f.prev = nil
		if q.held && !f.held {
			e.neg.release(q.key, CloseLinger)
		}
		q.held = false
		e.setState(q, stDead) // out of the list: counted nowhere
		e.uncharge(q)
		q.wipeSecrets()
	}
}

// stale handles a segment from port from that negotiating flow f has no
// use for: one of the connection f displaced goes on as that connection's
// (a plain one passes, also one the engine forgot, an encrypted one is
// handled by its record); any other is dropped. It is no progress of f's
// handshake: f's timer runs on (HandshakeTimeout), or the old
// connection's segments would keep the tuple negotiating as long as they
// come.
func (e *Engine) stale(now int64, f *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	if f.state < stKex {
		f.last = e.lastBefore
	}
	q := f.prev
	switch {
	case q == nil && !f.unknownPrev:
		return e.drop(DropStale)
	case q == nil || q.sess == nil:
		// The old plain connection's segment goes on unchanged, but the
		// tuple is the new connection's, still negotiating: off the fast
		// path (Passthrough would let the workers list it, and the
		// kernel carry the new connection past the engine).
		if q != nil {
			q.last = now // its retention runs from here once reinstated
		}
		return ForwardInPlace
	case q.state == stDead:
		return e.drop(DropStale) // it was reset meanwhile: nothing of it may pass
	}
	q.last = now
	if from == Inside {
		return e.fromInside(now, q, p, tx)
	}
	return e.fromOutside(now, q, p, tx)
}

// plainAfterReuse handles a segment on a plain record that took the tuple
// of a closed encrypted connection for a SYN from outside (reuse), which
// it keeps in prev: the new connection's SYNs pass, and the inside host's
// SYN-ACK ends the old record (one from outside, forged, must not);
// until then every other segment is the old connection's (an inside host
// that missed the last ACK resends its data and FIN: in plaintext, were
// it to pass).
//
// Only the new connection's segments keep the record: the old
// connection's (or anyone's on the tuple) must not hold it, and with it a
// slot of the table that reclaim leaves alone, for as long as they come.
func (e *Engine) plainAfterReuse(now int64, f *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	switch p.Flags() & (packet.FlagSYN | packet.FlagACK | packet.FlagRST) {
	case packet.FlagSYN:
		f.last = now
		return Passthrough
	case packet.FlagSYN | packet.FlagACK:
		if from == Inside {
			f.last = now
			e.dropPrev(f)
		}
		return Passthrough
	}
	return e.stale(now, f, p, from, tx)
}

// Bits of flow.sim.
const (
	simCrossed  = 1 << iota // a SYN from R crossed ours (simultaneous open, or blind)
	simENO                  // its ENO option is compatible with ours (crossingSYN)
	simAnswered             // the host's SYN-ACK to it went out with our option
	simTS                   // it carried timestamps (simAcked)
	simSACK                 // it carried SACK-permitted (simAcked)
)

// crossingSYN handles a SYN from R while host A waits for R's SYN-ACK (not
// under require, which holds it back). It may be R's half of a
// simultaneous open, or a blind SYN: taking every such SYN for a
// simultaneous open would let one forged segment leave the connection in
// plain TCP. It goes to the inside host as in plain TCP, and only R's
// SYN-ACK tells: one that repeats this SYN's sequence number shows a
// simultaneous open (farSYNACK), any other SYN-ACK to our SYN is
// negotiated as usual. A SYN with data is dropped: if the connection is
// then encrypted, the data never was.
//
// If the SYN's ENO option is compatible with ours (R set b = 1, the
// passive role arranged for a simultaneous open, RFC 8547 §4.3, and offers
// a TEP we offered), the received SYN gives no reason to disable ENO, so
// the host's SYN-ACK must carry our SYN's option unchanged (§4.6):
// simSYNACK adds it, and R's SYN-ACK is negotiated with us as host A. Else
// the host's SYN-ACK leaves without ENO (§4.6: the received SYN disabled
// it) and the connection stays plain.
func (e *Engine) crossingSYN(f *flow, p *packet.Packet) Verdict {
	if len(p.Payload()) > 0 {
		return e.drop(DropStale)
	}
	if f.sim&simCrossed != 0 && p.Seq() == f.simISN { // a repeat: decided already
		if f.sim&simENO != 0 {
			e.clamp(f, p)
			return ForwardInPlace
		}
		return Passthrough
	}
	f.sim, f.simISN = simCrossed, p.Seq()
	out := f.settings.NegotiateOptions(f.local[:f.localLen], p.OptionBytes())
	if !out.OK() || out.Role != eno.RoleA {
		return Passthrough
	}
	if _, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEP(out.TEP())); err != nil {
		return Passthrough
	}
	f.sim |= simENO
	if e.si.hasMSS {
		f.mssR = e.si.mss
	}
	// What R's lost SYN-ACK would have repeated (simAcked).
	sc := eno.ScanOptions(p.OptionBytes())
	opt, _ := sc.SYNOption(p.OptionBytes())
	f.peerLen = copy(f.peer[:], opt)
	if e.si.hasTS {
		f.sim |= simTS
	}
	if e.si.sackOK {
		f.sim |= simSACK
	}
	f.simWS = e.si.ws
	e.clamp(f, p) // the host's segments are framed if R's SYN-ACK negotiates
	return ForwardInPlace
}

// simSYNACK sends the inside host's answer to a compatible crossing SYN
// (crossingSYN) with our SYN's ENO option, the same bytes (RFC 8547 §4.6,
// ENO-31), on every repeat. Once R's SYN-ACK has negotiated, the first one
// is followed by Init1. Without room for the option the flow stays plain.
func (e *Engine) simSYNACK(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	win := p.Window()
	if e.si.hasTS {
		f.tsL = newerTS(f.tsL, e.si.tsVal)
	}
	if !e.rewriteOptions(p, f.local[:f.localLen], tx[Outside]) {
		if f.state == stSynSent {
			e.kill(f, FallbackOptionRoom, "no room for TCP-ENO in the simultaneous open's SYN-ACK")
			return Passthrough
		}
		return e.drop(DropMalformed)
	}
	if f.sim&simAnswered == 0 {
		f.sim |= simAnswered
		if f.state == stKex {
			f.winL = synWindow(win, f.wsLe)
			e.simInit(now, f, tx[Outside])
		} else {
			f.winL = win // unscaled until R's SYN-ACK gives the shift (farSYNACK)
		}
	}
	return Forwarded
}

// simInit sends Init1 once a simultaneous open has negotiated and the
// host's SYN-ACK carried our option: the host, already answered, may send
// nothing that would carry it out (hostSegment sends it with the host's
// first segment otherwise).
func (e *Engine) simInit(now int64, f *flow, to TxSink) {
	if f.ini != nil && !f.enc.initSent {
		e.sendInit(now, f, to)
	}
}

// simAcked settles a simultaneous open with a compatible option
// (crossingSYN) whose far SYN-ACK to our SYN was lost: R took the host's
// SYN-ACK, with our option, and is established as host B; it sends that
// SYN-ACK no more and waits for Init1. Its ACK of our SYN, numbered from
// its crossing SYN, stands for the SYN-ACK (an off-path forger must guess
// our ISN, as for the SYN-ACK), which would have repeated the crossing
// SYN's option and parameters (RFC 8547 §4.6): the open is negotiated from
// those, as farSYNACK negotiates, and the ACK goes on to the host, in
// SYN-RECEIVED, as R's first segment of the connection.
func (e *Engine) simAcked(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	e.dropPrev(f)
	f.isnR = f.simISN
	out := f.settings.Negotiate(f.local[:f.localLen], f.peer[:f.peerLen])
	if !out.OK() || out.Role != eno.RoleA {
		return e.fallbackA(f, p, tx, FallbackNegotiate, out.Reason.String())
	}
	if !e.negotiated(f) {
		return e.fallbackA(f, p, tx, FallbackNegotiatedFull, "negotiated set full")
	}
	f.outcome = out
	delete(e.plainPeers, f.key.out.Addr())
	f.tsR = e.si.tsVal
	f.setTSRecent(now, e.si.tsVal)
	f.tsOK = f.tsOK && f.sim&simTS != 0
	f.sackOK = f.sackOK && f.sim&simSACK != 0
	if f.wsL >= 0 && f.simWS >= 0 {
		f.wsR, f.wsLe = uint8(f.simWS), uint8(f.wsL)
	}
	f.winL = synWindow(f.winL, f.wsLe) // the host's SYN-ACK's (simSYNACK)
	f.winR = p.Window()                // not a SYN's: scaled (RFC 7323 §2.2)
	if !f.toL.set(p) {
		return e.fallbackA(f, p, tx, FallbackNegotiate, "headers too long to originate segments")
	}
	f.ecn = 0 // negotiated in SYN-ACKs the appliance did not see all of: none, as on a path that bleaches it
	if f.res != nil {
		f.res.Erase() // TC-24: R's SYN is no resumption reply; the secret stays used
		f.res = nil
	}
	if !e.startKex(now, f) {
		return Consumed
	}
	e.simInit(now, f, tx[Outside])
	return e.fromOutside(now, f, p, tx)
}

// crossingSYNACK reports whether p is the inside host's answer to the SYN
// that crossed ours: it goes out as the host sent it, without ENO, unless
// simENO is set (simSYNACK).
func (e *Engine) crossingSYNACK(f *flow, p *packet.Packet) bool {
	return f.sim&simCrossed != 0 && p.Flags()&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN|packet.FlagACK &&
		p.Seq() == f.isnL && p.Ack() == f.simISN+1 && len(p.Payload()) == 0
}

// wireAccept applies to a segment from R of a negotiated flow the checks a
// TCP applies before a segment may change its state (RFC 9293 §3.10.7.4 as
// RFC 5961 amends it), for the appliance stands for L toward R: without
// them a blind attacker who guessed the 4-tuple could end the connection
// with an RST anywhere near the window, hang its close with a FIN at any
// offset, or free the retransmit store with a forged ACK (and stall the
// connection). In order:
//
//   - a bad checksum: dropped, as TCP drops it (never fed to the decoder,
//     where it would fail authentication and abort, nor believed);
//   - RST: it resets only at exactly the next sequence number (§3.2: the
//     one we hold, or the one we last acknowledged, which a far side
//     answering a challenge ACK uses); elsewhere in the window it gets a
//     challenge ACK, outside it nothing;
//   - SYN: a challenge ACK whatever its sequence number (§4), except R's
//     repeated SYN-ACK to host A (its third segment was lost). A SYN
//     that starts a new connection on a closed one's tuple never gets
//     here (reuses);
//   - the sequence number: a segment must overlap the window, from what we
//     last acknowledged (a stale pure ACK or a keep-alive probe just below
//     it still counts) to the furthest the engine would place data; older
//     data is a duplicate (answered, its ACK not believed), anything else
//     gets an ACK (rate-limited) and is dropped. A pure ACK numbered below
//     that, by at most the span of the window, is believed (its window is
//     not: wireACK): R numbers its pure ACKs at most at the right edge we
//     last advertised as it knows it (Linux's tcp_acceptable_seq), which
//     lies below what we hold once R sent past it, whether our window
//     shrank or R's view of it is old because our later ACKs were lost.
//     Two appliances that dropped each other's ACKs for that reason would
//     both wait for an ACK forever, each retransmission answered by
//     another such ACK;
//   - the ACK bit must be set;
//   - the ACK: one for data never sent is answered with an ACK and the
//     segment dropped; one older than the largest window R ever offered
//     gets a challenge ACK (§5.2).
//
// A blind attacker must so guess both numbers within windows, as against
// a TCP endpoint. Challenge ACKs are limited per flow (§7); a limit shared
// by all flows would let an attacker count them and so learn which tuples
// exist (CVE-2016-5696).
func (e *Engine) wireAccept(now int64, f *flow, p *packet.Packet, tx [2]TxSink) (Verdict, bool) {
	if !p.VerifyL4Checksum() {
		return e.drop(DropChecksum), false
	}
	d := &f.rcv
	fl := p.Flags()
	n := int64(len(p.Payload()))
	w := unwrap(p.Seq(), f.isnR, d.rcvW)
	lo := min(d.lastAckW, d.rcvW) // RCV.NXT as R was last told it
	hi := f.acceptEnd()
	if fl&packet.FlagRST != 0 {
		if w == d.rcvW || w == d.lastAckW || w == f.wireAckOut() {
			return 0, true
		}
		if w >= lo && w < hi {
			e.challenge(now, f, tx[Outside])
		}
		return e.drop(DropRSTRejected), false
	}
	if fl&packet.FlagSYN != 0 {
		if fl&packet.FlagACK != 0 && f.role == eno.RoleA && p.Seq() == f.isnR {
			return 0, true
		}
		e.challenge(now, f, tx[Outside])
		return e.drop(DropStale), false
	}
	if e.paws(now, f, n, fl) {
		if now >= f.challengeNext { // the ACK it gets, rate-limited as a challenge ACK
			f.challengeNext = now + challengeGap
			e.ackR(f, tx[Outside], nil)
		}
		return e.drop(DropPAWS), false
	}
	segEnd := w + n
	if fl&packet.FlagFIN != 0 {
		segEnd++
	}
	keepAlive := n <= 1 && fl&packet.FlagFIN == 0 && w == d.lastAckW-1
	switch {
	case keepAlive:
	case w > hi || (segEnd > w && w == hi):
		e.challenge(now, f, tx[Outside])
		return e.drop(DropOutOfWindow), false
	case segEnd > w && segEnd < lo:
		// Data R sent again although we acknowledged it: answer it
		// (duplicate re-delivers what L may have lost, or ACKs). It
		// starts below Last.ACK.sent, so its TSval is TS.Recent and our
		// answer echoes it (RFC 7323 §4.3): R's sender then measures the
		// round trip of this resend, not the time since the segment
		// before it (when our first ACK was lost, seconds).
		if e.si.hasTS {
			f.tsR = newerTS(f.tsR, e.si.tsVal)
			f.noteTSRecent(now, w, e.si.tsVal)
		}
		e.duplicate(f, w, w+n, tx)
		return Forwarded, false
	case segEnd == w && w < lo-(hi-d.ackW):
		e.challenge(now, f, tx[Outside])
		return e.drop(DropOutOfWindow), false
	}
	if fl&packet.FlagACK == 0 {
		return e.drop(DropOutOfWindow), false
	}
	a := unwrap(p.Ack(), f.isnL, f.enc.ackW)
	if a > f.wireSndNxt() || a < f.enc.ackW-max(f.maxWinR, 0xffff) {
		e.challenge(now, f, tx[Outside])
		return e.drop(DropOutOfWindow), false
	}
	f.maxWinR = max(f.maxWinR, int64(p.Window())<<f.wsR)
	return 0, true
}

// PAWS (RFC 7323 §5): with timestamps on, a segment from R whose TSval is
// older than TS.Recent is an old duplicate, from before R's sequence
// numbers wrapped (at 10 Gbit/s they wrap every 3.4 s). Its bytes sit at
// the offsets of R's current stream: fed to the frame decoder they would
// be read as a frame (a garbage length, then an authentication failure
// that resets the connection), where a host TCP drops the segment and
// acknowledges (§5.3 R1); the inside host cannot, since the appliance
// writes the timestamps it sees. As Linux does (tcp_paws_discard), only
// segments with data or a FIN are checked (a reordered pure ACK is no
// harm, wireACK orders them), a TSval one tick old passes, and TS.Recent
// counts only until it has gone 2,147 s without being set (§5.5: R's
// clock may have wrapped meanwhile; Linux's TCP_PAWS_WRAP, for a clock of
// 1 µs, which wraps half the space in that time, as RFC 7323's 1 ms clock
// does in 24 days).
const (
	pawsWindow = 1
	pawsIdle   = uint32((2147 * time.Second) >> 30) // in units of 2^30 ns, as tsRecentAt
)

// paws reports whether the segment in e.si, with n bytes of data and flags
// fl, is an old duplicate by its timestamp.
func (e *Engine) paws(now int64, f *flow, n int64, fl uint8) bool {
	if !f.tsOK || !e.si.hasTS || n == 0 && fl&packet.FlagFIN == 0 || f.tsRecent == 0 {
		return false
	}
	return int32(f.tsRecent-e.si.tsVal) > pawsWindow && uint32(now>>30)-f.tsRecentAt < pawsIdle
}

// setTSRecent sets R's TS.Recent (RFC 7323 §4.3). A TSval of 0 leaves it
// unset, as a SYN without timestamps does (Linux takes 0 for none).
func (f *flow) setTSRecent(now int64, v uint32) {
	f.tsRecent, f.tsRecentAt = v, uint32(now>>30)
}

// noteTSRecent takes in the TSval of an accepted segment from R at wire
// offset w: it becomes TS.Recent if the segment starts at or below the
// ACK R last got from us (Last.ACK.sent, RFC 7323 §4.3), so that a
// reordered later segment cannot raise it above an earlier one still on
// its way, and it is not older (or TS.Recent is unset or has gone stale,
// pawsIdle).
func (f *flow) noteTSRecent(now int64, w int64, v uint32) {
	if w <= f.rcv.lastAckW && (f.tsRecent == 0 || int32(v-f.tsRecent) >= 0 || uint32(now>>30)-f.tsRecentAt >= pawsIdle) {
		f.setTSRecent(now, v)
	}
}

// acceptEnd is the furthest wire offset the engine takes data from R up to:
// every edge R was given (RFC 9293 §3.8.6: a receiver that shrank its window
// still accepts segments up to an edge it advertised), the first of them
// the SYN's or SYN-ACK's window, never scaled (RFC 7323 §2.2), from offset
// 0. No further, as a TCP checks (RFC 9293 §3.10.7.4): a far side's byte
// past its window would make the reassembly reserve the span up to it, and
// a blind attacker's odds of landing a segment (whose forged frame aborts
// the connection) would follow that span rather than the window.
func (f *flow) acceptEnd() int64 {
	return max(f.rcv.toldEdge, synEdge)
}

// synEdge is the furthest edge a SYN or SYN-ACK can give: its window,
// unscaled, from wire offset 0.
const synEdge = 0xffff

// wireSndNxt is the wire's SND.NXT as an offset: what was sent, and the FIN.
func (f *flow) wireSndNxt() int64 {
	w := f.enc.sentW
	if f.enc.finW >= 0 && w >= f.enc.finW {
		w = f.enc.finW + 1
	}
	return w
}

// wireAckOut is the acknowledgment number, as an offset, that the
// appliance sends R (ackR): what L acknowledged, and R's FIN.
func (f *flow) wireAckOut() int64 {
	d := &f.rcv
	if d.finW >= 0 && d.ackH > d.finH {
		return d.finW + 1
	}
	return d.ackW
}

// challengeGap is the least time between two challenge ACKs of one flow
// (Linux's tcp_invalid_ratelimit default).
const challengeGap = int64(500 * time.Millisecond)

// challenge sends R a challenge ACK (RFC 5961 §3.2, §4, §5.2), at most one
// per challengeGap.
func (e *Engine) challenge(now int64, f *flow, to TxSink) {
	if now < f.challengeNext {
		return
	}
	f.challengeNext = now + challengeGap
	e.c.ChallengeACKs.Add(1)
	e.ackR(f, to, nil)
}

// challengeL answers a SYN from L on a negotiated connection's tuple that
// is not a new connection (reuses) with the challenge ACK R would send
// (RFC 5961 §4): a host that lost the connection answers with an RST,
// which ends it, and its next SYN then starts a new one.
func (e *Engine) challengeL(now int64, f *flow, tx [2]TxSink) Verdict {
	if now >= f.challengeNext {
		f.challengeNext = now + challengeGap
		e.c.ChallengeACKs.Add(1)
		e.ackL(f, tx[Inside], nil)
	}
	return e.drop(DropStale)
}

// reuses reports whether SYN p starts a new connection on the tuple of f,
// an encrypted connection that has closed, as a TCP in TIME-WAIT decides
// (RFC 6191; Linux's tcp_timewait_state_process): the SYN's timestamp is
// newer than the sender's last one, or, with timestamps equal or not in
// use, its ISN lies beyond the sender's last sequence number (after its
// FIN, in host space: what the receiving host itself compares). A SYN with
// an older timestamp is an old duplicate (PAWS).
//
// Closed means: for a SYN from the inside host, both FINs seen (the host
// has left the old connection, or it would not reuse the tuple); for one
// from outside, where a blind attacker passes the ISN test half the time,
// both FINs acknowledged (closeAt), so the inside host is at most in
// TIME-WAIT. Before that a host still closing answers a SYN with a
// challenge ACK (RFC 5961 §4), and so does the engine (wireAccept,
// challengeL); the old record stays. A far side that did close answers
// the challenge ACK with an RST that ends the old record, and its next SYN
// starts the new connection; an inside host's SYN-SENT answer to one is
// sent on its behalf (synSentReset).
func (e *Engine) reuses(f *flow, p *packet.Packet, from PortID) bool {
	closed := f.enc.finW >= 0 && f.rcv.finW >= 0
	if from == Outside {
		closed = f.closeAt != 0
	}
	if !closed || len(p.Payload()) > 0 || !p.VerifyL4Checksum() {
		return false
	}
	last, ts := wrap(f.isnR, f.rcv.finH+1), f.tsR
	if from == Inside {
		last, ts = wrap(f.isnL, f.enc.finH+1), f.tsL
	}
	if f.tsOK && e.si.hasTS {
		switch d := int32(e.si.tsVal - ts); {
		case d < 0:
			return false
		case d > 0:
			return true
		}
	}
	return int32(p.Seq()-last) > 0
}

// reuse starts the new connection of SYN p on the tuple of f, an encrypted
// connection that has closed (reuses). A SYN from the inside host shows
// that host has left the old connection: its record goes. For one from
// outside the old record is kept aside (prev) until the inside host
// answers the SYN with a SYN-ACK (as in TIME-WAIT, it may not: RFC 6191
// lets the host decide too): meanwhile the old connection's late segments
// (the far side's FIN again, the host's last ACK, or its data and FIN if
// it missed our last ACK) are still the old record's, and never pass as
// plaintext or reach the host undecrypted.
func (e *Engine) reuse(now int64, f *flow, p *packet.Packet, from PortID, tx [2]TxSink) Verdict {
	if from == Inside {
		e.remove(f)
		return e.synOnTuple(now, f.key, nil, p, from, tx)
	}
	e.detach(f)
	return e.synOnTuple(now, f.key, f, p, from, tx)
}

// synSentReset answers, on the inside host's behalf, a segment from R in
// SYN-SENT whose ACK does not acknowledge the host's SYN, as the host's TCP
// would (RFC 9293 §3.10.7.3): an RST at the segment's ACK number, and the
// segment dropped. It is how a far side still holding the tuple's old
// connection (it answered our SYN with a challenge ACK) lets go of it.
// The host itself never sees the segment: its RST would end the record.
func (e *Engine) synSentReset(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	if p.Flags()&packet.FlagACK == 0 || p.Ack() == f.isnL+1 || !p.VerifyL4Checksum() {
		return e.drop(DropStale)
	}
	if now >= f.challengeNext {
		f.challengeNext = now + challengeGap
		e.opts.reset()
		e.send(tx[Outside], &f.toR, &seg{seq: p.Ack(), flags: packet.FlagRST}, nil)
	}
	return e.drop(DropOutOfWindow)
}
