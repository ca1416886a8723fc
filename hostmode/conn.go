package hostmode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Errors a Conn reports. None is io.EOF: an application must be able to tell
// an authenticated end of stream from an attack or a broken peer (RFC 8548
// §3.3, §3.7).
var (
	// ErrFINWithoutFINp: the TCP stream ended without a frame carrying FINp
	// (RFC 8548 §3.7).
	ErrFINWithoutFINp = errors.New("hostmode: TCP FIN without a FINp frame")
	// ErrDataAfterFINp: bytes followed the FINp frame (RFC 8548 §3.7: FINp
	// is on the last frame only).
	ErrDataAfterFINp = errors.New("hostmode: data after the FINp frame")
	// ErrFrameAuth: a frame did not authenticate; the connection was reset
	// (RFC 8548 §3.6).
	ErrFrameAuth = errors.New("hostmode: frame authentication failed")
	// ErrNotEncrypted: TCP-ENO did not negotiate tcpcrypt and encryption was
	// required (Config.RequireEncryption).
	ErrNotEncrypted = errors.New("hostmode: TCP-ENO negotiation failed and encryption is required")
	// ErrClosedWrite: Write after CloseWrite or Close.
	ErrClosedWrite = errors.New("hostmode: write after FINp")
)

// Info is what TCP-ENO and tcpcrypt established for a connection: the
// read-only options of the TCPINC API (draft-ietf-tcpinc-api §4).
type Info struct {
	Encrypted bool
	// Reason says why the connection is not encrypted (eno.Success when it is).
	Reason eno.Reason
	// Role is TCP_ENO_ROLE: 0 = A, 1 = B.
	Role eno.Role
	// NegTEP is TCP_ENO_NEGTEP: the negotiated TEP byte as B sent it, v bit
	// included (0xa3 for a resumed X25519 session).
	NegTEP byte
	// SessionID is TCP_ENO_SESSID (33 bytes for tcpcrypt).
	SessionID []byte
	// Transcript is TCP_ENO_TRANSCRIPT: A's SYN ENO option then B's.
	Transcript []byte
	// PeerGlobal is TCP_ENO_PEER_GOPT.
	PeerGlobal eno.Global
	// Suite is TCP_CRYPT_CONF, the AEAD in use.
	Suite cryptopool.Suite
	// Resumed reports a session resumed from a cached secret (RFC 8548 §3.5).
	Resumed bool
	// SendsAB reports whether this host encrypts with k_ab (it was A in the
	// session that produced the secret chain).
	SendsAB bool
}

// SelfName is TCP_ENO_SELF_NAME: the role byte, then the session ID.
func (i *Info) SelfName() []byte {
	if !i.Encrypted {
		return nil
	}
	return append([]byte{byte(i.Role)}, i.SessionID...)
}

// PeerName is TCP_ENO_PEER_NAME: SelfName with the role byte negated, so one
// end's SelfName is the other end's PeerName.
func (i *Info) PeerName() []byte {
	n := i.SelfName()
	if n != nil {
		n[0] ^= 1
	}
	return n
}

// Knobs are the framing choices of one connection. They are the sender's to
// make (RFC 8548 §3.6, §3.8), which is why tests vary them.
type Knobs struct {
	// FrameSize is the most application bytes per frame, 1..65518
	// (clen ≤ 65535); 0 means 16384.
	FrameSize int
	// RekeyFrames initiates a rekey before every RekeyFrames-th data frame
	// (0: never).
	RekeyFrames int
	// SplitInit sends the Init message in two TCP segments.
	SplitInit bool
	// InitTail puts this many bytes (at most 1024) in the "ignored" field at
	// the end of our Init message, message_len counting them. RFC 8548
	// §4.1 says a sender MUST leave the field empty and a receiver MUST
	// accept and skip it (and, being in the transmitted encoding, it goes
	// into the PRK): this is for testing receivers only.
	InitTail int
}

func (k Knobs) frameSize() int {
	switch {
	case k.FrameSize <= 0:
		return 16384
	case k.FrameSize > tcpcrypt.MaxData:
		return tcpcrypt.MaxData
	}
	return k.FrameSize
}

// Conn is a tcpcrypt connection over a TCP socket: a net.Conn whose bytes
// are framed, encrypted and authenticated. An unencrypted Conn (fallback)
// passes bytes through.
type Conn struct {
	tcp   *net.TCPConn
	info  Info
	knobs Knobs
	host  *Host // for cache flushes; may be nil
	// onClose runs once when the connection closes or aborts.
	onClose func()

	// gmu guards localGen, the generation raised to (RFC 8548 §3.8); the
	// reader raises it without waiting for a writer blocked on the socket.
	gmu      sync.Mutex
	localGen uint64

	wmu      sync.Mutex
	sendMK   []byte
	sealer   *tcpcrypt.Sealer
	sendGen  uint64 // generation of the frames sent
	sendOff  uint64
	frames   int  // data frames sent since the last rekey we initiated
	finSent  bool // FINp frame sent (and so no more rekey answers)
	werr     error
	owed     chan struct{}
	done     chan struct{}
	closeOne sync.Once

	rmu       sync.Mutex
	recvMK    []byte
	opener    *tcpcrypt.Opener
	remoteGen uint64
	recvOff   uint64
	raw       []byte // received stream bytes not yet framed
	plain     []byte // decrypted bytes not yet read
	finRcvd   bool
	rerr      error
	rbuf      []byte
}

