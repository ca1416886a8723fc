package engine

import (
	"bytes"
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// settings returns the TCP-ENO settings of a new flow: the configured TEPs,
// most preferred first (eno writes them in reverse, ENO-D3).
func (e *Engine) settings() *eno.Settings {
	s := &eno.Settings{Offers: make([]eno.Offer, len(e.cfg.TEPs)), Valid: noResumptionOffered}
	for i, t := range e.cfg.TEPs {
		s.Offers[i] = eno.Offer{TEP: eno.TEP(t)}
	}
	return s
}

// outboundSYN handles a SYN from an inside host on an untracked tuple. One
// that passes with no record (a full table, the memory budget) takes the
// tuple out of the negotiated set, or the connection's first segment
// would be reset as a stray: the host starts a new connection there, so it
// holds no old one. (From outside, only the host's SYN-ACK tells: stray.)
func (e *Engine) outboundSYN(now int64, k flowKey, p *packet.Packet, tx [2]TxSink) Verdict {
	v := e.hostSYN(now, k, p, tx)
	if v == Passthrough && e.flows[k] == nil {
		e.neg.forget(k)
	}
	return v
}

// hostSYN is outboundSYN but for the negotiated set: the appliance becomes
// host A (docs/protocol.md §7).
func (e *Engine) hostSYN(now int64, k flowKey, p *packet.Packet, tx [2]TxSink) Verdict {
	pol := e.cfg.policyFor(k.out.Addr())
	if pol == Bypass {
		return e.plain(now, k, pol, FallbackBypass, "policy bypass")
	}
	if p.L4Offset()+20 > tmplCap {
		return e.plain(now, k, pol, FallbackNegotiate, "headers too long to originate segments")
	}
	sc := eno.ScanOptions(p.OptionBytes())
	if sc.Err != nil || e.si.optErr {
		// Passed as it came (the far host judges it), so a fallback,
		// not a drop: counted as one, it read as a lost SYN.
		return e.plain(now, k, pol, FallbackNegotiate, "malformed TCP options")
	}
	if sc.NumENO > 0 || sc.NumLegacy > 0 {
		// The host speaks TCP-ENO itself: end to end wins (ENO-89 for legacy).
		v := e.plain(now, k, pol, FallbackEndToEnd, "inside host negotiates TCP-ENO itself")
		if f := e.flows[k]; f != nil && pol == Require {
			f.e2e, f.isnL = e2eSYNACK, p.Seq()
		}
		return v
	}
	if r, why := leftAlone(p, &sc, "SYN"); r >= 0 {
		return e.plain(now, k, pol, r, why)
	}
	if pol != Require && e.enoPathLost(now, k.out.Addr()) {
		return e.plain(now, k, pol, FallbackENOPathStripped, "the far side's path lost TCP-ENO after the SYNs: SYN without it")
	}
	synData := len(p.Payload()) > 0 || sc.TFO
	if synData && pol != Require && e.answeredWithoutENO(now, k.out.Addr()) {
		// Fast Open works as over any path (plainpeers.go).
		return e.plain(now, k, pol, FallbackSYNData, "SYN with data or Fast Open to a far side without TCP-ENO")
	}
	e.makeRoomEmbryo(now, tx)
	if len(e.flows) >= e.cfg.MaxFlows && !e.reclaim() {
		return e.capped(pol)
	}
	s := e.settings()
	var res *tcpcrypt.Resumption
	if e.deps.Cache != nil {
		if rr, ok := e.deps.Cache.Offer(k.out.Addr()); ok && e.mayResume(rr) {
			res = rr
			s.Offers = resumeOffers(s.Offers, rr)
			s.Valid = answerValid(rr)
		} else if ok {
			rr.Erase()
		}
	}
	r := room(p)
	if r > eno.MaxOptionsLen {
		r = eno.MaxOptionsLen
	}
	var opt [eno.MaxOptionsLen]byte
	n, err := s.PutSYN(opt[:r])
	if err != nil && res != nil {
		// No room for the resumption suboption (an ENO option of about 20
		// bytes with the default 8-byte nonce; a Fast Open cookie request
		// beside the usual options leaves 16): offer a fresh key exchange
		// instead. The secret stays spent (RFC 8548 §3.5: never offered
		// twice).
		res.Erase()
		res = nil
		e.c.ResumeNoRoom.Add(1)
		s = e.settings()
		n, err = s.PutSYN(opt[:r])
	}
	if err != nil {
		return e.plain(now, k, pol, FallbackOptionRoom, "no room for TCP-ENO")
	}
	if !e.admit() {
		if res != nil {
			res.Erase()
		}
		return e.plain(now, k, pol, FallbackMemory, "flow memory limit")
	}
	f := e.newFlow(now, k, pol)
	e.embJoin(f)
	f.settings = s
	f.res = res
	e.setState(f, stSynSent)
	f.role = eno.RoleA
	f.localLen = copy(f.local[:], opt[:n])
	f.isnL = p.Seq()
	if e.si.hasMSS {
		f.mssL = e.si.mss
	}
	f.tsL = e.si.tsVal
	f.tsOK = e.si.hasTS // and the SYN-ACK's, below
	f.sackOK = e.si.sackOK
	f.wsL = e.si.ws
	f.toR.set(p)
	f.ecnSYN(p)
	if synData {
		// ENO-43 forbids SYN data and a Fast Open cookie beside ENO:
		// rewriteOptions leaves both out. The host's data, unacknowledged,
		// follows the handshake, as to a server that refuses Fast Open
		// (RFC 7413 §4.2.2).
		e.c.SYNDataHeldBack.Add(1)
	}
	e.rewriteOptions(p, f.local[:f.localLen], tx[Outside])
	return Forwarded
}

// synRetransmitGap is the least time between a host's SYN and its copy
// for the copy to count as a retransmission the path left unanswered: a
// host waits its initial retransmission timeout, 1 s (RFC 6298 §2.1), and
// none waits less than Linux's 200 ms floor; copies handled closer than
// that came together out of the port's ring.
const synRetransmitGap = int64(200 * time.Millisecond)

// resendSYN repeats the same ENO bytes on a retransmitted SYN (ENO-31),
// data and a Fast Open cookie left out as on the first, up to
// Config.SYNsWithENO SYNs in all (two more to a far address that
// completed an encrypted handshake lately); the next leaves without them, as RFC 8547
// §4.6 allows, and the connection stays plain: a path that drops SYNs with
// TCP-ENO still connects. Once R's SYN-ACK has negotiated (stKex), a copy
// of the SYN (it crossed the SYN-ACK, or the enclave duplicated it) shows
// no such path: it keeps the option whatever the count, for the flow is
// in its key exchange (R holds keys; a public-key job may be reading the
// flow) and can no longer turn plain. Only a copy that comes synRetransmitGap
// or more after the flow's previous segment counts: copies that come
// together waited in the port while the appliance was paused or starved
// (a paused VM, a backlog), not for an answer the path withheld.
func (e *Engine) resendSYN(now int64, f *flow, p *packet.Packet, to TxSink) Verdict {
	if p.Seq() != f.isnL {
		if f.policy == Require {
			return e.drop(DropPolicy) // it would leave without ENO: hold it back
		}
		e.kill(f, FallbackSYNData, "syn changed")
		return Passthrough
	}
	if f.synResends < 255 && now-e.lastBefore >= synRetransmitGap {
		f.synResends++
	}
	limit := e.cfg.SYNsWithENO
	if e.trusted.known(f.key.out.Addr(), now) {
		// The far address completed an encrypted handshake within the
		// hour (trusted.go): its path carried SYNs with TCP-ENO. Lost
		// SYNs more likely met loss or a blackout than a path that drops
		// the option: it keeps it two SYNs longer (5: 4 s with Linux
		// 6.x's SYN timers), and the host's last two of its default
		// seven still go without it, before it gives up.
		limit += 2
	}
	if f.state == stSynSent && f.policy != Require && limit > 0 && 1+int(f.synResends) > limit {
		e.kill(f, FallbackSYNRetries, "no answer to the SYNs with TCP-ENO: a retransmission went without it")
		return Passthrough
	}
	if !e.rewriteOptions(p, f.local[:f.localLen], to) {
		return e.drop(DropMalformed)
	}
	return Forwarded
}

// inboundSYN handles a SYN from the far side on an untracked tuple. With an
// ENO option the appliance may become host B; the SYN goes on unchanged
// except for the MSS clamp (so the host may still answer ENO itself).
func (e *Engine) inboundSYN(now int64, k flowKey, p *packet.Packet, tx [2]TxSink) Verdict {
	pol := e.cfg.policyFor(k.out.Addr())
	shed := e.shedSYN(now, k.out.Addr())
	if shed == shedDrop || shed == shedPass && pol == Require {
		return e.drop(DropSYNFlood) // (require: no plain TCP to pass it as)
	}
	if shed == shedPass {
		e.bareSYN = true // no record: what the flood would fill (farSYN resets it)
	}
	if pol == Bypass {
		return e.plain(now, k, pol, FallbackBypass, "policy bypass")
	}
	if p.L4Offset()+20 > tmplCap {
		return e.plain(now, k, pol, FallbackNegotiate, "headers too long to originate segments")
	}
	area := p.OptionBytes()
	sc := eno.ScanOptions(area)
	opt, reason := sc.SYNOption(area)
	if reason != eno.Success {
		if pol == Require {
			return e.drop(DropPolicy) // policy: no plain TCP with this prefix
		}
		return e.plain(now, k, pol, FallbackNoENO, "far side offered no TCP-ENO: "+reason.String())
	}
	if reason, why := leftAlone(p, &sc, "SYN"); reason >= 0 || sc.TFO {
		// A signed or source-routed SYN goes to the host unchanged, MSS
		// and all: neither it nor what follows may be altered. A Fast
		// Open cookie gives SYN data a meaning of its own: the appliance
		// does not combine it with ENO. The data of a SYN+ENO segment is
		// discarded all the same (RFC 8547 §4.7: also when ENO is not
		// used).
		if reason < 0 {
			reason, why = FallbackSYNData, "SYN with TCP-ENO and a Fast Open cookie"
		}
		v := e.plain(now, k, pol, reason, why)
		// AH: not a byte may change; source-routed: its checksum cannot be summed anew.
		if v == Passthrough && len(p.Payload()) > 0 && !p.HasAH() && !p.SegmentsLeft() {
			return e.synWithoutData(nil, p, tx[Inside])
		}
		return v
	}
	if pol != Require && e.enoPathLost(now, k.out.Addr()) {
		// The inside host's SYN-ACK leaves as it is, without ENO.
		return e.synDataCheck(nil, e.plain(now, k, pol, FallbackENOPathStripped, "the far side's path lost TCP-ENO after the SYNs: SYN-ACK without it"), p, tx[Inside])
	}
	if shed == shedPass {
		// Under a flood a SYN of an unknown source goes on as a bridge
		// would pass it: the host answers, in plain TCP unless it speaks
		// TCP-ENO itself (flood.go).
		return e.synDataCheck(nil, e.plain(now, k, pol, FallbackSYNFlood, "SYN flood: passed on without a record"), p, tx[Inside])
	}
	e.makeRoomEmbryo(now, tx)
	if len(e.flows) >= e.cfg.MaxFlows && !e.reclaim() {
		return e.synDataCheck(nil, e.capped(pol), p, tx[Inside])
	}
	if !e.admit() {
		return e.synDataCheck(nil, e.plain(now, k, pol, FallbackMemory, "flow memory limit"), p, tx[Inside])
	}
	f := e.newFlow(now, k, pol)
	e.embJoin(f)
	// No record here, and no encrypted connection: a plain one the engine
	// forgot (PlainRetention, a restart) may be live, the SYN blind.
	f.unknownPrev = !e.neg.has(k)
	f.settings = e.settings()
	e.setState(f, stSynRcvd)
	f.role = eno.RoleB
	f.peerLen = copy(f.peer[:], opt)
	f.isnR = p.Seq()
	if e.si.hasMSS {
		f.mssR = e.si.mss
	}
	f.tsR = e.si.tsVal
	f.setTSRecent(now, e.si.tsVal)
	f.tsOK = e.si.hasTS
	f.sackOK = e.si.sackOK
	f.wsL = e.si.ws // R's shift for now; settled at L's SYN-ACK
	f.toL.set(p)
	f.ecnSYN(p)
	if len(p.Payload()) > 0 {
		return e.synWithoutData(f, p, tx[Inside])
	}
	e.clamp(f, p)
	return ForwardInPlace
}

// hostSYNACK handles the inside host's SYN-ACK to a far side that offered
// ENO: answer as host B unless the host speaks ENO itself.
func (e *Engine) hostSYNACK(f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	to := tx[Outside]
	area := p.OptionBytes()
	sc := eno.ScanOptions(area)
	if sc.NumENO > 0 || sc.NumLegacy > 0 {
		e.kill(f, FallbackEndToEnd, "inside host negotiates TCP-ENO itself")
		if f.policy == Require {
			f.e2e, f.isnL, f.winL = e2eThird, p.Seq(), p.Window()
		}
		return f.plainVerdict()
	}
	if r, why := leftAlone(p, &sc, "SYN-ACK"); r >= 0 {
		return e.fallbackB(f, p, tx, r, why)
	}
	if f.state == stSynAckSent {
		if p.Seq() != f.isnL {
			return e.fallbackB(f, p, tx, FallbackNegotiate, "syn-ack changed")
		}
		if !e.rewriteOptions(p, f.local[:f.localLen], to) {
			return e.drop(DropMalformed)
		}
		if e.si.hasTS {
			// R keeps this SYN-ACK's TSval as TS.Recent: what the
			// appliance sends for L (Init2 first) must not go back
			// before it, or R drops it (RFC 7323 §5.3, PAWS).
			f.tsL = newerTS(f.tsL, e.si.tsVal)
		}
		return Forwarded
	}
	r := min(room(p), eno.MaxOptionsLen)
	var opt [eno.MaxOptionsLen]byte
	var choose eno.ChooseFunc
	if e.deps.Cache != nil {
		e.acceptResumption(f)
		choose = func(tep eno.TEP, peer eno.Suboption, room int) ([]byte, bool) {
			if f.res == nil || tcpcrypt.TEP(tep) != f.res.TEP {
				return nil, true // a fresh offer of that TEP (TC-20..TC-22)
			}
			d := f.res.AppendSuboption(f.resBuf[:0])[1:]
			if len(d) > room {
				f.res.Erase()
				f.res = nil
				return nil, true
			}
			return d, true
		}
	}
	n, reason := f.settings.PutSYNACK(opt[:r], f.peer[:f.peerLen], choose)
	if reason != eno.Success {
		e.dropResumption(f)
		return e.fallbackB(f, p, tx, FallbackNegotiate, reason.String())
	}
	f.localLen = copy(f.local[:], opt[:n])
	f.outcome = f.settings.Negotiate(f.local[:f.localLen], f.peer[:f.peerLen])
	if !f.outcome.OK() || f.outcome.Role != eno.RoleB {
		e.dropResumption(f)
		return e.fallbackB(f, p, tx, FallbackNegotiate, f.outcome.Reason.String())
	}
	if f.res != nil && f.outcome.TEPByte != byte(f.res.TEP)|tcpcrypt.ResumeBit {
		e.dropResumption(f) // the answer did not carry it: a fresh exchange
	}
	if _, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEP(f.outcome.TEP())); err != nil {
		return e.fallbackB(f, p, tx, FallbackNegotiate, err.Error())
	}
	f.isnL = p.Seq()
	if e.si.hasMSS {
		f.mssL = e.si.mss
	}
	f.tsL = e.si.tsVal
	f.tsOK = f.tsOK && e.si.hasTS
	f.sackOK = f.sackOK && e.si.sackOK
	if f.wsL >= 0 && e.si.ws >= 0 {
		f.wsR, f.wsLe = uint8(f.wsL), uint8(e.si.ws)
	}
	f.wsL = e.si.ws
	f.winL = synWindow(p.Window(), f.wsLe)
	if !f.toR.set(p) {
		return e.fallbackB(f, p, tx, FallbackNegotiate, "headers too long to originate segments")
	}
	f.ecnSYNACK(p)
	if !e.negotiated(f) {
		return e.fallbackB(f, p, tx, FallbackNegotiatedFull, "negotiated set full")
	}
	if !e.rewriteOptions(p, f.local[:f.localLen], to) {
		return e.fallbackB(f, p, tx, FallbackOptionRoom, "no room")
	}
	e.setState(f, stSynAckSent)
	return Forwarded
}

