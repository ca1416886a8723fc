package afpacketport

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/tcpinc/tcpinc/afpacket"
)

func hdrBytes(h afpacket.VnetHdr) []byte {
	b := make([]byte, afpacket.VnetHdrLen)
	_ = h.Encode(b)
	return b
}

// udpPartial is an IPv4 UDP frame whose checksum field holds the folded
// pseudo-header sum (a partial checksum), with its header.
func udpPartial(payload []byte) ([]byte, afpacket.VnetHdr) {
	f := append([]byte{}, seg{}.build()[:34]...)
	f[23] = protoUDP
	binary.BigEndian.PutUint16(f[16:], uint16(28+len(payload)))
	f[24], f[25] = 0, 0
	binary.BigEndian.PutUint16(f[24:], ^csum(f[14:34], 0))
	f = append(f, 0x14, 0xe9, 0, 53, byte((8+len(payload))>>8), byte(8+len(payload)), 0, 0)
	f = append(f, payload...)
	binary.BigEndian.PutUint16(f[40:], csum(f[26:34], protoUDP+uint32(8+len(payload))))
	return f, afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 34, CsumOffset: 6}
}

// TestInspectRx: the receive checks without a kernel.
func TestInspectRx(t *testing.T) {
	tcp := seg{seq: 1, ack: 1, id: 1, payload: 3000}.build()
	hTCP, _ := afpacket.PrepareGSO(tcp, 1000)

	t.Run("TCP super-segment", func(t *testing.T) {
		f := append([]byte{}, tcp...)
		r, err := inspectRx(hdrBytes(hTCP), f)
		if err != nil || r != (rxFrame{gso: 1000, segments: 3, completed: true, verified: true}) {
			t.Fatalf("%+v %v", r, err)
		}
		p, _ := afpacket.ParseTCP(f)
		if !afpacket.TCPChecksumOK(f, p) {
			t.Error("checksum not completed")
		}
	})
	// Who vouches for a TCP frame's checksum (bump.CsumVerified): the
	// kernel when it says DATA_VALID, nobody when it says nothing.
	t.Run("TCP checked by the kernel", func(t *testing.T) {
		f := seg{seq: 1, ack: 1, id: 1, payload: 100}.build()
		r, err := inspectRx(hdrBytes(afpacket.VnetHdr{Flags: afpacket.FlagDataValid}), f)
		if err != nil || r != (rxFrame{verified: true}) {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("TCP nobody checked", func(t *testing.T) {
		f := seg{seq: 1, ack: 1, id: 1, payload: 100}.build()
		r, err := inspectRx(hdrBytes(afpacket.VnetHdr{}), f)
		if err != nil || r != (rxFrame{}) {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("UDP checksum zero is sent as 0xffff", func(t *testing.T) {
		// Choose two payload bytes so that the complete checksum is 0.
		f, h := udpPartial([]byte{0, 0, 1, 2, 3})
		g := append([]byte{}, f...)
		h2 := h
		_ = h2.CompleteChecksum(g)
		c := binary.BigEndian.Uint16(g[40:])
		binary.BigEndian.PutUint16(f[42:], c) // adds c to the sum: it folds to 0xffff, checksum 0
		r, err := inspectRx(hdrBytes(h), f)
		if err != nil || !r.completed {
			t.Fatalf("%+v %v", r, err)
		}
		if got := binary.BigEndian.Uint16(f[40:]); got != 0xffff {
			t.Errorf("UDP checksum %#04x, want 0xffff", got)
		}
	})
	t.Run("SCTP CRC32c", func(t *testing.T) {
		f, h := udpPartial(make([]byte, 16))
		f[23] = protoSCTP
		f[24], f[25] = 0, 0
		binary.BigEndian.PutUint16(f[24:], ^csum(f[14:34], 0))
		h.CsumOffset = 8
		if _, err := inspectRx(hdrBytes(h), f); err != nil {
			t.Fatal(err)
		}
		c := append([]byte{}, f[34:]...)
		clear(c[8:12])
		if got, want := binary.LittleEndian.Uint32(f[42:]), crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli)); got != want {
			t.Errorf("CRC32c %#x, want %#x", got, want)
		}
	})
	bad := []struct {
		name string
		h    afpacket.VnetHdr
		f    []byte
	}{
		{"IPv6 GSO type on an IPv4 frame", afpacket.VnetHdr{GSOType: afpacket.GSOTCPv6, GSOSize: 1000}, tcp},
		{"GSO without a size", afpacket.VnetHdr{GSOType: afpacket.GSOTCPv4}, tcp},
		{"partial checksum not at TCP's field", afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 34, CsumOffset: 6}, tcp},
		{"UDP GSO", afpacket.VnetHdr{GSOType: afpacket.GSOUDPL4, GSOSize: 1000}, func() []byte { f, _ := udpPartial(make([]byte, 3000)); return f }()},
		{"TCP GSO on a UDP frame", afpacket.VnetHdr{GSOType: afpacket.GSOTCPv4, GSOSize: 1000}, func() []byte { f, _ := udpPartial(make([]byte, 3000)); return f }()},
		{"partial checksum past the end", afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 60, CsumOffset: 6}, func() []byte { f, _ := udpPartial(make([]byte, 3)); return f }()},
		{"partial checksum of a non-IP frame", afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, CsumStart: 14, CsumOffset: 0}, append(make([]byte, 12), 0x08, 0x06, 0, 0, 0, 0)},
		{"IP length beyond the frame", afpacket.VnetHdr{}, tcp[:100]},
		{"short", afpacket.VnetHdr{}, tcp[:20]},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if r, err := inspectRx(hdrBytes(c.h), append([]byte{}, c.f...)); err == nil {
				t.Errorf("accepted: %+v", r)
			}
		})
	}
	t.Run("non-IP frame without offload passes", func(t *testing.T) {
		if _, err := inspectRx(hdrBytes(afpacket.VnetHdr{}), append(make([]byte, 12), 0x08, 0x06, 0, 0)); err != nil {
			t.Error(err)
		}
	})
}

