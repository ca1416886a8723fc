package keylog

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// Conn is one TCP connection of a capture, decrypted when the key log has
// its keys.
type Conn struct {
	// Client sent the SYN; Server answered with the SYN-ACK.
	Client, Server netip.AddrPort
	// Key is the key log entry used (its lowest generation), nil when the
	// key log has none for this connection.
	Key *Entry
	// Streams: [0] client to server, [1] server to client.
	Streams [2]Stream
}

// Stream is one direction of a connection.
type Stream struct {
	Src, Dst netip.AddrPort
	// Captured is how many stream bytes were contiguous from the start
	// (Init message and frames, or plain payload).
	Captured int
	// Gap is set when bytes are missing from the capture after Captured.
	Gap bool
	// Partial is set when the captured stream ends inside a frame (the
	// capture stopped, or lost the rest).
	Partial bool
	// InitLen is the length of the Init message before the frames (0
	// when resumed or unknown).
	InitLen int
	// Plaintext is the decrypted application data, in order.
	Plaintext []byte
	// Frames and Generations count the frames opened and the key
	// generations used (1 without a rekey).
	Frames      int
	Generations uint64
	// FIN: the frame with FINp was opened.
	FIN bool
	// Err says why decryption stopped early (wrong key, malformed frame).
	Err error
}

type seg struct {
	off  uint64
	data []byte
}

type dirState struct {
	src, dst netip.AddrPort
	isn      uint32
	haveISN  bool
	segs     []seg
}

type capConn struct {
	dirs [2]*dirState // [0] from the SYN sender
}

// Decrypt reads every TCP segment of the capture, reassembles the streams
// of each connection from its SYN and SYN-ACK, and decrypts those whose
// keys are in keys (matched by address pair; when several sessions share
// it, the one whose key opens the first frame). Connections without a SYN
// in the capture are not followed.
func Decrypt(r *pcapng.Reader, keys []Entry) ([]Conn, error) {
	var order []*capConn
	open := map[[2]netip.AddrPort]*capConn{} // keyed by (client, server)
	var p packet.Packet
	for {
		pk, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.Decode(pk.Data) != nil || !p.IsTCP() || p.IsFragment() {
			continue
		}
		src := netip.AddrPortFrom(p.SrcAddr().Unmap(), p.SrcPort())
		dst := netip.AddrPortFrom(p.DstAddr().Unmap(), p.DstPort())
		fl := p.Flags()
		const synF, ackF = 0x02, 0x10
		if fl&synF != 0 && fl&ackF == 0 {
			c := open[[2]netip.AddrPort{src, dst}]
			if c == nil || c.dirs[0].isn != p.Seq() {
				c = &capConn{dirs: [2]*dirState{{src: src, dst: dst, isn: p.Seq(), haveISN: true}, {src: dst, dst: src}}}
				open[[2]netip.AddrPort{src, dst}] = c
				order = append(order, c)
			}
			continue
		}
		var c *capConn
		var d *dirState
		if c = open[[2]netip.AddrPort{src, dst}]; c != nil {
			d = c.dirs[0]
		} else if c = open[[2]netip.AddrPort{dst, src}]; c != nil {
			d = c.dirs[1]
		} else {
			continue
		}
		if fl&synF != 0 {
			d.isn, d.haveISN = p.Seq(), true
			continue
		}
		if len(p.Payload()) == 0 || !d.haveISN {
			continue
		}
		off := uint64(p.Seq() - d.isn - 1) // 32-bit: streams past 4 GiB wrap
		d.segs = append(d.segs, seg{off: off, data: slices.Clone(p.Payload())})
	}
	bySession := map[[tcpcrypt.SessionIDLen]byte]int{}
	var sessions []Entry
	for _, e := range keys {
		if i, ok := bySession[e.SessionID]; ok {
			if e.Generation < sessions[i].Generation {
				sessions[i] = e
			}
			continue
		}
		bySession[e.SessionID] = len(sessions)
		sessions = append(sessions, e)
	}
	var out []Conn
	for _, c := range order {
		conn := Conn{Client: c.dirs[0].src, Server: c.dirs[0].dst}
		var streams [2][]byte
		for i, d := range c.dirs {
			streams[i], conn.Streams[i].Gap = assemble(d.segs)
			conn.Streams[i].Src, conn.Streams[i].Dst = d.src, d.dst
			conn.Streams[i].Captured = len(streams[i])
		}
		for i := range sessions {
			e := &sessions[i]
			if !e.matches(conn.Client, conn.Server) {
				continue
			}
			try := conn
			ok := false
			for dir := range try.Streams {
				s := &try.Streams[dir]
				decryptStream(s, streams[dir], e)
				ok = ok || s.Frames > 0
			}
			if ok || conn.Key == nil {
				try.Key = e
				conn = try
			}
			if ok {
				break
			}
		}
		out = append(out, conn)
	}
	return out, nil
}

