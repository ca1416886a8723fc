package afpacket

import (
	"encoding/binary"
	"errors"
)

// VnetHdrLen is the size of struct virtio_net_hdr (include/uapi/linux/virtio_net.h),
// the header a PACKET_VNET_HDR socket puts in front of every frame.
const VnetHdrLen = 10

// Flags of VnetHdr.Flags.
const (
	// FlagNeedsCsum: the L4 checksum is partial (the skb's CHECKSUM_PARTIAL).
	// The field at CsumStart+CsumOffset holds the folded pseudo-header sum;
	// summing from CsumStart to the end completes it.
	FlagNeedsCsum = 1
	// FlagDataValid: the kernel has verified the checksums (CHECKSUM_UNNECESSARY).
	FlagDataValid = 2
)

// GSO types of VnetHdr.GSOType.
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	// GSOECN is or-ed into the type when the sender set CWR (the kernel's
	// SKB_GSO_TCP_ECN): segmentation keeps CWR on the first segment only.
	GSOECN = 0x80
)

// VnetHdr is struct virtio_net_hdr. On a packet socket the fields are in the
// host's byte order (the legacy virtio layout the kernel uses there).
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // bytes of headers (Ethernet to end of TCP) before the payload
	GSOSize    uint16 // payload bytes per segment (the MSS) when GSOType is not GSONone
	CsumStart  uint16 // offset of the L4 header from the frame's start
	CsumOffset uint16 // offset of the checksum field within the L4 header (16 for TCP)
}

var errShortVnet = errors.New("afpacket: buffer shorter than a virtio_net_hdr")

// Decode reads h from the first VnetHdrLen bytes of b.
func (h *VnetHdr) Decode(b []byte) error {
	if len(b) < VnetHdrLen {
		return errShortVnet
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
	return nil
}

// Encode writes h into the first VnetHdrLen bytes of b.
func (h *VnetHdr) Encode(b []byte) error {
	if len(b) < VnetHdrLen {
		return errShortVnet
	}
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
	return nil
}

// IsGSO reports whether h describes a TCP super-segment (more than one
// segment's payload, to be cut at GSOSize).
func (h *VnetHdr) IsGSO() bool {
	t := h.GSOType &^ GSOECN
	return t == GSOTCPv4 || t == GSOTCPv6
}
