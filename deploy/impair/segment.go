package impair

import "github.com/tcpinc/tcpinc/afpacket"

// vnetHdrLen is the size of struct virtio_net_hdr that PACKET_VNET_HDR puts
// before every frame.
const vnetHdrLen = afpacket.VnetHdrLen

// maxSegments bounds the segments one super-segment is cut into (a GRO
// super-segment of 64 KiB at an MSS of 536 makes 123); a larger count goes
// out whole and the kernel cuts it.
const maxSegments = 256

// segmenter cuts TCP super-segments into wire-sized frames before they are
// written, so that the kernel does not segment the bump's writes.
//
// Left to the kernel, a super-segment written to a veth whose peer runs GRO
// comes out of order: GSO (skb_segment) moves the socket's ownership of the
// skb to the last segment only, the veth keeps that reference for GRO
// (skb_prepare_for_gro), and GRO then takes the last segment for another
// flow than the segments before it (gro_list_prepare compares skb->sk). When
// the last segment is short or carries PSH, it is delivered at once, while
// the rest waits in GRO for the end of the NAPI poll: it overtakes the
// segments before it. Frames written one by one all carry the socket's
// reference alike: GRO keeps them in one flow, in order.
type segmenter struct {
	buf    []byte
	out    [][]byte
	sizes  []int
	frames [][]byte
}

func newSegmenter() *segmenter {
	return &segmenter{
		buf:    make([]byte, maxSegments*(vnetHdrLen+256)+65536),
		out:    make([][]byte, maxSegments),
		sizes:  make([]int, maxSegments),
		frames: make([][]byte, maxSegments),
	}
}

// split returns the frames to write for v (a virtio_net_hdr and its frame),
// in order: v itself, unless it is a TCP super-segment; then its segments,
// each with a zeroed virtio_net_hdr (no GSO) and complete checksums, and cut
// is true. The frames stay valid until the next call.
func (s *segmenter) split(v []byte) (frames [][]byte, cut bool) {
	s.frames[0] = v
	whole := s.frames[:1]
	var h afpacket.VnetHdr
	if h.Decode(v) != nil || !h.IsGSO() || h.GSOSize == 0 {
		return whole, false
	}
	f := v[vnetHdrLen:]
	p, err := afpacket.ParseTCP(f)
	if err != nil && !p.Routed {
		return whole, false // not ours to judge: the kernel segments it or drops it
	}
	mss, payload := int(h.GSOSize), p.PayloadLen()
	n := afpacket.Segments(payload, mss)
	if n > maxSegments || n*(vnetHdrLen+p.Payload)+payload > len(s.buf) {
		return whole, false
	}
	at := 0
	for i := range n {
		clear(s.buf[at : at+vnetHdrLen])
		end := at + vnetHdrLen + p.Payload + min(mss, payload-i*mss)
		s.frames[i] = s.buf[at:end]
		s.out[i] = s.buf[at+vnetHdrLen : end]
		at = end
	}
	var k int
	if p.Routed {
		k, err = afpacket.SegmentRouted(f, h, s.out[:n], s.sizes[:n])
	} else {
		k, err = afpacket.Segment(f, mss, s.out[:n], s.sizes[:n])
	}
	if err != nil {
		s.frames[0] = v
		return whole, false
	}
	for i := range k {
		s.frames[i] = s.frames[i][:vnetHdrLen+s.sizes[i]]
	}
	return s.frames[:k], true
}