// farSYNACK handles the far side's SYN-ACK to our SYN (host A).
func (e *Engine) farSYNACK(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	if f.state == stSynSent {
		if p.Ack() != f.isnL+1 {
			return e.drop(DropOutOfWindow)
		}
		e.dropPrev(f) // R answered our SYN: the tuple is the new connection's
		if f.sim&simCrossed != 0 && p.Seq() == f.simISN && f.sim&simENO == 0 {
			// R's SYN-ACK repeats the SYN that crossed ours: a
			// simultaneous open (see fromOutside) that its SYN
			// disabled (crossingSYN).
			e.kill(f, FallbackSimultaneousOpen, "simultaneous open: the far SYN's TCP-ENO option disabled ENO")
			if eno.ScanOptions(p.OptionBytes()).NumENO > 0 {
				return e.synDataCheck(nil, Passthrough, p, tx[Inside]) // RFC 8547 §4.7
			}
			return Passthrough
		}
		f.isnR = p.Seq()
		if p.SegmentsLeft() { // as for our own SYN (leftAlone)
			return e.fallbackA(f, p, tx, FallbackSourceRouted, "SYN-ACK source-routed (addresses left before the final destination)")
		}
		out := f.settings.NegotiateOptions(f.local[:f.localLen], p.OptionBytes())
		if !out.OK() || out.Role != eno.RoleA {
			r := FallbackNegotiate
			if out.Reason == eno.NoOption {
				r = FallbackNoENO
				e.noteAnsweredWithoutENO(now, f.key.out.Addr())
			}
			return e.fallbackA(f, p, tx, r, out.Reason.String())
		}
		if _, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEP(out.TEP())); err != nil {
			return e.fallbackA(f, p, tx, FallbackNegotiate, err.Error())
		}
		if !e.negotiated(f) {
			return e.fallbackA(f, p, tx, FallbackNegotiatedFull, "negotiated set full")
		}
		f.outcome = out
		delete(e.plainPeers, f.key.out.Addr()) // it speaks TCP-ENO now
		if e.si.hasMSS {
			f.mssR = e.si.mss
		}
		f.tsR = e.si.tsVal
		f.setTSRecent(now, e.si.tsVal)
		f.tsOK = f.tsOK && e.si.hasTS
		f.sackOK = f.sackOK && e.si.sackOK
		if f.wsL >= 0 && e.si.ws >= 0 {
			f.wsR, f.wsLe = uint8(e.si.ws), uint8(f.wsL)
		}
		f.winR = synWindow(p.Window(), f.wsR)
		if !f.toL.set(p) {
			return e.fallbackA(f, p, tx, FallbackNegotiate, "headers too long to originate segments")
		}
		f.ecnSYNACK(p)
		f.enoOut = true
		simAnswered := f.sim&simAnswered != 0 && p.Seq() == f.simISN // the simultaneous open negotiated
		if simAnswered {
			f.winL = synWindow(f.winL, f.wsLe) // the host's SYN-ACK's (simSYNACK)
		}
		if f.res != nil && out.Peer().V() && f.res.MatchReply(out.Peer().Byte, out.Peer().Data) {
			f.role = eno.RoleA
			e.resume(now, f, tx)
			if f.state == stDead {
				return Consumed
			}
		} else {
			if f.res != nil {
				f.res.Erase() // TC-24: B did not resume; the secret stays used
				f.res = nil
			}
			if !e.startKex(now, f) {
				if f.policy == Require {
					return e.fallbackA(f, p, tx, -1, f.reason) // counted by startKex
				}
				return Consumed
			}
			if simAnswered {
				e.simInit(now, f, tx[Outside])
			}
		}
	} else if p.Seq() != f.isnR {
		return e.drop(DropOutOfWindow)
	} else {
		f.synAckAgain = true
	}
	// Deliver it to L without ENO (the host did not ask for it) and with
	// the MSS clamped.
	var area [2 * packet.MaxOptionsLen]byte
	n := optionsWithout(area[:], p.OptionBytes(), false, false)
	buf := tx[Inside].Buffer()
	if buf == nil {
		return e.drop(DropTxFull)
	}
	m, err := p.ReplaceOptions(buf, area[:n])
	if err != nil {
		return e.drop(DropMalformed)
	}
	e.clamp(f, p) // p now decodes buf
	if len(p.Payload()) > 0 {
		// SYN data under ENO: tcpcrypt defines none, so it is discarded
		// and never acknowledged (RFC 8547 §4.7); it is unauthenticated
		// and must not reach the host.
		if p.ResizePayload(0) != nil || !p.FixL4Checksum() {
			return e.drop(DropMalformed)
		}
		m = len(p.Frame())
	}
	tx[Inside].Commit(m)
	// The SYN-ACK is L's first ACK from us: host offset 0, R's window.
	// Without this the ACK that R's Init2 carries (of our Init1, bytes L
	// never sent) went on to L as a duplicate of it, a frame per fresh
	// connection for nothing.
	f.lastHostAck, f.lastWinR = 0, f.winR
	return Forwarded
}

