package afpacketport

import (
	"bytes"
	"encoding/binary"

	"github.com/tcpinc/tcpinc/afpacket"
	"github.com/tcpinc/tcpinc/bump"
)

// Merging adjacent one-segment frames of a TCP flow into one super-frame
// that the kernel cuts back into exactly those frames.
//
// The kernel's segmentation (tcp_gso_segment in net/ipv4/tcp_offload.c,
// inet_gso_segment and ipv6_gso_segment under it) gives every segment a
// copy of the super-frame's headers, then changes: the sequence number
// (advanced by gso_size per segment), FIN and PSH (kept on the last segment
// only), CWR (kept on the first only), the IP length, the IPv4 ID
// (advanced by one per segment, as no FIXEDID type is set) and header
// checksum, and the TCP checksum (computed anew). afpacket.Segment does the
// same in software. A run of frames is merged only if those rules give
// every frame back byte for byte, except for the IPv4 ID: every frame must
// have DF set, which makes it an atomic datagram whose ID means nothing
// (RFC 6864 §4.1), so the kernel may number the segments as it does. (The
// engine gives all its frames of a flow one ID, appliance/engine/wire.go;
// requiring consecutive IDs would merge none of them.) Everything else
// about the frames must be equal, and every frame's checksums must already
// be right (the kernel computes new ones, so a merged frame with a wrong
// checksum would arrive repaired), unless the frame's sender left its TCP
// checksum to the port (bump.CsumPartial): such a frame has none to keep.

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpURG = 0x20
	tcpCWR = 0x80

	ipv4DF = 0x4000
	// maxIPLen is the most an IPv4 total length or an IPv6 payload length
	// (plus the fixed header, which the kernel's GSO also caps at 64 KiB
	// without BIG TCP) says.
	maxIPLen = 0xffff
)

// run is a merge in progress: adjacent frames head, ..., last of one flow
// whose segmentation at mss payload bytes reproduces them.
type run struct {
	head    []byte
	p       afpacket.TCPFrame
	flags   uint8  // head's TCP flags
	mss     int    // head's payload length: every segment's but the last
	nextSeq uint32 // sequence number the next frame must have
	ipLen   int    // the merged packet's IP length so far
	n       int    // frames in the run
	lastFl  uint8  // FIN and PSH of the last frame
	closed  bool   // the last frame ended the run (shorter than mss, or FIN or PSH)
	partial bool   // head's TCP checksum is the port's to compute (bump.CsumPartial)
}

// start begins a run at the frame f. It reports false when f cannot begin a
// merge (any other frame is sent as it is). Checksums are checked only once
// a second frame fits (join), so a frame that stays alone costs no sum.
// partial: f's TCP checksum is not filled in (bump.CsumPartial).
func (r *run) start(f []byte, partial bool) bool {
	p, err := afpacket.ParseTCP(f)
	if err != nil || p.End != len(f) || p.PayloadLen() == 0 {
		return false
	}
	fl := f[p.L4+13]
	if fl&(tcpSYN|tcpRST|tcpURG|tcpFIN|tcpPSH) != 0 {
		// FIN or PSH may only be on the last segment: such a head is alone.
		return false
	}
	if !p.V6 {
		if p.L4-p.L3 != 20 || binary.BigEndian.Uint16(f[p.L3+6:])&ipv4DF == 0 {
			return false // options, or DF clear
		}
	}
	*r = run{
		head: f, p: p, flags: fl, mss: p.PayloadLen(),
		nextSeq: binary.BigEndian.Uint32(f[p.L4+4:]) + uint32(p.PayloadLen()),
		ipLen:   p.End - p.L3, n: 1, partial: partial,
	}
	return true
}

