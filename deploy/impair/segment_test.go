package impair

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// superSegment builds a TCP super-segment of payload bytes from src, with
// PSH, as a GRO'd or GSO frame arrives: a virtio_net_hdr with the GSO type,
// gso_size mss and a partial checksum in front.
func superSegment(t *testing.T, src packettest.Frame, payload, mss int) []byte {
	t.Helper()
	p := make([]byte, payload)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	f := src
	f.Dst = packettest.HostB4
	if src.Src.Is6() {
		f.Dst = packettest.HostB6
	}
	f.TCP = &packettest.TCP{SrcPort: 40000, DstPort: 5201, Seq: 0xfffff000, Ack: 77, Flags: packettest.ACK | packettest.PSH,
		Window: 500, Options: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, Payload: p}
	b := f.Bytes()
	h, err := afpacket.PrepareGSO(b, mss)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, vnetHdrLen, vnetHdrLen+len(b))
	if err := h.Encode(v); err != nil {
		t.Fatal(err)
	}
	return append(v, b...)
}

// A super-segment goes out as its segments, each a plain frame (a zeroed
// virtio_net_hdr: no GSO for the kernel to do) with complete checksums,
// consecutive sequence numbers and PSH on the last only; the super-segment
// itself is not changed (a duplicate is cut from it again). Any other frame
// goes out as it came.
func TestSplitSuperSegment(t *testing.T) {
	s := newSegmenter()
	for _, src := range []packettest.Frame{{Src: packettest.HostA4, DF: true}, {Src: packettest.HostA6}} {
		const payload, mss = 10*1448 + 52, 1448
		v := superSegment(t, src, payload, mss)
		orig := append([]byte{}, v...)
		for round := range 2 {
			frames, cut := s.split(v)
			if !cut || len(frames) != 11 {
				t.Fatalf("%v: %d frames, cut %v; want 11 segments", src.Src, len(frames), cut)
			}
			var joined []byte
			for i, fr := range frames {
				if !bytes.Equal(fr[:vnetHdrLen], make([]byte, vnetHdrLen)) {
					t.Fatalf("segment %d: virtio_net_hdr %x, want zero", i, fr[:vnetHdrLen])
				}
				f := fr[vnetHdrLen:]
				p, err := afpacket.ParseTCP(f)
				if err != nil || p.End != len(f) || !afpacket.TCPChecksumOK(f, p) {
					t.Fatalf("segment %d: %v, end %d of %d, checksums ok %v", i, err, p.End, len(f), err == nil && afpacket.TCPChecksumOK(f, p))
				}
				if seq := binary.BigEndian.Uint32(f[p.L4+4:]); seq != 0xfffff000+uint32(len(joined)) {
					t.Fatalf("segment %d: seq %#x", i, seq)
				}
				if psh := f[p.L4+13]&packettest.PSH != 0; psh != (i == len(frames)-1) {
					t.Fatalf("segment %d of %d: PSH %v", i, len(frames), psh)
				}
				joined = append(joined, f[p.Payload:]...)
			}
			if len(joined) != payload || !bytes.Equal(joined, orig[len(orig)-payload:]) {
				t.Fatalf("round %d: payloads do not join to the original's", round)
			}
			if !bytes.Equal(v, orig) {
				t.Fatal("split changed the super-segment")
			}
		}
	}
	// A frame within its MSS, an ARP frame, a short buffer: as they came.
	one := superSegment(t, packettest.Frame{Src: packettest.HostA4}, 100, 1448)
	for _, v := range [][]byte{one, withVnet(0, make([]byte, 60)), {1, 2, 3}} {
		if frames, cut := s.split(v); cut || len(frames) != 1 || &frames[0][0] != &v[0] || len(frames[0]) != len(v) {
			t.Errorf("frame of %d bytes: %d frames, cut %v; want it as it came", len(v), len(frames), cut)
		}
	}
}
