package afpacketport

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// greWrap puts the IP packet of the frame inner (from seg.build) in GRE
// with a checksum and a key, behind an outer IPv4 header with identification
// id and DF, all checksums complete: a frame as a GRE tunnel sends it.
func greWrap(inner []byte, id uint16) []byte {
	f := []byte{2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
	f = append(f, 0x45, 0, 0, 0, byte(id>>8), byte(id), 0x40, 0, 64, 47, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2)
	f = append(f, 0xa0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 42) // C and K, IPv4, checksum, reserved, key
	f = append(f, inner[14:]...)
	binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
	binary.BigEndian.PutUint16(f[24:], ^csum(f[14:34], 0))
	binary.BigEndian.PutUint16(f[38:], ^csum(f[34:], 0))
	return f
}

// TestReceiveGRETunnel: a TCP super-segment inside GRE (with a checksum
// and a key) as the kernel hands it to the port after GRO coalesced a GRE
// tunnel's segments, with no tunnel device of its own (gre_gro_receive):
// GSO_TCPV4, the partial checksum at the inner TCP header. The port used to
// drop it as malformed; it cuts it into the segments a GRE sender's GSO
// makes, byte for byte (afpacket.SegmentEncap), which the next Receive
// hands over, and their slots come back on Release. (Neither can be made
// to happen on a veth here: the kernel refuses such a header from a packet
// socket, and frames from one reach a veth's NAPI one poll each, which GRO
// never coalesces. So the frame is given to the port's receive step
// directly.)
func TestReceiveGRETunnel(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})

	var want [][]byte
	for i, s := range flowOf(seg{seq: 5000, ack: 9, id: 300}, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 700) {
		want = append(want, greWrap(s.build(), 0x700+uint16(i)))
	}
	// The super-segment: the first segment's headers, every payload; its
	// checksums are the receiver's to finish.
	const hdrs = 14 + 20 + 12 + 20 + 20
	super := bytes.Clone(want[0])
	for _, f := range want[1:] {
		super = append(super, f[hdrs:]...)
	}
	binary.BigEndian.PutUint16(super[16:], uint16(len(super)-14))
	binary.BigEndian.PutUint16(super[48:], uint16(len(super)-46)) // inner IPv4 length
	h := afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, GSOType: afpacket.GSOTCPv4, GSOSize: 1400, CsumStart: hdrs - 20, CsumOffset: 16}
	hb := make([]byte, afpacket.VnetHdrLen)
	if err := h.Encode(hb); err != nil {
		t.Fatal(err)
	}
	if _, err := inspectRx(hb, super); err == nil {
		t.Fatal("inspectRx took a tunnelled super-segment for a frame the worker can have")
	}
	for round := range 3 { // the encap slots come back
		if err := px.cutEncap(hb, super); err != nil {
			t.Fatalf("round %d: the port did not cut the super-segment: %v", round, err)
		}
		got, gso := receiveAll(t, px, len(want))
		if len(got) != len(want) {
			t.Fatalf("round %d: received %d frames, want the %d segments", round, len(got), len(want))
		}
		for i := range want {
			if gso[i] != 0 || !bytes.Equal(got[i], want[i]) {
				t.Fatalf("round %d, frame %d (GSO %d) differs:\n got  %x\n want %x", round, i, gso[i], got[i][:80], want[i][:80])
			}
		}
	}
	if st := px.Stats(); st.RxEncapCut != 3 || len(px.encFree) != encapSlots {
		t.Fatalf("stats %+v, %d encap slots free; want 3 cut, all %d free", st, len(px.encFree), encapSlots)
	}
}

// routedWrap puts a segment routing header (RFC 8754) with segments left
// sl between the IPv6 header and the TCP header of the frame f (from
// seg.build, v6, no VLAN tag), its one segment final, and makes the TCP
// checksum the sender's: over final, not the IPv6 header's destination.
func routedWrap(f []byte, final []byte, sl byte) []byte {
	const l3, l4 = 14, 14 + 40
	srh := append([]byte{6, 2, 4, sl, 0, 0, 0, 0}, final...)
	w := append(append(append([]byte{}, f[:l4]...), srh...), f[l4:]...)
	w[l3+6] = 43
	binary.BigEndian.PutUint16(w[l3+4:], uint16(len(w)-l4))
	tcp := w[l4+len(srh):]
	ps := sumWords(w[l3+8:l3+24], sumWords(final, 0)) + 6 + uint32(len(tcp))
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^csum(tcp, ps))
	return w
}