func (e *Entry) matches(a, b netip.AddrPort) bool {
	return (e.Inside == a && e.Outside == b) || (e.Inside == b && e.Outside == a)
}

// assemble joins segments into the stream from offset 0, up to the first
// gap; retransmitted and overlapping bytes are taken once.
func assemble(segs []seg) ([]byte, bool) {
	slices.SortStableFunc(segs, func(a, b seg) int { return cmp.Compare(a.off, b.off) })
	var out []byte
	for _, s := range segs {
		end := s.off + uint64(len(s.data))
		if end <= uint64(len(out)) {
			continue
		}
		if s.off > uint64(len(out)) {
			return out, true
		}
		out = append(out, s.data[uint64(len(out))-s.off:]...)
	}
	return out, false
}

// decryptStream opens the frames of one direction with e's keys.
func decryptStream(s *Stream, b []byte, e *Entry) {
	s.Plaintext, s.Frames, s.Generations, s.FIN, s.Err = nil, 0, 0, false, nil
	// The logging appliance's side is e.Inside; it sends with k_ab when it
	// was A in the original session (TC-38).
	fromInside := s.Src == e.Inside
	usesAB := fromInside == e.SendsAB()
	off := 0
	if !e.Resumed() {
		// The Init message comes first: magic, then message_len (RFC 8548 §4.1).
		if len(b) < 8 {
			s.Err = errors.New("the Init message is not in the capture")
			return
		}
		off = int(binary.BigEndian.Uint32(b[4:8]))
		if off > len(b) {
			s.Err = fmt.Errorf("the Init message (%d bytes) is not all in the capture", off)
			return
		}
		s.InitLen = off
	}
	if e.Generation != 0 {
		s.Err = fmt.Errorf("the key log starts at generation %d: generation 0 cannot be opened", e.Generation)
		return
	}
	mk := append([]byte(nil), e.MasterKey[:]...)
	gen := uint64(0)
	opener := func() (*tcpcrypt.Opener, error) {
		kab, kba := tcpcrypt.TrafficKeys(mk, e.Suite)
		if usesAB {
			return tcpcrypt.NewOpener(kab)
		}
		return tcpcrypt.NewOpener(kba)
	}
	o, err := opener()
	if err != nil {
		s.Err = err
		return
	}
	s.Generations = 1
	buf := make([]byte, 0, tcpcrypt.MaxFrameLen)
	for off < len(b) {
		n, ok := tcpcrypt.FrameLen(b[off:])
		if !ok || off+n > len(b) {
			s.Partial = true // the rest is not in the capture
			return
		}
		if s.FIN {
			s.Err = fmt.Errorf("bytes after the FINp frame at offset %d", off)
			return
		}
		if b[off]&1 != 0 { // rekey bit: the next generation (RFC 8548 §3.8)
			mk = tcpcrypt.NextMasterKey(mk)
			gen++
			if o, err = opener(); err != nil {
				s.Err = err
				return
			}
			s.Generations = gen + 1
		}
		buf = append(buf[:0], b[off:off+n]...)
		h, data, err := o.Open(buf, uint64(off))
		if err != nil {
			s.Err = fmt.Errorf("frame at stream offset %d (generation %d): %w", off, gen, err)
			return
		}
		s.Plaintext = append(s.Plaintext, data...)
		s.Frames++
		s.FIN = h.FIN
		off += n
	}
}
