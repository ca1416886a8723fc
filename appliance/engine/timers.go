package engine

import (
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
)

// sweepEvery is the granularity of the engine's timers.
const sweepEvery = int64(10 * time.Millisecond)

// tick is Tick (recover.go) without its recovery.
func (e *Engine) tick(now int64, tx [2]TxSink) {
	e.cur = nil
	e.publish()
	e.answerSqueeze()
	e.flushHeldAcks(tx)
	e.poll(now, tx, true)
	e.fragExpire(now)
	if len(e.loans) > 0 {
		e.forgetReadLoans() // an idle engine keeps no released buffer alive
	}
	// Timers are coarse (the shortest is the 200 ms Init RTO): sweep the
	// table at most every sweepEvery, however often the worker ticks.
	if now < e.nextSweep {
		return
	}
	e.nextSweep = now + sweepEvery
	if e.scan != nil {
		// A paged listing its caller gave up (FlowPageStep) stops
		// costing listAdd and detach a move after a second.
		if e.scanIdle++; e.scanIdle > scanAbandoned {
			e.scan.running, e.scan = false, nil
		}
	}
	// Visit a slice of the table per sweep so that one sweep costs little
	// however many flows there are: every flow comes round within
	// sweepRounds sweeps (200 ms), the coarseness of every timer here.
	// (Never more than the table: a small one is visited once, not round
	// and round again up to 256 times.)
	n := min(max(len(e.list)/sweepRounds+1, 256), len(e.list))
	for i := 0; i < n && len(e.list) > 0; i++ {
		if e.cursor >= len(e.list) {
			e.cursor = 0
		}
		if now < e.due[e.cursor] {
			e.cursor++
			continue
		}
		f := e.list[e.cursor]
		e.cur = f
		e.tickFlow(now, f, tx)
		e.cur = nil
		if f.state != stDead || e.cursor < len(e.list) && e.list[e.cursor] == f { // (dead and left in place: a record recovered too broken to remove)
			e.due[e.cursor] = e.sweepDue(now, f)
			e.cursor++
		} // else remove swapped another flow into this slot
	}
	e.forgetGone()
	e.neg.expire(roomBatch)
	if e.cache != nil && now >= e.nextExpire {
		e.nextExpire = now + cacheExpireEvery
		e.cache.Expire() // a quiet appliance's expired secrets are erased too
	}
}

// cacheExpireEvery is how often each engine has the resumption cache drop
// the secrets past their TTL.
const cacheExpireEvery = int64(time.Second)

// sweepDue is the earliest time at which tickFlow can have work on f, or 0
// if it may have work at any time; now is the time of the visit that
// just ran tickFlow on f. The sweep skips f until then without
// reading it. Reading every record every 200 ms cost a cache miss apiece:
// first the records only waiting to be removed (plain, closed: the largest
// cost per connection after the handshake at a high connection rate,
// bench/RESULTS.md, BenchmarkTickClosed), then every live encrypted
// connection (about 95 ns a flow: 5 ms of every 10 ms sweep at a million
// open flows a worker, BenchmarkSweepOpen). Each bound follows a test of
// tickFlow and of what it calls; each is the earliest time that test can
// hold given the record as it is now. What moves a bound earlier or makes
// work due at once comes with a segment of f (handlePacket wakes it), an
// ICMP error about it (pmtu.go wakes it) or the flow's own visit, which
// computes the bound again; f.last, hostSeen, refreshed and genStart only
// grow, which only makes a visit early. A late bound would stall or end a
// connection (a rekey answer or keep-alive not sent, an idle host not
// probed); an early one only costs a visit.
func (e *Engine) sweepDue(now int64, f *flow) int64 {
	switch {
	case f.state == stPlain:
		return f.last + int64(e.cfg.PlainRetention) + 1
	case f.state <= stKex || f.state == stDead:
		return 0
	}
	en := &f.enc
	if initOutstanding(en) || f.rcv.roomWait { // the Init's retransmission (RFC 8548 §3.3), drain
		return 0
	}
	seen := max(f.last, int64(f.hostSeen)<<30)
	due := seen + int64(e.cfg.IdleTimeout) + 1 // the idle timeout
	if f.closeAt != 0 {
		due = min(due, f.closeAt)
	} else if f.state == stOpen {
		// probeHost's next keep-alive probe (RFC 9293 §3.8.4), or the
		// end after the last one.
		every := min(max(int64(e.cfg.IdleTimeout)/hostProbes, hostProbeMin), hostProbeMax)
		due = min(due, int64(f.hostSeen)<<30+e.probeAfter()+int64(f.probes)*every)
	}
	if f.pmssL != 0 || f.pmssR != 0 {
		due = min(due, f.pmtuAt+pmtuExpiry) // pmtuExpire (RFC 1191 §6.3, RFC 8201 §4)
	}
	if rel := f.last + bufIdle; f.state == stOpen && rel > now && rel < due && f.bufBytes() != 0 {
		// releaseIdle. Once it has run (this visit, at now), what it
		// left is live (bufsLive: frames R has not acknowledged, bytes
		// L has not), and only a segment changes that.
		due = rel // (bufBytes reads much of the record: only when it counts)
	}
	if en.initDue > 0 && f.sess != nil && f.sess.Resumed {
		due = min(due, en.initDue) // firstFrameLate
	}
	if en.ownedDue != 0 {
		due = min(due, en.ownedDue) // resendOwned
	}
	if f.state == stOpen && f.keys != nil && en.finH < 0 { // keepFresh
		if f.keys.Owed() {
			return 0 // answers owed to R's rekeys (RFC 8548 §3.8) go at once
		}
		if e.cfg.RekeyAfter > 0 {
			due = min(due, en.genStart+int64(e.cfg.RekeyAfter)) // rekey by time
		}
		due = min(due, max(f.last, en.refreshed)+int64(e.cfg.IdleTimeout/2)) // idle refresh
	}
	return due
}