// join adds f to the run if the segmentation of the merged frame gives f
// back exactly as the frame after the current last one. partial: f's TCP
// checksum is not filled in, and nothing to check.
func (r *run) join(f []byte, partial bool) bool {
	if r.closed {
		return false
	}
	p, err := afpacket.ParseTCP(f)
	if err != nil || p.End != len(f) || p.L3 != r.p.L3 || p.L4 != r.p.L4 || p.Payload != r.p.Payload || p.V6 != r.p.V6 {
		return false
	}
	n := p.PayloadLen()
	if n == 0 || n > r.mss || r.ipLen+n > maxIPLen || r.p.L3+r.ipLen+n > bump.MaxSuperFrame {
		return false
	}
	h, l3, l4 := r.head, p.L3, p.L4
	// Ethernet and VLAN headers.
	if !bytes.Equal(f[:l3], h[:l3]) {
		return false
	}
	// IP: everything but the lengths, the IPv4 ID (of an atomic
	// datagram: DF is equal, so set) and the header checksum.
	if p.V6 {
		if !bytes.Equal(f[l3:l3+4], h[l3:l3+4]) || !bytes.Equal(f[l3+6:l4], h[l3+6:l4]) {
			return false
		}
	} else {
		if !bytes.Equal(f[l3:l3+2], h[l3:l3+2]) || !bytes.Equal(f[l3+6:l3+10], h[l3+6:l3+10]) ||
			!bytes.Equal(f[l3+12:l4], h[l3+12:l4]) {
			return false
		}
	}
	// TCP: ports, ack, data offset and reserved bits, window, urgent
	// pointer and options equal; the sequence number follows on.
	if !bytes.Equal(f[l4:l4+4], h[l4:l4+4]) || !bytes.Equal(f[l4+8:l4+13], h[l4+8:l4+13]) ||
		!bytes.Equal(f[l4+14:l4+16], h[l4+14:l4+16]) || !bytes.Equal(f[l4+18:p.Payload], h[l4+18:p.Payload]) ||
		binary.BigEndian.Uint32(f[l4+4:]) != r.nextSeq {
		return false
	}
	// Flags: the head's without CWR, plus FIN or PSH, which end the run.
	fl := f[l4+13]
	if fl&^(tcpFIN|tcpPSH) != r.flags&^tcpCWR {
		return false
	}
	// Last, the sums: the kernel writes new checksums, so only frames
	// whose own are right may go through it.
	if r.n == 1 && !r.partial && !afpacket.TCPChecksumOK(h, r.p) {
		r.closed = true
		return false
	}
	if !partial && !afpacket.TCPChecksumOK(f, p) {
		return false
	}
	r.n++
	r.ipLen += n
	r.nextSeq += uint32(n)
	r.lastFl = fl & (tcpFIN | tcpPSH)
	r.closed = n < r.mss || r.lastFl != 0
	return true
}

// payload is the TCP payload of a frame join accepted.
func (r *run) payload(f []byte) []byte { return f[r.p.Payload:] }

// finish turns buf, which holds the head followed by the payloads of the
// joined frames (len(buf) = the merged frame's length), into the super-frame
// and returns its virtio_net_hdr: the last frame's FIN and PSH go on the
// head, then afpacket.PrepareGSO sets the lengths and partial checksum.
func (r *run) finish(buf []byte) (afpacket.VnetHdr, error) {
	buf[r.p.L4+13] = r.flags | r.lastFl
	return afpacket.PrepareGSO(buf, r.mss)
}

// Frames is the input of MergeFrames: a batch of frames in the order
// they are to leave.
//
// MergeFrames merges each run of adjacent frames that one super-frame's
// segmentation reproduces (see run) into that super-frame, in order, and
// calls emit for every frame to send: a merged one with its GSO header and
// the number of frames it stands for, any other frame as it was with a zero
// header and 1. Merged frames are built in scratch, which must hold
// afpacket.MaxFrame bytes; emit must use the frame before it returns.
//
// It is the logic of Port.Kick without the slots, for the tests and
// fuzzing; Kick does not copy, it sends the head and the payloads from
// their own slots in one message (scatter-gather).
func MergeFrames(frames [][]byte, scratch []byte, emit func(f []byte, h afpacket.VnetHdr, n int)) {
	var r run
	for i := 0; i < len(frames); {
		f := frames[i]
		j := i + 1
		if r.start(f, false) {
			for j < len(frames) && r.join(frames[j], false) {
				j++
			}
		}
		if j-i < 2 {
			emit(f, afpacket.VnetHdr{}, 1)
			i = j
			continue
		}
		m := copy(scratch, f)
		for _, g := range frames[i+1 : j] {
			m += copy(scratch[m:], r.payload(g))
		}
		h, err := r.finish(scratch[:m])
		if err != nil { // cannot happen: join kept the length in range
			for _, g := range frames[i:j] {
				emit(g, afpacket.VnetHdr{}, 1)
			}
		} else {
			emit(scratch[:m], h, j-i)
		}
		i = j
	}
}
