package engine

import (
	"bytes"
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Paths that lose TCP-ENO after the SYNs.
//
// A middlebox may pass the SYNs' options and strip or drop them on later
// segments (one that rewrites unknown options on data segments, a
// transparent proxy that copies the SYN's options only). A's third segment
// and Init1 then reach B without `45 02`: B falls back to plain TCP (ENO-28)
// while A, which sent and received an ACK segment with ENO, has encryption
// on (ENO-34), and the connection fails. RFC 8547 §9 names this a type-2
// failure and leaves it there. The engine keeps the RFC's rules, and makes
// the failure clean and the next connection work:
//
//   - as host B, after falling back at a third segment without ENO that
//     followed its own SYN-ACK with it, the flow stays off the fast path
//     until A's first bytes arrive (watchInit1). If they are an Init1, or
//     in a session B agreed to resume a frame that opens under its keys,
//     A encrypts: they never reach the inside host, both hosts are reset.
//     Any other bytes are plain data, and the connection goes on plain.
//   - as host A, R's first bytes that are not an Init2 (bad magic: a far
//     side that fell back, its host's data), an Init1 that R acknowledged
//     without a byte of answer until the handshake timeout (a far side
//     that took it for data), or an Init that R never acknowledged while it
//     kept repeating its SYN-ACK (a path that drops our segments with ENO:
//     R never got the third one) end the key exchange as before. In a
//     resumed session (no Init2 to check), R's first bytes that are no
//     frame of it, or that make no whole frame within the handshake
//     timeout (text such as "220 " reads as the header of a long frame, and
//     a far server that fell back then waits for its client), end the
//     connection the same way (firstFrameWatch).
//
// Each such failure is counted (Counters.ENOPathFailures) and the far
// address remembered for enoPathFor. While it is, a SYN from an inside host
// to it leaves without ENO and one from it gets no ENO in the inside host's
// SYN-ACK (fallback eno_path_stripped): the connection is plain from its
// SYN on, as over a path that strips the SYN's option, and works. Under
// the require policy nothing changes: those prefixes get no plain TCP.
//
// A party on the path can cause any of these (each takes a segment the
// connection accepts, or the loss of ours), and gains what stripping the
// SYN's option gives it anyway: a plain connection. So can a far host, with
// its own connection: the memory is by address, so it makes the
// connections of other hosts behind the same NAT address plain too (docs:
// protocol.md §7). Each engine learns on its own, as for plainPeers.

const (
	enoPathFor = 5 * 60 * 1e9 // ns: how long a far address whose path lost ENO is remembered
	enoPathMax = 1 << 14      // remembered addresses (per engine)
)

// pathLost counts f's failure (see above) and remembers its far address.
func (e *Engine) pathLost(now int64, f *flow, why string) {
	e.c.ENOPathFailures.Add(1)
	noteAddr(e.enoPaths, now, f.key.out.Addr(), enoPathFor, enoPathMax)
	if held, ok := e.flowLog(); ok {
		e.deps.Log.Debug("path lost TCP-ENO after the SYNs", "id", f.id, "inside", f.key.in, "outside", f.key.out, "why", why, "lines_suppressed", held)
	}
}

// enoPathLost reports whether far's path lost ENO within enoPathFor.
func (e *Engine) enoPathLost(now int64, far netip.Addr) bool {
	return len(e.enoPaths) > 0 && recentAddr(e.enoPaths, now, far, enoPathFor)
}

// thirdWithoutENO ends host B's negotiation at the far side's first non-SYN
// segment p, which came without ENO (ENO-28): plain TCP, watching for A's
// Init1 (firstBytes) in p and after it.
func (e *Engine) thirdWithoutENO(now int64, f *flow, p *packet.Packet, tx [2]TxSink) Verdict {
	// A resumed session has no Init1: A's first bytes are a frame under
	// the resumed keys (RFC 8548 §3.5). An opener for it is kept for the
	// watch; the secret itself goes with the fallback.
	var op *tcpcrypt.Opener
	if f.res != nil && f.policy != Require {
		if s, err := f.res.Session(tcpcrypt.Role(eno.RoleB)); err == nil {
			op, _ = tcpcrypt.NewOpener(s.Recv)
			s.Wipe()
		}
	}
	v := e.fallbackThird(f, p, tx, FallbackNoENOInACK, "third segment without TCP-ENO")
	if f.state != stPlain {
		return v // require: both hosts reset
	}
	f.watchInit1, f.resOpener = true, op
	if v, ok := e.firstBytes(now, f, p, tx); !ok {
		return v
	}
	return f.plainVerdict()
}

// firstBytes looks at R's segment p of f, which fell back at a third
// segment without ENO, for A's first bytes. Until they come the flow stays
// off the fast path (plainVerdict). An Init1 there shows that A encrypts
// and its ENO was lost on the way: it is dropped and both hosts are reset
// (it reports false with the verdict); any other first bytes end the watch.
func (e *Engine) firstBytes(now int64, f *flow, p *packet.Packet, tx [2]TxSink) (Verdict, bool) {
	fl := p.Flags()
	data := p.Payload()
	if fl&(packet.FlagSYN|packet.FlagRST) != 0 || p.Seq() != f.isnR+1 {
		return 0, true // not at A's first byte (a later one waits in L's TCP)
	}
	if len(data) == 0 {
		if fl&packet.FlagFIN != 0 {
			f.watchInit1, f.resOpener = false, nil // A closes without a byte
		}
		return 0, true
	}
	op := f.resOpener
	f.watchInit1, f.resOpener = false, nil
	if !tcpcrypt.LooksLikeInit1(data) && !resumedFrame(op, data) {
		return 0, true
	}
	// L is in SYN-RECEIVED or established with nothing received: RST at
	// its RCV.NXT; R gets one at the ACK it sent and acknowledging p.
	var t tmpl
	if t.set(p) {
		r := mirror(&t)
		e.opts.reset()
		e.send(tx[Inside], &t, &seg{seq: p.Seq(), flags: packet.FlagRST}, nil)
		e.send(tx[Outside], &r, &seg{seq: p.Ack(), ack: p.Seq() + uint32(len(data)), flags: packet.FlagRST | packet.FlagACK}, nil)
	}
	e.c.Aborts.Add(1)
	f.reason = "Init1 or a resumed session's frame without TCP-ENO: the path strips it after the SYNs"
	e.pathLost(now, f, f.reason)
	e.remove(f)
	return Dropped, false
}

// resumedFrame reports whether data, A's first bytes, start with a whole
// frame that opens under the resumed session's keys (op, nil if B did not
// resume): A encrypts. A frame longer than data cannot be checked, and
// passes as plain data.
func resumedFrame(op *tcpcrypt.Opener, data []byte) bool {
	n, ok := tcpcrypt.FrameLen(data)
	if op == nil || !ok || n > len(data) {
		return false
	}
	_, _, err := op.Open(bytes.Clone(data[:n]), 0) // Open decrypts in place: the segment may go on
	return err == nil
}

// initUnanswered aborts host A's flow f whose Init R has not acknowledged
// after InitTries tries. If nothing but its SYN-ACK came again from R, none
// of our segments after the SYNs reached it, and each carried `45 02`: the
// path drops them (see above). The RST that abort sends R carries `45 02`
// too, as every segment before a non-SYN one from R (RFC 8547 §4.6), and
// would be dropped as well, leaving R in SYN-RECEIVED until its next
// SYN-ACK draws an RST from L (or its own timeout): R gets one without it
// first, at its RCV.NXT (our ISN+1, the only number R and a far appliance
// take in that state).
func (e *Engine) initUnanswered(now int64, f *flow, tx [2]TxSink) {
	if f.enoOut && f.synAckAgain && f.toR.ok {
		e.pathLost(now, f, "Init not acknowledged, only the SYN-ACK again from the far side")
		e.send(tx[Outside], &f.toR, &seg{seq: wrap(f.isnL, 0), ack: wrap(f.isnR, 0),
			flags: packet.FlagRST | packet.FlagACK}, nil)
	}
	e.abort(f, tx, "Init not acknowledged")
}

// firstFrameWatch, for host A in a resumed session, times R's first frame:
// from R's first byte, a frame must open within the handshake timeout.
// enc.initDue, unused without an Init, holds the deadline (0: no byte of
// R's yet, -1: a frame opened).
func (e *Engine) firstFrameWatch(now int64, f *flow) {
	en, d := &f.enc, &f.rcv
	if f.role != eno.RoleA || f.sess == nil || !f.sess.Resumed || en.initDue < 0 {
		return
	}
	switch {
	case d.frames.n > 0 || d.ackW > 0:
		en.initDue = -1
	case en.initDue == 0 && d.rcvW > 0:
		en.initDue = now + int64(e.cfg.HandshakeTimeout)
	}
}

// firstFrameLate ends f, host A's resumed session, if R's first bytes made
// no frame by their deadline (firstFrameWatch), and reports whether it did.
func (e *Engine) firstFrameLate(now int64, f *flow, tx [2]TxSink) bool {
	en := &f.enc
	if en.initDue <= 0 || now < en.initDue || f.sess == nil || !f.sess.Resumed {
		return false
	}
	if e.firstFrameWatch(now, f); en.initDue < 0 {
		return false // opened since, out of wireInOrder (a drain when L made room)
	}
	e.c.HandshakeFailures.Add(1)
	e.pathLost(now, f, "far side's first bytes in a resumed session make no frame")
	e.abort(f, tx, "no frame from the far side in a resumed session")
	return true
}