// keysFor derives this host's send and receive keys of the generation whose
// master key is mk (RFC 8548 §3.3: the original role decides).
func keysFor(mk []byte, s cryptopool.Suite, sendsAB bool) (send, recv tcpcrypt.TrafficKey) {
	kab, kba := tcpcrypt.TrafficKeys(mk, s)
	if sendsAB {
		return kab, kba
	}
	return kba, kab
}

// newConn starts the data phase: mk0 is mk[0], sendOff and recvOff the
// stream offsets of each side's first frame, pending the stream bytes
// already read past the peer's Init message.
func newConn(tcp *net.TCPConn, info Info, knobs Knobs, mk0 []byte, sendOff, recvOff uint64, pending []byte) (*Conn, error) {
	c := &Conn{tcp: tcp, info: info, knobs: knobs, sendOff: sendOff, recvOff: recvOff,
		owed: make(chan struct{}, 1), done: make(chan struct{})}
	if !info.Encrypted {
		c.raw = pending
		return c, nil
	}
	c.sendMK = append([]byte(nil), mk0...)
	c.recvMK = append([]byte(nil), mk0...)
	sk, rk := keysFor(mk0, info.Suite, info.SendsAB)
	var err error
	if c.sealer, err = tcpcrypt.NewSealer(sk); err != nil {
		return nil, err
	}
	if c.opener, err = tcpcrypt.NewOpener(rk); err != nil {
		return nil, err
	}
	c.raw = append(c.raw, pending...)
	go c.answerer()
	return c, nil
}

// Info returns what the handshake established.
func (c *Conn) Info() Info { return c.info }

// LocalAddr, RemoteAddr and the deadlines are the TCP socket's.
func (c *Conn) LocalAddr() net.Addr                { return c.tcp.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.tcp.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.tcp.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.tcp.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }

// TCP returns the underlying socket.
func (c *Conn) TCP() *net.TCPConn { return c.tcp }

// FlushCache is TCP_CRYPT_CACHE_FLUSH on an established connection: it drops
// the resumption state this connection used or produced (RFC 8548 §3.5).
func (c *Conn) FlushCache() {
	if c.host != nil {
		c.host.cache.flush(c.RemoteAddr())
	}
}