// handshakeFromOutside handles a segment from R while the handshake is
// under way. done is false when the segment is R's third one and the flow
// is now negotiated: it goes on as a segment of a negotiated flow.
func (e *Engine) handshakeFromOutside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) (v Verdict, done bool) {
	fl := p.Flags()
	if fl&packet.FlagRST != 0 {
		// A blind RST must not end the record: the SYN-ACK would then
		// pass untracked and the connection run in plain TCP. In
		// SYN-SENT an RST must acknowledge the SYN (RFC 9293
		// §3.10.7.3); else it must sit at R's next sequence number.
		if f.state == stSynSent && (fl&packet.FlagACK == 0 || p.Ack() != f.isnL+1) ||
			f.state != stSynSent && p.Seq() != f.isnR+1 {
			if f.prev != nil || f.unknownPrev {
				return e.stale(now, f, p, Outside, tx), true // the displaced connection's
			}
			return e.drop(DropRSTRejected), true
		}
		e.remove(f)
		return Passthrough, true
	}
	switch f.state {
	case stSynSent:
		return e.synSentFromOutside(now, f, p, tx), true
	case stSynRcvd:
		if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN && p.Seq() == f.isnR {
			return e.repeatedSYN(now, f, p, tx), true
		}
		if fl&(packet.FlagSYN|packet.FlagACK|packet.FlagRST) == packet.FlagSYN && f.prev != nil {
			// Another SYN while the one that displaced a connection
			// is unanswered (it may have been blind): it takes its place.
			prev := f.prev
			f.prev = nil
			e.remove(f)
			return e.synOnTuple(now, f.key, prev, p, Outside, tx), true
		}
		// The far side's ACK at the ISN of its own SYN proves nothing the
		// far side could not forge blind: on a tuple that holds an
		// encrypted connection (negotiated, or closed and kept aside) it
		// must not turn the record plain (asymmetric.go).
		if synAckElsewhere(p, f.isnR) && (f.prev == nil || f.prev.sess == nil) && !e.neg.has(f.key) {
			return e.asymmetric(f, p, Outside, tx), true
		}
		if fl&packet.FlagSYN == 0 {
			return e.stale(now, f, p, Outside, tx), true
		}
		return e.drop(DropStale), true
	case stSynAckSent:
		if fl&packet.FlagSYN != 0 {
			if fl&packet.FlagACK == 0 && p.Seq() == f.isnR {
				return e.repeatedSYN(now, f, p, tx), true
			}
			return e.drop(DropStale), true
		}
		// The first non-SYN segment: it must carry ENO (ENO-28). Only one
		// the inside host would accept decides (thirdAcceptable).
		if !e.thirdAcceptable(f, p) {
			return e.drop(DropOutOfWindow), true
		}
		if !e.si.eno {
			return e.thirdWithoutENO(now, f, p, tx), true
		}
		if f.res != nil {
			f.role = eno.RoleB
			e.resume(now, f, tx)
			if f.state == stDead {
				return Forwarded, true
			}
		} else if !e.startKex(now, f) {
			return e.fallbackThird(f, p, tx, -1, f.reason), true // counted by startKex
		}
	}
	return 0, false
}