// FuzzInspectRx: no header and frame make inspectRx panic, and a partial
// TCP checksum whose field held the pseudo-header sum (as the kernel leaves
// it) is completed right. (Any other value in the field completes to a
// wrong checksum, which the engine or the receiver then rejects: the port
// cannot tell.)
func FuzzInspectRx(f *testing.F) {
	tcp := seg{seq: 1, ack: 1, id: 1, payload: 3000}.build()
	h, _ := afpacket.PrepareGSO(tcp, 1000)
	f.Add(hdrBytes(h), tcp)
	f.Add(hdrBytes(afpacket.VnetHdr{}), seg{v6: true, payload: 10}.build())
	f.Fuzz(func(t *testing.T, hb, in []byte) {
		frame := append([]byte{}, in...) // inspectRx writes; the input must stay as it was
		r, err := inspectRx(hb, frame)
		if err != nil {
			return
		}
		if r.gso != 0 && r.segments < 1 {
			t.Fatalf("%+v", r)
		}
		p, perr := afpacket.ParseTCP(in)
		if perr != nil || !r.completed {
			return
		}
		field := binary.BigEndian.Uint16(in[p.L4+16:])
		if ps := csum(nil, pseudoSum(in, p)); field != ps && !(field == 0 && ps == 0xffff) {
			return
		}
		if !tcpSumOK(frame, p) {
			t.Fatalf("completed TCP checksum is wrong")
		}
	})
}

// pseudoSum is the TCP pseudo-header's sum (unfolded) of the parsed frame.
func pseudoSum(f []byte, p afpacket.TCPFrame) uint32 {
	if p.V6 {
		return sumWords(f[p.L3+8:p.L3+40], 0) + 6 + uint32(p.End-p.L4)
	}
	return sumWords(f[p.L3+12:p.L3+20], 0) + 6 + uint32(p.End-p.L4)
}

// tcpSumOK checks the TCP checksum alone (not the IPv4 header's).
func tcpSumOK(f []byte, p afpacket.TCPFrame) bool {
	return csum(f[p.L4:p.End], pseudoSum(f, p)) == 0xffff
}