const sweepRounds = 20

// tickFlow runs one flow's timers.
func (e *Engine) tickFlow(now int64, f *flow, tx [2]TxSink) {
	switch {
	case f.state == stDead:
		return
	case f.state == stPlain:
		if now-f.last > int64(e.cfg.PlainRetention) {
			e.remove(f)
		}
		return
	case f.state < stKex:
		if now-f.last > int64(e.cfg.HandshakeTimeout) {
			e.remove(f) // no answer: nothing to report
		}
		return
	case f.closeAt != 0 && now >= f.closeAt:
		e.remove(f)
		return
	case now-max(f.last, int64(f.hostSeen)<<30) > int64(e.cfg.IdleTimeout):
		// (hostSeen, rounded up, may be ahead of last: a host answering
		// its probes keeps the record, whatever idle_timeout: probeHost.)
		f.idled = true // the hosts may still hold the connection
		e.remove(f)
		return
	}
	if f.state == stOpen && f.closeAt == 0 && e.probeHost(now, f, tx[Inside]) {
		return // L answered none of the probes
	}
	e.pmtuExpire(now, f)
	e.releaseIdle(now, f)
	if f.rcv.roomWait {
		// The memory budget may have room now, with no ACK from L.
		f.rcv.roomWait = false
		if e.drain(now, f, tx); f.state == stDead {
			return
		}
	}
	en := &f.enc
	if initOutstanding(en) && now >= en.initDue {
		if en.initTries >= e.cfg.InitTries || f.synAckAgain && en.initTries >= pathLostTries {
			e.c.HandshakeFailures.Add(1)
			e.initUnanswered(now, f, tx)
			return
		}
		en.initTries++
		en.initRTO = min(2*en.initRTO, int64(maxDuration))
		e.c.InitRetransmits.Add(1)
		e.sendInit(now, f, tx[Outside])
	}
	if e.firstFrameLate(now, f, tx) {
		return
	}
	if en.ownedDue != 0 && now >= en.ownedDue {
		e.resendOwned(now, f, tx[Outside])
	}
	if f.state == stOpen && f.keys != nil && en.finH < 0 {
		e.keepFresh(now, f, tx[Outside])
	}
	if idle := now - f.last; f.state == stKex && idle > int64(e.cfg.HandshakeTimeout) && (!initOutstanding(en) || idle > kexSilenceMax) {
		e.c.HandshakeFailures.Add(1)
		if f.role == eno.RoleA && en.ackW >= en.initLen && f.rcv.rcvW == 0 && f.rcv.held.n == 0 {
			// R took our Init1 and never answered: it took it for data (enopath.go).
			e.pathLost(now, f, "Init1 acknowledged, no answer")
		}
		e.abort(f, tx, "key exchange timeout")
	}
}

// initOutstanding reports whether our Init is out and not all acknowledged:
// its retransmissions, not the key exchange's idle limit, decide when the
// far side is given up (InitTries). Our own Init copies do not refresh the
// flow, and a far side that took none of them may only be stalled (a paused
// appliance holding every copy in its ring), as a host's TCP would wait out.
func initOutstanding(en *encDir) bool { return en.initSent && en.ackW < en.initLen }

// kexSilenceMax bounds a key exchange whose Init is out, whatever
// InitTries and InitRTO: past the 102 s of the default retransmissions
// (RFC 1122 §4.2.3.5's R2, 100 s), a far side silent this long after the
// flow's last segment is given up.
const kexSilenceMax = int64(2 * time.Minute)

// pathLostTries is how many Init retransmissions suffice when the far side
// repeated its SYN-ACK meanwhile: none of our segments after the SYNs
// reached it (enopath.go), and connections to it should not wait out the
// whole InitTries before later ones go plain.
const pathLostTries = 6

// keepFresh sends an empty frame on an open encrypted flow that is due a
// rekey by time (the frame carries it) or that has seen nothing either way
// for half of IdleTimeout. The far side acknowledges it, and that traffic
// keeps both appliances' records of a connection whose hosts stay silent
// for hours, as plain TCP, which has no idle limit, would carry it; without
// it, with rekeying by time off, the records expired and the connection's
// next segment was reset. Whether the hosts are still there is probeHost's
// question (hostprobe.go).
//
// Answers owed to R's rekeys go first, through sendOwed, and nothing is sent
// past R's window (it would drop the frame, and every segment after it).
func (e *Engine) keepFresh(now int64, f *flow, to TxSink) {
	en := &f.enc
	if !f.emptyFrameFits() {
		return
	}
	if f.keys.Owed() {
		e.sendOwed(now, f, to)
		return
	}
	if e.cfg.RekeyAfter > 0 && now-en.genStart >= int64(e.cfg.RekeyAfter) {
		e.maybeRekey(now, f, true)
		if f.keys.RekeyPending() {
			en.refreshed = now
			e.sealNew(now, f, nil, 0, false, true, to)
			return
		}
	}
	if refresh := int64(e.cfg.IdleTimeout / 2); now-f.last >= refresh && now-en.refreshed >= refresh {
		en.refreshed = now
		if e.sealNew(now, f, nil, 0, false, true, to) {
			e.c.IdleRefreshes.Add(1)
		}
	}
}