// repeatedSYN handles host A's repeated SYN (its ISN again) while host B's
// negotiation waits for A's first ACK segment. RFC 8547 §4.6 case 1: a
// segment received up to and including the first ACK segment without an
// ENO option, or with an ill-formed SYN-form one (§4.4; two options count
// as none, §4.1), disables encryption and every further ENO option; an
// active opener may drop ENO between retransmissions of its SYN (§4.6).
// The flow goes plain, so the inside host's SYN-ACK (first or repeated)
// leaves without ENO. Under require the repeat is held back instead: it
// cannot lead to encryption, and the negotiation goes on from the first
// SYN (a far side that did disable leaves ENO off its third segment, and
// fallbackThird resets both hosts). A repeat with a well-formed option is
// negotiated from the first SYN's bytes, which the transcript holds
// (§4.6: SYN-form options do not change between retransmissions), unless
// its bytes changed: then from the repeat's (a restarted far appliance).
func (e *Engine) repeatedSYN(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	area := p.OptionBytes()
	sc := eno.ScanOptions(area)
	opt, reason := sc.SYNOption(area)
	if reason == eno.Success {
		if _, err := eno.ParseSYN(opt); err != nil {
			reason = eno.Malformed
		}
	}
	if reason != eno.Success {
		if f.policy == Require {
			return e.drop(DropPolicy)
		}
		if f.prev != nil {
			// The first SYN displaced a record the inside host has not
			// given up yet (acceptance.go): the repeat takes its place,
			// as a SYN with another number would, and starts over
			// from it (here: plain, the record kept aside).
			prev := f.prev
			f.prev = nil
			e.remove(f)
			return e.synOnTuple(now, f.key, prev, p, Outside, tx)
		}
		e.kill(f, FallbackNoENO, "repeated SYN without TCP-ENO: "+reason.String())
		if sc.NumENO > 0 { // ill-formed: its data is discarded all the same (§4.7)
			return e.synDataCheck(nil, Passthrough, p, tx[Inside])
		}
		return Passthrough
	}
	if f.prev == nil && !bytes.Equal(opt, f.peer[:f.peerLen]) && len(opt) <= len(f.peer) {
		// The option changed, which a host never does between
		// retransmissions (§4.6): A's appliance restarted after the
		// first SYN (its resumption cache gone, its offer new) and
		// dropped our SYN-ACK as one it has no record of
		// (earlySYNACK). Negotiate from the repeat at the host's next
		// SYN-ACK, which A's new run can take.
		e.dropResumption(f)
		f.peerLen = copy(f.peer[:], opt)
		f.wsL = e.si.ws
		e.setState(f, stSynRcvd)
	}
	if len(p.Payload()) > 0 {
		return e.synWithoutData(f, p, tx[Inside])
	}
	e.clamp(f, p)
	return ForwardInPlace
}

