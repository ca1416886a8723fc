package hostmode

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// HandshakeTimeout bounds the Init1/Init2 exchange.
const HandshakeTimeout = 10 * time.Second

// ErrHandshake wraps every failure of the key exchange; the connection has
// been reset (RFC 8548 §3.3: abort, with an error that is not end of file).
var ErrHandshake = errors.New("hostmode: tcpcrypt key exchange failed")

// writeInit sends an Init message, in two segments when split is set. The
// last segment carries PSH, as every write does (RFC 8548 §3.3).
func writeInit(tcp *net.TCPConn, msg []byte, split bool) error {
	if split && len(msg) > 1 {
		if _, err := tcp.Write(msg[:len(msg)/2]); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond) // TCP_NODELAY: the first half leaves alone
		msg = msg[len(msg)/2:]
	}
	_, err := tcp.Write(msg)
	return err
}

// maxInitTail caps Knobs.InitTail, far below what a receiver may refuse
// (tcpcrypt.DefaultMaxInitLen).
const maxInitTail = 1024

// withTail appends n bytes to the Init message msg as its "ignored" field
// and makes message_len (bytes 4..7, RFC 8548 §4.1) count them
// (Knobs.InitTail, at most maxInitTail).
func withTail(msg []byte, n int) []byte {
	if n <= 0 {
		return msg
	}
	for i := range min(n, maxInitTail) {
		msg = append(msg, byte(0xe0+i))
	}
	binary.BigEndian.PutUint32(msg[4:8], uint32(len(msg)))
	return msg
}

// readInit feeds the stream to r until the Init message is complete and
// returns the bytes read past it (the peer's first frames).
func readInit(tcp *net.TCPConn, r *tcpcrypt.InitReader) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		n, err := tcp.Read(buf)
		if n > 0 {
			used, done, ferr := r.Feed(buf[:n])
			if ferr != nil {
				return nil, ferr
			}
			if done {
				return append([]byte(nil), buf[used:n]...), nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, tcpcrypt.ErrTruncated
			}
			return nil, err
		}
	}
}

// session is what a handshake or a resumption yields.
type session struct {
	info             Info
	mk0, ss          []byte // ss is ss[i] of this connection, for the cache
	sendOff, recvOff uint64
	pending          []byte
}

// freshA runs host A's side of a fresh key exchange (RFC 8548 §3.3).
func freshA(tcp *net.TCPConn, out *eno.Outcome, aeads []cryptopool.Suite, knobs Knobs) (*session, error) {
	tep := tcpcrypt.TEP(out.TEP())
	ka, err := tcpcrypt.KeyAgreementFor(tep)
	if err != nil {
		return nil, err
	}
	kp, err := ka.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	nA := make([]byte, tcpcrypt.NonceLen)
	if _, err := rand.Read(nA); err != nil {
		return nil, err
	}
	init1, err := tcpcrypt.AppendInit1(nil, aeads, nA, kp.Public)
	if err != nil {
		return nil, err
	}
	init1 = withTail(init1, knobs.InitTail)
	if err := writeInit(tcp, init1, knobs.SplitInit); err != nil {
		return nil, err
	}
	r, err := tcpcrypt.NewInit2Reader(tep, 0)
	if err != nil {
		return nil, err
	}
	pending, err := readInit(tcp, r)
	if err != nil {
		return nil, err
	}
	m, err := r.Init2()
	if err != nil {
		return nil, err
	}
	offered := false
	for _, s := range aeads {
		offered = offered || s == m.Cipher
	}
	if !offered { // RFC 8548 §3.3: MUST abort
		return nil, tcpcrypt.ErrCipherNotOffered
	}
	es, err := ka.SharedSecret(kp, m.Pub)
	if err != nil {
		return nil, err
	}
	ss0 := tcpcrypt.PRK(nA, out.Transcript(), init1, m.Raw, es)
	return freshSession(out, m.Cipher, true, ss0, uint64(len(init1)), uint64(len(m.Raw)), pending), nil
}

// freshB runs host B's side: read Init1, choose the AEAD by our preference
// among those A offered, answer with Init2 (RFC 8548 §3.3, §4.1).
func freshB(tcp *net.TCPConn, out *eno.Outcome, prefs []cryptopool.Suite, knobs Knobs) (*session, error) {
	tep := tcpcrypt.TEP(out.TEP())
	ka, err := tcpcrypt.KeyAgreementFor(tep)
	if err != nil {
		return nil, err
	}
	r, err := tcpcrypt.NewInit1Reader(tep, 0)
	if err != nil {
		return nil, err
	}
	pending, err := readInit(tcp, r)
	if err != nil {
		return nil, err
	}
	m, err := r.Init1()
	if err != nil {
		return nil, err
	}
	var suite cryptopool.Suite
	for _, s := range prefs {
		if m.Offers(s) {
			suite = s
			break
		}
	}
	if suite == 0 {
		return nil, tcpcrypt.ErrNoCommonCipher
	}
	kp, err := ka.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	nB := make([]byte, tcpcrypt.NonceLen)
	if _, err := rand.Read(nB); err != nil {
		return nil, err
	}
	init2, err := tcpcrypt.AppendInit2(nil, suite, nB, kp.Public)
	if err != nil {
		return nil, err
	}
	init2 = withTail(init2, knobs.InitTail)
	es, err := ka.SharedSecret(kp, m.Pub)
	if err != nil {
		return nil, err
	}
	ss0 := tcpcrypt.PRK(m.NA, out.Transcript(), m.Raw, init2, es)
	if err := writeInit(tcp, init2, knobs.SplitInit); err != nil {
		return nil, err
	}
	return freshSession(out, suite, false, ss0, uint64(len(init2)), uint64(len(m.Raw)), pending), nil
}

