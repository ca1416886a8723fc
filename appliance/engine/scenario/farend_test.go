package scenario

import (
	"slices"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// farEnd is a far host that speaks tcpcrypt itself (a Peer) over a TCP
// sender with a real congestion window, as a host-based implementation on a
// kernel TCP would: slow start from 10 segments, congestion avoidance, fast
// retransmit and NewReno recovery on the third duplicate ACK, go-back-N
// retransmission with a backed-off timer (RFC 5681, RFC 6582, RFC 6298),
// never past the receive window the appliance advertises. Its application
// frames what it writes in frames of frameSize data bytes (a kernel
// implementation that frames per write() sends up to clen 65,535), may start
// a rekey every rekeyEvery frames, and may echo what it reads. Its receive
// side accepts any order (Peer.In) and acknowledges every segment.
type farEnd struct {
	t       *testing.T
	side    Side // the link side it sits on (no engine there)
	h, peer *Host
	p       *Peer
	mss     int
	ws      uint8 // shift of the windows it receives (RFC 7323)

	frameSize  int
	rekeyEvery int
	echo       bool // write back everything read
	closeAtEOF bool // half-close (FINp) once the other side's FINp was read and echoed
	closeDone  bool // half-close once everything written is framed

	// The framed wire stream from offset 0 (the Init message first, when
	// there is one) and where each frame lies, for the custody check.
	out    []byte
	frames []farFrame
	plain  int // plaintext framed so far
	nsent  int // frames sealed
	fin    bool

	una, nxt       int
	cwnd, ssthresh int
	rto, rtoAt     int64
	dups           int
	recover        int
	inRecovery     bool
	rwnd           int
	lastWin        uint16
	finSent        bool
	finAcked       bool
	timeouts       int
	ends           []int // where the segments first sent ended: retransmissions keep them, as Linux's queue does
	high           int   // highest wire offset sent

	pending   []byte // written, not yet framed
	lastWrite int64
	read      int // frames of p.Frames the application has read
	got       []byte
	gotFIN    bool
	rst       bool
}

// farFrame places one of the far end's frames: wire bytes [w, we) carry
// plaintext [h, he).
type farFrame struct {
	w, we, h, he int
}

const (
	farMSS     = 1448 // a Linux sender's payload per segment with timestamps
	farRTOMin  = int64(200 * time.Millisecond)
	farRTOMax  = int64(3 * time.Second)
	farFlushNs = int64(20 * time.Millisecond) // a partial frame goes out after this long without writes
)

// newFarEnd takes over a Peer whose handshake is done (peerA or peerB): its
// Init message was sent and acknowledged.
func newFarEnd(t *testing.T, side Side, h, peer *Host, p *Peer, frameSize int) *farEnd {
	f := &farEnd{
		t: t, side: side, h: h, peer: peer, p: p, mss: farMSS, ws: 7, frameSize: frameSize,
		out: append([]byte(nil), p.Init...), cwnd: 10 * farMSS, ssthresh: 1 << 30, rto: farRTOMin,
		rwnd: 65535 << 7,
	}
	if p.Init != nil && int(p.SendOff) != len(p.Init) {
		t.Fatalf("far end: peer already sent frames")
	}
	f.una, f.nxt = len(f.out), len(f.out)
	f.recover = f.una
	return f
}

func (f *farEnd) write(now int64, b []byte) {
	f.pending = append(f.pending, b...)
	f.lastWrite = now
}

// seal frames data (FINp if fin) at the end of the wire stream.
func (f *farEnd) seal(data []byte, fin bool) {
	if f.rekeyEvery > 0 && f.nsent > 0 && f.nsent%f.rekeyEvery == 0 && len(data) > 0 && !f.p.Ring.RekeyPending() {
		if err := f.p.Ring.StartRekey(); err != nil {
			f.t.Fatalf("far end: rekey: %v", err)
		}
	}
	fr := f.p.Seal(data, fin)
	// Retransmissions come from out, never sealed again: the older
	// generations' sending keys can go at once (RFC 8548 §3.8).
	f.p.Ring.Forget(f.p.Ring.SendGeneration())
	f.frames = append(f.frames, farFrame{w: len(f.out), we: len(f.out) + len(fr), h: f.plain, he: f.plain + len(data)})
	f.out = append(f.out, fr...)
	f.plain += len(data)
	f.nsent++
	f.fin = f.fin || fin
}

func (f *farEnd) ackNum() uint32 {
	c := len(f.p.In.Contiguous())
	if f.p.In.FIN >= 0 && f.p.In.FIN == c {
		c++
	}
	return f.peer.Seq(c)
}

func (f *farEnd) outstanding() bool {
	return f.nxt > f.una || (f.finSent && !f.finAcked) || f.una < len(f.out) || (f.fin && !f.finAcked)
}

// step runs the application and the sender at w.Now.
func (f *farEnd) step(w *World) {
	now := w.Now
	if f.rst {
		return
	}
	if !f.fin {
		flush := f.gotFIN || now-f.lastWrite >= farFlushNs
		for (len(f.pending) >= f.frameSize || (flush && len(f.pending) > 0)) && f.room() {
			n := min(len(f.pending), f.frameSize)
			f.seal(f.pending[:n], false)
			f.pending = f.pending[n:]
		}
		if f.p.Ring.Owed() {
			f.seal(nil, false) // answer the other side's rekey at once (RFC 8548 §3.8)
		}
		if ((f.gotFIN && f.closeAtEOF) || f.closeDone) && len(f.pending) == 0 {
			f.seal(nil, true)
		}
	}
	force := false
	if f.outstanding() && f.rtoAt != 0 && now >= f.rtoAt {
		f.timeouts++
		f.ssthresh = max((f.nxt-f.una)/2, 2*f.mss)
		f.cwnd = f.mss
		f.nxt = f.una
		f.finSent = f.finAcked
		f.inRecovery = false
		f.dups = 0
		f.rto = min(2*f.rto, farRTOMax)
		f.rtoAt = now + f.rto
		force = true // also a window probe
	}
	for f.nxt < len(f.out) {
		room := f.una + min(f.cwnd, f.rwnd) - f.nxt
		if force {
			room = max(room, 1)
		}
		n := min(f.mss, len(f.out)-f.nxt, room)
		if n <= 0 {
			break
		}
		if e := f.boundary(f.nxt); e > 0 {
			n = min(n, e-f.nxt)
		}
		f.sendAt(w, f.nxt, n)
		f.nxt += n
		force = false
	}
	if f.fin && !f.finSent && f.nxt == len(f.out) && (force || f.nxt-f.una < min(f.cwnd, f.rwnd) || f.nxt == f.una) {
		w.SendFar(f.side, f.h.Seg(packettest.ACK|packettest.FIN, f.h.Seq(f.nxt), f.ackNum(), nil))
		f.finSent = true
	}
	if f.outstanding() && f.rtoAt == 0 {
		f.rtoAt = now + f.rto
	}
}

// boundary is the end of the segment first sent across off, or 0 when off
// was never sent.
func (f *farEnd) boundary(off int) int {
	i, _ := slices.BinarySearch(f.ends, off+1)
	if i == len(f.ends) {
		return 0
	}
	return f.ends[i]
}

// sendAt sends wire bytes [off, off+n), with FIN on the segment that ends
// the FINp frame.
func (f *farEnd) sendAt(w *World, off, n int) {
	if e := f.boundary(off); e > 0 {
		n = min(n, e-off)
	}
	if off+n > f.high {
		f.ends = append(f.ends, off+n)
		f.high = off + n
	}
	fl := uint8(packettest.ACK)
	if off+n == len(f.out) {
		fl |= packettest.PSH
		if f.fin {
			fl |= packettest.FIN
			f.finSent = true
		}
	}
	w.SendFar(f.side, f.h.Seg(fl, f.h.Seq(off), f.ackNum(), f.out[off:off+n]))
}

// receive handles what the link delivered to the far end.
func (f *farEnd) receive(w *World, segs []Seg) {
	f.t.Helper()
	for _, g := range segs {
		if g.Has(packettest.SYN) {
			continue
		}
		if g.Has(packettest.RST) {
			f.rst = true
			continue
		}
		if g.Has(packettest.ACK) {
			f.gotAck(w, g)
		}
		if len(g.Payload) == 0 && !g.Has(packettest.FIN) {
			continue
		}
		if err := f.p.Receive(g); err != nil {
			f.t.Fatalf("far end: %v at %v", err, g)
		}
		for ; f.read < len(f.p.Frames); f.read++ {
			fr := f.p.Frames[f.read]
			f.got = append(f.got, fr.Data...)
			if f.echo && len(fr.Data) > 0 {
				f.write(w.Now, fr.Data)
			}
			f.gotFIN = f.gotFIN || fr.FIN
		}
		w.SendFar(f.side, f.h.Seg(packettest.ACK, f.h.Seq(f.nxt), f.ackNum(), nil))
	}
}

func (f *farEnd) gotAck(w *World, g Seg) {
	ack := int(int32(g.Ack - f.h.ISN - 1))
	win := int(g.Window) << f.ws
	dupWin := g.Window == f.lastWin
	f.lastWin = g.Window
	switch {
	case ack > f.una && ack <= len(f.out)+1:
		acked := ack - f.una
		f.una = min(ack, len(f.out))
		if ack == len(f.out)+1 && f.fin {
			f.finAcked = true
		}
		f.nxt = max(f.nxt, f.una)
		f.dups = 0
		f.rwnd = win
		switch {
		case f.inRecovery && ack >= f.recover:
			f.inRecovery = false
			f.cwnd = f.ssthresh
		case f.inRecovery:
			// A partial ACK: the next hole (RFC 6582 §3.2).
			f.sendAt(w, f.una, min(f.mss, len(f.out)-f.una))
			f.cwnd = max(f.cwnd-acked+f.mss, f.mss)
		case f.cwnd < f.ssthresh:
			f.cwnd += min(acked, f.mss)
		default:
			f.cwnd += max(1, f.mss*f.mss/f.cwnd)
		}
		f.rto = farRTOMin
		f.rtoAt = 0
		if f.outstanding() {
			f.rtoAt = w.Now + f.rto
		}
	case ack == f.una && len(g.Payload) == 0 && !g.Has(packettest.FIN) && f.nxt > f.una && dupWin:
		f.dups++
		switch {
		case f.dups == 3 && !f.inRecovery && f.una >= f.recover:
			f.ssthresh = max((f.nxt-f.una)/2, 2*f.mss)
			f.cwnd = f.ssthresh + 3*f.mss
			f.recover = f.nxt
			f.inRecovery = true
			f.sendAt(w, f.una, min(f.mss, len(f.out)-f.una))
		case f.inRecovery:
			f.cwnd += f.mss
		}
		f.rwnd = win
	default:
		if ack >= f.una {
			f.rwnd = win
		}
	}
}

// room reports whether the application may frame more now: the sender
// frames as its window opens, as a kernel implementation that frames at
// transmission would.
func (f *farEnd) room() bool {
	return len(f.out)-f.una < min(f.cwnd, f.rwnd)+f.mss
}

// custody checks the engine's promise to the far end: a frame whose wire
// bytes are all acknowledged has reached the inside host, which
// acknowledged its plaintext (hostAcked: plaintext bytes the inside host
// has acknowledged so far).
func (f *farEnd) custody(hostAcked int) {
	f.t.Helper()
	for _, fr := range f.frames {
		if fr.we > f.una {
			return
		}
		if fr.he > hostAcked {
			f.t.Fatalf("the wire ACK %d covers the frame at wire [%d, %d) but the inside host acknowledged only %d of its plaintext [%d, %d)",
				f.una, fr.w, fr.we, hostAcked, fr.h, fr.he)
		}
	}
}