// TestReceiveRoutedSuperSegment: a TCP super-segment behind an IPv6
// routing header with segments left arrives with the pseudo-header sum of
// its final destination (in the routing header) in its checksum field.
// The port refused it as malformed, and the connection stalled; sent on as
// a super-segment, the kernel's segmentation would keep that sum, but
// PrepareGSO would replace it with the IPv6 header's. So the port cuts it
// into the segments the sender's GSO makes, byte for byte
// (afpacket.SegmentRouted), checksums over the final destination.
func TestReceiveRoutedSuperSegment(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	final := []byte{0xfd, 0x78, 15: 9}
	var want [][]byte
	for _, s := range flowOf(seg{v6: true, seq: 5000, ack: 9}, 1400, 1400, 1400, 700) {
		want = append(want, routedWrap(s.build(), final, 1))
	}
	const hdrs = 14 + 40 + 24 + 20
	super := bytes.Clone(want[0])
	for _, f := range want[1:] {
		super = append(super, f[hdrs:]...)
	}
	binary.BigEndian.PutUint16(super[18:], uint16(len(super)-54))
	tcp := super[hdrs-20:]
	ps := sumWords(super[22:38], sumWords(final, 0)) + 6 + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], csum(nil, ps)) // the partial sum, as the sender left it
	h := afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum, GSOType: afpacket.GSOTCPv6, GSOSize: 1400, CsumStart: hdrs - 20, CsumOffset: 16}
	hb := make([]byte, afpacket.VnetHdrLen)
	if err := h.Encode(hb); err != nil {
		t.Fatal(err)
	}
	if _, err := inspectRx(hb, super); err == nil {
		t.Fatal("inspectRx took a routed super-segment for a frame the worker can have")
	}
	if err := px.cutEncap(hb, super); err != nil {
		t.Fatalf("the port did not cut the super-segment: %v", err)
	}
	got, gso := receiveAll(t, px, len(want))
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want the %d segments", len(got), len(want))
	}
	for i := range want {
		if gso[i] != 0 || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d (GSO %d) differs:\n got  %x\n want %x", i, gso[i], got[i][:100], want[i][:100])
		}
	}
	if st := px.Stats(); st.RxRoutedCut != 1 || st.RxEncapCut != 0 || len(px.encFree) != encapSlots {
		t.Fatalf("stats %+v, %d encap slots free; want 1 routed cut, all %d free", st, len(px.encFree), encapSlots)
	}
}

// TestReceiveCutNoRoom: super-segments the port must cut (here behind a
// routing header with segments left, written by a packet socket with
// their virtio_net_hdr) that come in one batch share the port's encap
// slots, which the worker holds until it releases the segments: three of
// 20 segments each fit the 64 slots, the fourth finds no room. It is
// dropped and counted as that (RxCutNoRoom), not as a malformed frame
// (RxBad), which it is not.
func TestReceiveCutNoRoom(t *testing.T) {
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	y := openSocket(t, nsPkt, "y", afpacket.Options{VnetHdr: true})
	final := []byte{0xfd, 0x78, 15: 9}
	const hdrs, mss = 14 + 40 + 24 + 20, 1000
	var frames []vnetFrame
	for i := range 4 {
		sizes := make([]int, 20)
		for j := range sizes {
			sizes[j] = mss
		}
		var super []byte
		for j, s := range flowOf(seg{v6: true, seq: uint32(1 + i*20*mss), ack: 9}, sizes...) {
			f := routedWrap(s.build(), final, 1)
			if j == 0 {
				super = f
			} else {
				super = append(super, f[hdrs:]...)
			}
		}
		binary.BigEndian.PutUint16(super[18:], uint16(len(super)-54))
		tcp := super[hdrs-20:]
		ps := sumWords(super[22:38], sumWords(final, 0)) + 6 + uint32(len(tcp))
		binary.BigEndian.PutUint16(tcp[16:], csum(nil, ps))
		frames = append(frames, vnetFrame{super, afpacket.VnetHdr{Flags: afpacket.FlagNeedsCsum,
			GSOType: afpacket.GSOTCPv6, GSOSize: mss, CsumStart: hdrs - 20, CsumOffset: 16}})
	}
	writeVnet(t, y, frames)
	time.Sleep(200 * time.Millisecond) // all four in the socket: one batch
	d := make([]bump.Desc, 64)
	n := px.Receive(d)
	st := px.Stats()
	if n != 60 || st.RxRoutedCut != 3 || st.RxCutNoRoom != 1 || st.RxBad != 0 {
		t.Fatalf("received %d frames; stats %+v; want 60 segments, 3 cut, 1 without room, none bad", n, st)
	}
	px.Release(d[:n])
	if len(px.encFree) != encapSlots {
		t.Fatalf("%d of %d encap slots free after the release", len(px.encFree), encapSlots)
	}
}
