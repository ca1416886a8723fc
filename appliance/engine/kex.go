package engine

import (
	"slices"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// keyPair takes a ready ephemeral pair from the stock, or makes one.
func (e *Engine) keyPair(tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	if kp, ok := e.stockPair(tep); ok {
		return kp, nil
	}
	e.c.KeyGenInline.Add(1)
	return newPair(tep)
}

// stockPair takes a ready ephemeral pair from the stock, if it has one.
func (e *Engine) stockPair(tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, bool) {
	if st := e.deps.Keys[tep]; st != nil {
		return st.Take()
	}
	return nil, false
}

func newPair(tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	ka, err := tcpcrypt.KeyAgreementFor(tep)
	if err != nil {
		return nil, err
	}
	return ka.GenerateKey(nil)
}

// startKex sets up the key exchange once TCP-ENO negotiated tcpcrypt: host A
// prepares Init1 (sent after the inside host's third segment), host B a
// responder waiting for Init1. It reports false if the flow was aborted.
//
// B gets its pair only when Init1 is in (initDone): from the stock, else
// made with the session on the pool (computeSession), never on the worker.
// Taken at the third segment, a peer that completes TCP handshakes with
// TCP-ENO and never sends Init1 (two segments, no cryptography on its side)
// emptied the stock, and then had the worker make a pair per connection
// (175 µs for X448, which a SYN may ask for alone): a few thousand such
// connections a second stalled every flow of the worker (flood review).
func (e *Engine) startKex(now int64, f *flow) bool {
	tep := tcpcrypt.TEP(f.outcome.TEP())
	f.role = f.outcome.Role
	var kp *tcpcrypt.KeyPair
	if f.role == eno.RoleA {
		var err error
		if kp, err = e.keyPair(tep); err != nil {
			e.kill(f, FallbackNegotiate, err.Error()) // a fallback, counted once
			return false
		}
	}
	f.kp = kp
	var err error
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
		e.kill(f, FallbackNegotiate, err.Error()) // a fallback, counted once
		return false
	}
	e.setState(f, stKex)
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

// initDone runs when the peer's Init message is complete.
func (e *Engine) initDone(now int64, f *flow, tx [2]TxSink) {
	d := &f.rcv
	d.initDone = true
	d.initLen = d.rcvW
	d.ackW = d.rcvW // the appliance consumed it: the appliance acknowledges it
	switch {
	case f.role == eno.RoleB:
		if kp, ok := e.stockPair(f.rsp.TEP()); ok {
			f.kp = kp
			if err := f.rsp.SetKey(kp); err != nil {
				e.c.HandshakeFailures.Add(1)
				e.abort(f, tx, err.Error())
				return
			}
			e.setInit(f, f.rsp.Init2())
			e.sendInit(now, f, tx[Outside]) // carries the ACK of Init1
		} // else the pool makes the pair with the session; Init2 then (sessionDone)
	case e.client != nil && (f.enc.preEnd > f.enc.nextH || f.enc.preFIN):
		// Host data waits for the keys, which the pool is about to
		// compute: its first frame acknowledges Init2, one segment
		// instead of a pure ACK and then the data, as a TCP receiver
		// delays an ACK for data it is about to send. If no frame can
		// go, sessionDone's drain sends the ACK (ackCustody: R has not
		// had it).
	default:
		e.ackR(f, tx[Outside], nil)
	}
	e.startSession(now, f, tx)
}

func (f *flow) computeSession() (*tcpcrypt.Session, error) {
	if f.ini != nil {
		return f.ini.Session()
	}
	if f.rsp.NeedsKey() {
		kp, err := newPair(f.rsp.TEP())
		if err != nil {
			return nil, err
		}
		f.kp = kp
		if err := f.rsp.SetKey(kp); err != nil {
			return nil, err
		}
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
	// In turn: behind the flows the pool refused before, oldest first.
	f.kexWant = true
	if len(e.retry) == cap(e.retry) {
		// Before the array grows, let go of flows that ended waiting.
		e.retry = slices.DeleteFunc(e.retry, func(g *flow) bool { return !g.waitsForPool() })
	}
	e.retry = append(e.retry, f)
	e.retryKex()
}

// waitsForPool reports whether f's key exchange still waits for the pool.
func (f *flow) waitsForPool() bool { return f.state == stKex && f.kexWant }

// retryKex submits the waiting key exchanges in order and stops at the
// first the pool refuses (Counters.PoolRetries): its queue is full, and the
// flows behind would be refused too, each after taking the pool's lock.
// The refused flow stays first; the handshake timeout still applies.
func (e *Engine) retryKex() {
	i := 0
	for ; i < len(e.retry); i++ {
		f := e.retry[i]
		if !f.waitsForPool() {
			continue // ended while waiting
		}
		if !e.client.Submit(cryptopool.Job{Run: runSession, Token: f.id, Arg: f}) {
			e.c.PoolRetries.Add(1)
			break
		}
		f.kexBusy, f.kexWant = true, false
	}
	clear(e.retry[:i])
	if i == len(e.retry) {
		e.retry = e.retry[:0] // keep the array: no allocation per key exchange
	} else {
		e.retry = e.retry[i:]
	}
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

// sessionDone installs the keys, sends the queued host data and decodes
// whatever of the peer's frames arrived meanwhile.
func (e *Engine) sessionDone(now int64, f *flow, s *tcpcrypt.Session, err error, tx [2]TxSink) {
	if f.state != stKex {
		s.Wipe()
		return
	}
	if err == nil && f.rsp != nil && f.enc.initLen == 0 {
		// B's pair came with the session (initDone): Init2 goes now,
		// carrying the ACK of Init1.
		e.setInit(f, f.rsp.Init2())
		e.sendInit(now, f, tx[Outside])
	}
	if err == nil {
		f.keys, err = tcpcrypt.NewSessionKeyRing(s)
	}
	f.kp.Wipe() // its shared secret is computed (TC-9, TC-79)
	if err != nil {
		s.Wipe()
		e.c.HandshakeFailures.Add(1)
		e.abort(f, tx, err.Error())
		return
	}
	f.sess = s
	f.kp, f.ini, f.rsp = nil, nil, nil
	f.dec = tcpcrypt.NewFrameDecoder(f.keys, s.RecvOffset)
	e.setState(f, stOpen) // and f.sess: counted encrypted
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
	// The KeyRing and the cache have their copies. Kept in the session,
	// mk[0] and ss[1] would outlive every rekey and resumption (RFC 8548
	// §3.8, TC-30); the key log takes its keys from the KeyRing.
	s.Wipe()
	e.flushPreKey(now, f, tx)
	if !f.consuming {
		// Called from poll: frames may be waiting in the reassembly buffer.
		// (From inside consume, the caller goes on feeding them itself.)
		e.drain(now, f, tx)
	}
}

// resume derives the session from the cached secret: no Init messages, both
// streams start with frames at offset 0 (RFC 8548 §3.5).
func (e *Engine) resume(now int64, f *flow, tx [2]TxSink) {
	s, err := f.res.Session(tcpcrypt.Role(f.role))
	f.res = nil
	e.setState(f, stKex)
	f.rcv.initDone = true
	f.enc.initSent = true
	e.sessionDone(now, f, s, err, tx)
}
