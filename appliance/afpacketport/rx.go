package afpacketport

import (
	"encoding/binary"
	"errors"
	"hash/crc32"

	"github.com/tcpinc/tcpinc/afpacket"
)

// rxFrame is what the receive side learned of one frame.
type rxFrame struct {
	gso       uint16 // gso_size of a TCP super-segment, else 0
	segments  int    // segments a super-segment stands for
	completed bool   // a partial checksum was completed
	verified  bool   // the kernel vouches for the checksums (bump.CsumVerified)
}

var errBadGSO = errors.New("afpacketport: a GSO type other than TCP")

// inspectRx checks the virtio_net_hdr hb that came with the frame f and
// completes a partial checksum in f, so that every frame handed to the
// worker carries complete checksums. A TCP frame must pass
// afpacket.CheckTCP; any other frame may not be a super-segment (UDP GSO
// and the like have no Desc to travel in). An error means: drop the frame.
func inspectRx(hb, f []byte) (rxFrame, error) {
	var r rxFrame
	var h afpacket.VnetHdr
	if err := h.Decode(hb); err != nil {
		return r, err
	}
	p, err := afpacket.CheckTCP(&h, f)
	switch {
	case err == afpacket.ErrNotTCP:
		if h.GSOType != afpacket.GSONone {
			return r, errBadGSO
		}
		if h.Flags&afpacket.FlagNeedsCsum != 0 {
			if err := completeOther(&h, f); err != nil {
				return r, err
			}
			r.completed = true
		}
		return r, nil
	case err != nil:
		return r, err
	}
	if h.Flags&afpacket.FlagNeedsCsum != 0 {
		if err := h.CompleteChecksum(f[:p.End]); err != nil {
			return r, err
		}
		r.completed = true
	}
	// A partial sum means the frame never left this machine, or GRO
	// checked each segment it coalesced; DATA_VALID that the kernel
	// checked it (CHECKSUM_UNNECESSARY).
	r.verified = r.completed || h.Flags&afpacket.FlagDataValid != 0
	if h.IsGSO() {
		r.gso = h.GSOSize
		r.segments = afpacket.Segments(p.PayloadLen(), int(h.GSOSize))
	}
	return r, nil
}

// IP protocol numbers with checksums of their own kind.
const (
	protoUDP  = 17
	protoSCTP = 132
)

// completeOther completes the partial checksum of a frame that is not TCP:
// the Internet checksum (UDP, ICMP and the rest), with UDP's zero sent as
// 0xffff (RFC 768; RFC 8200 §8.1), or SCTP's CRC32c (RFC 9260 §6.8), which
// veth offloads too (NETIF_F_SCTP_CRC).
func completeOther(h *afpacket.VnetHdr, f []byte) error {
	proto, end, ok := ipProto(f)
	if !ok {
		return afpacket.ErrMalformed
	}
	f = f[:end]
	start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	if proto == protoSCTP {
		if start >= len(f) || at+4 > len(f) || h.CsumOffset != 8 {
			return afpacket.ErrMalformed
		}
		clear(f[at : at+4])
		binary.LittleEndian.PutUint32(f[at:], crc32.Checksum(f[start:], crc32c))
		h.Flags &^= afpacket.FlagNeedsCsum
		return nil
	}
	return h.CompleteChecksum(f) // a zero sum goes as 0xffff, as UDP needs
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ipProto returns the IP protocol (IPv6: the first next header) of the
// Ethernet frame f (up to two VLAN tags) and where its IP packet ends.
func ipProto(f []byte) (proto uint8, end int, ok bool) {
	et, off, ok := afpacket.EtherType(f)
	if !ok {
		return 0, 0, false
	}
	switch et {
	case 0x0800:
		if len(f) < off+20 {
			return 0, 0, false
		}
		end = off + int(binary.BigEndian.Uint16(f[off+2:]))
		proto = f[off+9]
	case 0x86dd:
		if len(f) < off+40 {
			return 0, 0, false
		}
		end = off + 40 + int(binary.BigEndian.Uint16(f[off+4:]))
		proto = f[off+6]
	default:
		return 0, 0, false
	}
	if end > len(f) {
		return 0, 0, false
	}
	return proto, end, true
}
