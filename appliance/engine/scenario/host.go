package scenario

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Host builds the segments of one scripted endpoint: its address and port,
// its peer's, and its initial sequence number. It keeps no TCP state; tests
// say what each segment is.
type Host struct {
	Addr, Peer netip.AddrPort
	ISN        uint32
	Window     uint16 // 0 means 65535 unless Exact
	Exact      bool   // send Window as it is, 0 too (a closed window)
}

// Seq returns the sequence number of stream offset off (0 is the first data
// byte, ISN+1).
func (h *Host) Seq(off int) uint32 { return h.ISN + 1 + uint32(off) }

// Seg builds one segment. opts are concatenated (and padded to 4 bytes by
// packettest).
func (h *Host) Seg(flags uint8, seq, ack uint32, payload []byte, opts ...[]byte) []byte {
	win := h.Window
	if win == 0 && !h.Exact {
		win = 65535
	}
	return packettest.Frame{
		Src: h.Addr.Addr(), Dst: h.Peer.Addr(),
		TCP: &packettest.TCP{
			SrcPort: h.Addr.Port(), DstPort: h.Peer.Port(),
			Seq: seq, Ack: ack, Flags: flags, Window: win,
			Options: bytes.Join(opts, nil), Payload: payload,
		},
	}.Bytes()
}

// SYN is the host's SYN with the given options.
func (h *Host) SYN(opts ...[]byte) []byte { return h.Seg(packettest.SYN, h.ISN, 0, nil, opts...) }

// SYNACK answers a SYN whose ISN is peerISN.
func (h *Host) SYNACK(peerISN uint32, opts ...[]byte) []byte {
	return h.Seg(packettest.SYN|packettest.ACK, h.ISN, peerISN+1, nil, opts...)
}

// Data sends payload at stream offset off, acknowledging ack.
func (h *Host) Data(off int, ack uint32, payload []byte, opts ...[]byte) []byte {
	return h.Seg(packettest.ACK|packettest.PSH, h.Seq(off), ack, payload, opts...)
}

// ACK is a pure ACK at stream offset off.
func (h *Host) ACK(off int, ack uint32, opts ...[]byte) []byte {
	return h.Seg(packettest.ACK, h.Seq(off), ack, nil, opts...)
}

// Common option blocks.
var (
	// LinuxSYNOpts is what Linux puts in a SYN: MSS 1460, SACK permitted,
	// timestamps, NOP, window scale 7 (20 bytes: 20 bytes left for ENO).
	LinuxSYNOpts = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	// PlainSYNOpts is MSS 1460 and SACK permitted.
	PlainSYNOpts = []byte{2, 4, 0x05, 0xb4, 4, 2}
	// ENOAck is the non-SYN-form ENO option of tcpcrypt (ENO-1).
	ENOAck = []byte{69, 2}
)

// SACKOpt returns NOP, NOP and a SACK option with the given [left, right)
// blocks.
func SACKOpt(blocks ...[2]uint32) []byte {
	b := []byte{1, 1, 5, byte(2 + 8*len(blocks))}
	for _, x := range blocks {
		b = append(b, byte(x[0]>>24), byte(x[0]>>16), byte(x[0]>>8), byte(x[0]))
		b = append(b, byte(x[1]>>24), byte(x[1]>>16), byte(x[1]>>8), byte(x[1]))
	}
	return b
}

// Stream is a reference model of one direction's byte stream at the
// receiver: which bytes arrived at which sequence numbers. Bytes that
// arrive twice must be equal (a retransmission carries the same bytes for
// the same sequence numbers, TC-45); Add reports a conflict.
type Stream struct {
	ISN  uint32
	data []byte
	have []bool
	cont int // have[:cont] are all set
	FIN  int // stream offset of the FIN, -1 if none seen
}

// NewStream starts the model of a stream whose sender's ISN is isn.
func NewStream(isn uint32) *Stream { return &Stream{ISN: isn, FIN: -1} }

// Off returns the stream offset of sequence number seq.
func (s *Stream) Off(seq uint32) int { return int(int32(seq - s.ISN - 1)) }

// AddSeg adds a segment's payload (and FIN).
func (s *Stream) AddSeg(g Seg) error {
	if err := s.Add(g.Seq, g.Payload); err != nil {
		return err
	}
	if g.Has(packettest.FIN) {
		f := s.Off(g.Seq) + len(g.Payload)
		if s.FIN >= 0 && s.FIN != f {
			return fmt.Errorf("FIN moved from offset %d to %d", s.FIN, f)
		}
		s.FIN = f
	}
	return nil
}

// Add records payload at seq.
func (s *Stream) Add(seq uint32, payload []byte) error {
	off := s.Off(seq)
	if off < 0 {
		return fmt.Errorf("data at offset %d, before the stream", off)
	}
	if end := off + len(payload); end > len(s.data) {
		s.data = append(s.data, make([]byte, end-len(s.data))...)
		s.have = append(s.have, make([]bool, end-len(s.have))...)
	}
	for i, c := range payload {
		if s.have[off+i] && s.data[off+i] != c {
			return fmt.Errorf("byte at offset %d was %#x, now %#x (TC-45)", off+i, s.data[off+i], c)
		}
		s.data[off+i], s.have[off+i] = c, true
	}
	return nil
}

// Contiguous returns the bytes from offset 0 up to the first hole.
func (s *Stream) Contiguous() []byte {
	for s.cont < len(s.have) && s.have[s.cont] {
		s.cont++ // bytes are never taken back: resume where the last call stopped
	}
	return s.data[:s.cont]
}

// Holes reports whether any byte below the highest one received is missing.
func (s *Stream) Holes() bool { return len(s.Contiguous()) != len(s.data) }
