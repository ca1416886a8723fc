package engine

import (
	"errors"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// keyPair takes a ready ephemeral pair from the stock, or makes one.
func (e *Engine) keyPair(tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	if st := e.deps.Keys[tep]; st != nil {
		if kp, ok := st.Take(); ok {
			return kp, nil
		}
	}
	e.c.KeyGenInline.Add(1)
	ka, err := tcpcrypt.KeyAgreementFor(tep)
	if err != nil {
		return nil, err
	}
	return ka.GenerateKey(nil)
}

// startKex sets up the key exchange once TCP-ENO negotiated tcpcrypt: host A
// prepares Init1 (sent after the inside host's third segment), host B a
// responder waiting for Init1. It reports false if the flow was aborted.
func (e *Engine) startKex(now int64, f *flow) bool {
	tep := tcpcrypt.TEP(f.outcome.TEP())
	kp, err := e.keyPair(tep)
	if err != nil {
		e.c.HandshakeFailures.Add(1)
		e.kill(f, FallbackNegotiate, err.Error())
		return false
	}
	f.kp = kp
	f.role = f.outcome.Role
	if f.role == eno.RoleA {
		f.ini, err = tcpcrypt.NewInitiator(tcpcrypt.InitiatorConfig{
			TEP: tep, TEPByte: f.outcome.TEPByte, Ciphers: e.cfg.AEADs, Key: kp,
			Transcript: f.outcome.Transcript(),
		})
		if err == nil {
			e.setInit(f, f.ini.Init1())
		}
	} else {
		f.rsp, err = tcpcrypt.NewResponder(tcpcrypt.ResponderConfig{
			TEP: tep, TEPByte: f.outcome.TEPByte, Prefs: e.cfg.AEADs, Key: kp,
			Transcript: f.outcome.Transcript(),
		})
	}
	if err != nil {
		e.c.HandshakeFailures.Add(1)
		e.kill(f, FallbackNegotiate, err.Error())
		return false
	}
	f.state = stKex
	f.enc.initRTO = int64(e.cfg.InitRTO)
	return true
}

// setInit puts our Init message at the start of our wire stream.
func (e *Engine) setInit(f *flow, m []byte) {
	n := int64(len(m))
	f.enc.store.reserveFirst(n)
	f.enc.store.write(0, m)
	f.enc.initLen, f.enc.nextW = n, n
}

// sendInit sends (or resends) our Init message, PSH on its last segment.
func (e *Engine) sendInit(now int64, f *flow, to TxSink) {
	en := &f.enc
	if en.ackW < en.initLen {
		e.sendWire(f, to, en.ackW, int(en.initLen-en.ackW), packet.FlagACK|packet.FlagPSH, false)
	}
	en.initSent = true
	en.initDue = now + en.initRTO
}

// sendStored sends wire bytes [w, w+n) of our stream from the store toward R.
// hostEcho: the segment carries the host's data, so TSecr is the host's own
// latest echo; else the appliance speaks for it and echoes R's latest TSval.
func (e *Engine) sendStored(f *flow, to TxSink, w int64, n int, flags uint8, hostEcho bool) {
	e.opts.reset()
	f.tsToR(&e.opts, hostEcho)
	if f.enoOut {
		e.opts.eno()
	}
	f.enc.sentW = max(f.enc.sentW, w+int64(n)) // sent even if the TX ring drops it, as TCP counts
	ack := f.ackToR()
	s := seg{seq: wrap(f.isnL, w), ack: wrap(f.isnR, ack), flags: flags, win: f.winToR(), opts: e.opts.bytes()}
	buf := to.Buffer()
	if buf == nil {
		e.c.Drops[DropTxFull].Add(1)
		return
	}
	hl, pl := f.toR.build(buf, &s, n)
	if pl == nil {
		e.c.Drops[DropTxFull].Add(1)
		return
	}
	f.enc.store.read(pl, w)
	f.toR.finish(buf, hl+n)
	to.Commit(hl + n)
	f.rcv.lastAckW = ack
	f.rcv.lastWin = s.win
	f.pktsOut++
}

// initDone runs when the peer's Init message is complete.
func (e *Engine) initDone(now int64, f *flow, tx [2]TxSink) {
	d := &f.rcv
	d.initDone = true
	d.initLen = d.rcvW
	d.ackW = d.rcvW // the appliance consumed it: the appliance acknowledges it
	if f.role == eno.RoleB {
		e.setInit(f, f.rsp.Init2())
		e.sendInit(now, f, tx[Outside]) // carries the ACK of Init1
	} else {
		e.ackR(f, tx[Outside], nil)
	}
	e.startSession(now, f, tx)
}

func (f *flow) computeSession() (*tcpcrypt.Session, error) {
	if f.ini != nil {
		return f.ini.Session()
	}
	return f.rsp.Session()
}

func runSession(j *cryptopool.Job) {
	f := j.Arg.(*flow)
	f.sessOut, f.sessErr = f.computeSession()
}

// startSession runs the Diffie-Hellman and key schedule: on the pool when
// there is one (the result comes back through poll), else inline.
func (e *Engine) startSession(now int64, f *flow, tx [2]TxSink) {
	if e.client == nil {
		s, err := f.computeSession()
		e.sessionDone(now, f, s, err, tx)
		return
	}
	if e.client.Submit(cryptopool.Job{Run: runSession, Token: f.id, Arg: f}) {
		f.kexBusy, f.kexWant = true, false
		return
	}
	e.c.PoolRetries.Add(1)
	f.kexWant = true
	e.retry = append(e.retry, f)
}

// SetWake makes the engine call fn (on a pool goroutine) whenever
// public-key work it submitted has finished, so that a worker sleeping
// between batches can wake and run Tick at once: the finished key exchange
// otherwise waits for the worker's next timeout. Call it before the first
// frame; without a pool it does nothing (the work runs inline).
func (e *Engine) SetWake(fn func()) {
	if e.client != nil {
		e.client.SetNotify(fn)
	}
}

// poll collects finished public-key work and retries refused submissions.
func (e *Engine) poll(now int64, tx [2]TxSink) {
	if e.client == nil {
		return
	}
	for {
		n := e.client.Poll(e.jobs[:])
		for i := 0; i < n; i++ {
			j := &e.jobs[i]
			f := j.Arg.(*flow)
			j.Arg = nil
			f.kexBusy = false
			if f.state != stKex || f.id != j.Token {
				continue
			}
			if j.Err != nil {
				f.sessErr = j.Err
			}
			e.sessionDone(now, f, f.sessOut, f.sessErr, tx)
			f.sessOut, f.sessErr = nil, nil
		}
		if n < len(e.jobs) {
			break
		}
	}
	if len(e.retry) > 0 {
		rs := e.retry
		e.retry = nil // startSession may append: do not share rs's array
		for _, f := range rs {
			if f.state == stKex && f.kexWant {
				e.startSession(now, f, tx)
			}
		}
	}
}

// sessionDone installs the keys, sends the queued host data and decodes
// whatever of the peer's frames arrived meanwhile.
func (e *Engine) sessionDone(now int64, f *flow, s *tcpcrypt.Session, err error, tx [2]TxSink) {
	if f.state != stKex {
		return
	}
	if err == nil {
		f.keys, err = tcpcrypt.NewSessionKeyRing(s)
	}
	if err != nil {
		e.c.HandshakeFailures.Add(1)
		e.abort(f, tx, err.Error())
		return
	}
	f.sess = s
	f.kp, f.ini, f.rsp = nil, nil, nil
	f.dec = tcpcrypt.NewFrameDecoder(f.keys, s.RecvOffset)
	f.state = stOpen
	e.embLeave(f)
	e.trust(now, f.key.out.Addr())
	f.enc.genStart = now
	if e.deps.KeyLog != nil {
		e.logKeys(f)
	}
	e.c.Handshakes.Add(1)
	e.c.Encrypted.Add(1)
	if s.Resumed {
		e.c.Resumed.Add(1)
	} else if e.deps.Cache != nil {
		e.deps.Cache.Store(f.key.out.Addr(), s)
	}
	e.flushPreKey(now, f, tx)
	if !f.consuming {
		// Called from poll: frames may be waiting in the reassembly buffer.
		// (From inside consume, the caller goes on feeding them itself.)
		e.drain(now, f, tx)
	}
}

// abort resets both hosts (the connection cannot continue safely: a frame
// failed authentication, a FIN came without FINp, the Init exchange failed)
// and forgets the flow.
func (e *Engine) abort(f *flow, tx [2]TxSink, why string) {
	e.c.Aborts.Add(1)
	f.reason = why
	e.deps.Log.Debug("flow aborted", "id", f.id, "reason", why)
	if f.toR.ok {
		e.opts.reset()
		e.send(tx[Outside], &f.toR, &seg{seq: f.wireSeqOut(), ack: wrap(f.isnR, f.rcv.rcvW),
			flags: packet.FlagRST | packet.FlagACK}, nil)
	}
	if f.toL.ok {
		e.send(tx[Inside], &f.toL, &seg{seq: f.hostSeqOut(), ack: wrap(f.isnL, f.enc.ackH),
			flags: packet.FlagRST | packet.FlagACK}, nil)
	}
	e.remove(f)
}

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
	case now-f.last > int64(e.cfg.IdleTimeout):
		f.idled = true // the hosts may still hold the connection
		e.remove(f)
		return
	}
	en := &f.enc
	if en.initSent && en.ackW < en.initLen && now >= en.initDue {
		if en.initTries >= e.cfg.InitTries {
			e.c.HandshakeFailures.Add(1)
			e.abort(f, tx, "Init not acknowledged")
			return
		}
		en.initTries++
		en.initRTO *= 2
		e.c.InitRetransmits.Add(1)
		e.sendInit(now, f, tx[Outside])
	}
	if en.ownedDue != 0 && now >= en.ownedDue {
		e.resendOwned(now, f, tx[Outside])
	}
	if f.state == stOpen && f.keys != nil && en.finH < 0 && e.cfg.RekeyAfter > 0 && now-en.genStart >= int64(e.cfg.RekeyAfter) {
		// Periodic rekey by time on an idle flow: an empty frame carries it.
		e.maybeRekey(now, f)
		if f.keys.RekeyPending() {
			e.sealNew(now, f, nil, false, true, tx[Outside])
		}
	}
	if f.state == stKex && now-f.last > int64(e.cfg.HandshakeTimeout) {
		e.abort(f, tx, "key exchange timeout")
	}
}

var errFINWithoutFINp = errors.New("engine: TCP FIN without FINp frame")

// resume derives the session from the cached secret: no Init messages, both
// streams start with frames at offset 0 (RFC 8548 §3.5).
func (e *Engine) resume(now int64, f *flow, tx [2]TxSink) {
	s, err := f.res.Session(tcpcrypt.Role(f.role))
	f.res = nil
	f.state = stKex
	f.rcv.initDone = true
	f.enc.initSent = true
	e.sessionDone(now, f, s, err, tx)
}