// synSentFromOutside handles a segment from R while the inside host's SYN,
// with our option, waits for R's answer.
func (e *Engine) synSentFromOutside(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	fl := p.Flags()
	if fl&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK {
		return e.farSYNACK(now, f, p, tx)
	}
	if fl&packet.FlagSYN != 0 {
		// Simultaneous open: not negotiated on the inside host's
		// behalf (its SYN-ACK would have to repeat our SYN option,
		// ENO-31, and both SYNs carry b = 0, a role clash, ENO-30).
		// The connection goes on in plain TCP: the host's SYN-ACK
		// leaves without ENO (ENO-33) and no ACK from it carries ENO,
		// so the far side falls back too (ENO-34).
		if f.policy == Require {
			// No plain TCP with this prefix: hold the far SYN back.
			// The connection can then only go on through the far
			// side's SYN-ACK to our SYN, where negotiation decides
			// (or the policy resets both hosts).
			return e.drop(DropPolicy)
		}
		return e.crossingSYN(f, p)
	}
	if f.sim&(simCrossed|simENO) == simCrossed && fl&(packet.FlagACK|packet.FlagRST) == packet.FlagACK &&
		p.Seq() == f.simISN+1 && p.Ack() == f.isnL+1 {
		// R took the host's SYN-ACK to its crossing SYN without ENO:
		// a simultaneous open whose SYN-ACK to ours was lost (or is
		// late). R is established and will not send it again, so this
		// settles it as farSYNACK would have.
		e.kill(f, FallbackSimultaneousOpen, "simultaneous open: the far SYN's TCP-ENO option disabled ENO")
		return Passthrough
	}
	if f.sim&(simENO|simAnswered) == simENO|simAnswered && fl&(packet.FlagACK|packet.FlagRST) == packet.FlagACK &&
		p.Seq() == f.simISN+1 && p.Ack() == f.isnL+1 {
		return e.simAcked(now, f, p, tx)
	}
	if f.prev == nil && fl&packet.FlagACK != 0 {
		return e.synSentReset(now, f, p, tx)
	}
	return e.stale(now, f, p, Outside, tx)
}