// Write frames and sends p.
func (c *Conn) Write(p []byte) (int, error) {
	if !c.info.Encrypted {
		return c.tcp.Write(p)
	}
	c.wmu.Lock()
	defer c.unlockW()
	if c.finSent {
		return 0, ErrClosedWrite
	}
	fs := c.knobs.frameSize()
	n := 0
	for n < len(p) {
		m := min(fs, len(p)-n)
		if err := c.sendFrame(p[n:n+m], false); err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// unlockW releases the write lock, then sends any rekey answer that became
// owed meanwhile and that the answerer could not send.
func (c *Conn) unlockW() {
	c.flushOwed()
	c.wmu.Unlock()
}

// sendFrame seals one frame and writes it. The caller holds wmu.
func (c *Conn) sendFrame(data []byte, fin bool) error {
	if c.werr != nil {
		return c.werr
	}
	c.gmu.Lock()
	if len(data) > 0 && c.knobs.RekeyFrames > 0 && c.frames >= c.knobs.RekeyFrames && c.sendGen == c.localGen {
		c.localGen++ // initiate rekeying (RFC 8548 §3.8)
		c.frames = 0
	}
	local := c.localGen
	c.gmu.Unlock()
	h := tcpcrypt.FrameHeader{FIN: fin}
	if c.sendGen < local {
		// The first frame under a new generation has rekey = 1; each one
		// moves the peer's remote generation by one.
		c.sendMK = tcpcrypt.NextMasterKey(c.sendMK)
		sk, _ := keysFor(c.sendMK, c.info.Suite, c.info.SendsAB)
		s, err := tcpcrypt.NewSealer(sk)
		if err != nil {
			return err
		}
		c.sealer = s
		c.sendGen++
		h.Rekey = true
	}
	buf := make([]byte, len(data)+h.Overhead())
	copy(buf[h.DataStart():], data)
	frame, err := c.sealer.Seal(buf, h, len(data), c.sendOff)
	if err != nil {
		c.werr = err
		return err
	}
	if _, err := c.tcp.Write(frame); err != nil {
		c.werr = err
		return err
	}
	c.sendOff += uint64(len(frame))
	if len(data) > 0 {
		c.frames++
	}
	if fin {
		c.finSent = true
	}
	return nil
}

// flushOwed sends the rekey frames owed to the peer: after a received rekey
// raised the local generation, one frame with rekey = 1 per generation not
// yet announced, empty if there is nothing to send, and none after our FIN
// (RFC 8548 §3.8). The caller holds wmu.
func (c *Conn) flushOwed() {
	for !c.finSent && c.werr == nil {
		c.gmu.Lock()
		owed := c.sendGen < c.localGen
		c.gmu.Unlock()
		if !owed || c.sendFrame(nil, false) != nil {
			return
		}
	}
}

// answerer sends rekey answers so that the reading goroutine never blocks on
// the write side (a writer stuck on a full send buffer would otherwise stop
// the reader, and with it the peer).
func (c *Conn) answerer() {
	for {
		select {
		case <-c.done:
			return
		case <-c.owed:
			c.wmu.Lock()
			c.flushOwed()
			c.wmu.Unlock()
		}
	}
}

// CloseWrite sends the FINp frame and then TCP's FIN (half-close).
func (c *Conn) CloseWrite() error {
	if !c.info.Encrypted {
		return c.tcp.CloseWrite()
	}
	c.wmu.Lock()
	var err error
	if !c.finSent {
		c.flushOwed()
		err = c.sendFrame(nil, true)
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	return c.tcp.CloseWrite()
}

// Close sends the FINp frame if it has not gone yet and closes the socket.
func (c *Conn) Close() error {
	if c.info.Encrypted {
		c.wmu.Lock()
		if !c.finSent && c.werr == nil {
			c.flushOwed()
			_ = c.sendFrame(nil, true)
		}
		c.wmu.Unlock()
	}
	c.closeOne.Do(c.closed)
	return c.tcp.Close()
}

func (c *Conn) closed() {
	close(c.done)
	if c.onClose != nil {
		c.onClose()
	}
}

// abort resets the connection (RFC 793 ABORT, RFC 8548 §3.3).
func (c *Conn) abort() {
	_ = c.tcp.SetLinger(0)
	c.closeOne.Do(c.closed)
	_ = c.tcp.Close()
}

// Read returns decrypted application bytes. It returns io.EOF only after a
// frame with FINp (RFC 8548 §3.7).
func (c *Conn) Read(p []byte) (int, error) {
	if !c.info.Encrypted {
		if len(c.raw) > 0 {
			n := copy(p, c.raw)
			c.raw = c.raw[n:]
			return n, nil
		}
		return c.tcp.Read(p)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if len(c.plain) > 0 {
			n := copy(p, c.plain)
			c.plain = c.plain[n:]
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if err := c.decode(); err != nil {
			c.rerr = err
			if err != io.EOF {
				c.abort()
			}
			continue
		}
		if len(c.plain) > 0 {
			continue
		}
		if c.finRcvd {
			// End of stream when, and only when, FINp arrived (RFC 8548
			// §3.7), not at the TCP FIN that follows it.
			c.rerr = io.EOF
			continue
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, 64<<10)
		}
		n, err := c.tcp.Read(c.rbuf)
		if n > 0 {
			if c.finRcvd {
				c.rerr = ErrDataAfterFINp
				c.abort()
				continue
			}
			c.raw = append(c.raw, c.rbuf[:n]...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return 0, err
			}
			switch derr := c.decode(); {
			case derr != nil:
				c.rerr = derr
				c.abort()
			case c.finRcvd:
				c.rerr = io.EOF
			default:
				c.rerr = ErrFINWithoutFINp
				c.abort()
			}
		}
	}
}

// decode opens every whole frame in c.raw, appending data to c.plain.
// rmu is held.
func (c *Conn) decode() error {
	for len(c.raw) >= tcpcrypt.HeaderLen {
		if c.finRcvd {
			return ErrDataAfterFINp
		}
		flen := tcpcrypt.HeaderLen + int(binary.BigEndian.Uint16(c.raw[1:3]))
		if len(c.raw) < flen {
			return nil
		}
		frame := c.raw[:flen]
		op := c.opener
		mk := c.recvMK
		rekey := frame[0]&1 != 0
		if rekey {
			// Decrypt with the keys of remote generation + 1 (RFC 8548 §3.8).
			mk = tcpcrypt.NextMasterKey(c.recvMK)
			_, rk := keysFor(mk, c.info.Suite, c.info.SendsAB)
			o, err := tcpcrypt.NewOpener(rk)
			if err != nil {
				return err
			}
			op = o
		}
		h, data, err := op.Open(frame, c.recvOff)
		if err != nil {
			if errors.Is(err, tcpcrypt.ErrFrameAuth) {
				return fmt.Errorf("%w at stream offset %d", ErrFrameAuth, c.recvOff)
			}
			return err
		}
		c.plain = append(c.plain, data...)
		c.recvOff += uint64(flen)
		c.raw = c.raw[flen:]
		if rekey {
			c.remoteGen++
			c.recvMK, c.opener = mk, op
			c.gmu.Lock()
			behind := c.remoteGen > c.localGen
			c.gmu.Unlock()
			if behind {
				c.gmu.Lock()
				c.localGen = c.remoteGen
				c.gmu.Unlock()
				select {
				case c.owed <- struct{}{}:
				default:
				}
			}
		}
		if h.FIN {
			c.finRcvd = true
			if len(c.raw) > 0 {
				return ErrDataAfterFINp
			}
		}
	}
	if len(c.raw) == 0 {
		c.raw = c.raw[:0:0]
	}
	return nil
}