func freshSession(out *eno.Outcome, suite cryptopool.Suite, sendsAB bool, ss0 []byte, sendOff, recvOff uint64, pending []byte) *session {
	id := tcpcrypt.SessionID(out.TEPByte, ss0, nil)
	return &session{
		info: Info{
			Encrypted: true, Role: out.Role, NegTEP: out.TEPByte, SessionID: id[:],
			Transcript: append([]byte(nil), out.Transcript()...), PeerGlobal: out.PeerGlobal,
			Suite: suite, SendsAB: sendsAB,
		},
		mk0: tcpcrypt.MasterKey(ss0, nil), ss: ss0,
		sendOff: sendOff, recvOff: recvOff, pending: pending,
	}
}

// resumed derives the session of a resumption (RFC 8548 §3.5): sn[i] =
// nonce_a | nonce_b, nonce_a being the nonce of the host that was A in the
// original session; both first frames at offset 0.
func resumed(out *eno.Outcome, t *ticket, peerNonce []byte) *session {
	var sn []byte
	if t.sendsAB {
		sn = append(append(sn, t.nonce...), peerNonce...)
	} else {
		sn = append(append(sn, peerNonce...), t.nonce...)
	}
	id := tcpcrypt.SessionID(out.TEPByte, t.ss, sn)
	return &session{
		info: Info{
			Encrypted: true, Role: out.Role, NegTEP: out.TEPByte, SessionID: id[:],
			Transcript: append([]byte(nil), out.Transcript()...), PeerGlobal: out.PeerGlobal,
			Suite: t.suite, SendsAB: t.sendsAB, Resumed: true,
		},
		mk0: tcpcrypt.MasterKey(t.ss, sn), ss: t.ss,
	}
}

// resumeData splits a resumption suboption's data into identifier half and
// nonce; ok is false when it is no resumption suboption (RFC 8548 §3.5:
// fewer than 9 bytes means a fresh offer; a nonce is at most 8 bytes).
func resumeData(data []byte) (half, nonce []byte, ok bool) {
	if len(data) < tcpcrypt.ResumeHalf || len(data) > tcpcrypt.ResumeHalf+tcpcrypt.MaxResumeNonce {
		return nil, nil, false
	}
	return data[:tcpcrypt.ResumeHalf], data[tcpcrypt.ResumeHalf:], true
}

// startSession runs the key exchange or the resumption for a negotiated
// outcome and returns the Conn. t is the resumption ticket this host sent or
// answered with, if any.
func (h *Host) startSession(tcp *net.TCPConn, out *eno.Outcome, t *ticket, cfg *Config) (*Conn, error) {
	_ = tcp.SetDeadline(time.Now().Add(HandshakeTimeout))
	var s *session
	var err error
	switch {
	case out.Local().V() && out.Peer().V() && t != nil:
		_, nonce, _ := resumeData(out.Peer().Data)
		s = resumed(out, t, nonce)
	case out.Role == eno.RoleA:
		s, err = freshA(tcp, out, cfg.aeads(), cfg.Knobs)
	default:
		s, err = freshB(tcp, out, cfg.aeads(), cfg.Knobs)
	}
	if err != nil {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	_ = tcp.SetDeadline(time.Time{})
	if !cfg.NoCache {
		h.cache.store(tcp.RemoteAddr(), tcpcrypt.TEP(out.TEP()), s.info.Suite, s.info.SendsAB, s.ss)
	}
	c, err := newConn(tcp, s.info, cfg.Knobs, s.mk0, s.sendOff, s.recvOff, s.pending)
	if err != nil {
		_ = tcp.Close()
		return nil, err
	}
	c.host = h
	return c, nil
}

// plainConn wraps a connection that fell back to TCP.
func plainConn(tcp *net.TCPConn, reason eno.Reason, cfg *Config) (*Conn, error) {
	if cfg.RequireEncryption {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
		return nil, fmt.Errorf("%w (%v)", ErrNotEncrypted, reason)
	}
	return newConn(tcp, Info{Reason: reason}, cfg.Knobs, nil, 0, 0, nil)
}