// refuse resets both hosts when policy requires encryption and the far
// side did not negotiate: the SYN-ACK is answered with RST, and the inside
// host gets an RST acknowledging its SYN.
func (e *Engine) refuse(f *flow, p *packet.Packet, tx [2]TxSink) {
	if !f.toL.set(p) {
		f.toL = mirror(&f.toR)
	}
	e.opts.reset()
	e.send(tx[Outside], &f.toR, &seg{seq: p.Ack(), flags: packet.FlagRST}, nil)
	e.send(tx[Inside], &f.toL, &seg{seq: 0, ack: f.isnL + 1, flags: packet.FlagRST | packet.FlagACK}, nil)
	e.c.Aborts.Add(1)
}

// capped handles a SYN that finds the flow table full: it goes on
// untracked, in plain TCP (the fast path may then take the connection),
// unless the policy requires encryption.
func (e *Engine) capped(pol Policy) Verdict {
	e.c.FlowsCapped.Add(1)
	if pol == Require {
		return e.drop(DropPolicy)
	}
	return Passthrough
}

// plain records a connection the engine leaves in plain TCP from its SYN on,
// so that its later segments are known (not reset as strays) and the admin
// API lists it.
func (e *Engine) plain(now int64, k flowKey, pol Policy, reason int, why string) Verdict {
	if pol == Require && reason != FallbackEndToEnd {
		return e.drop(DropPolicy) // this prefix gets no plain TCP
	}
	if reason >= 0 {
		e.c.Fallbacks[reason].Add(1)
	}
	if e.bareSYN {
		return Passthrough // no record (farSYN)
	}
	if len(e.flows) >= e.cfg.MaxFlows && !e.reclaim() {
		e.c.FlowsCapped.Add(1)
		return Passthrough
	}
	if !e.mem.take(recordCost, false) && (!e.reclaim() || !e.mem.take(recordCost, false)) {
		e.c.FlowsCapped.Add(1)
		return Passthrough
	}
	f := e.newFlow(now, k, pol)
	f.reason = why
	e.setState(f, stPlain)
	return Passthrough
}

// synWindow stores a SYN's window, which is never scaled (RFC 7323 §2.2),
// in the field every later window is kept in, shifted by ws: rounded down,
// so nothing goes past the edge the SYN offered, but never to 0 from an
// open window (until the host's next segment says more, that would leave
// nothing to send it and nothing to make it speak).
func synWindow(win uint16, ws uint8) uint16 {
	if w := win >> ws; w > 0 || win == 0 {
		return w
	}
	return 1
}
