package packet

import "encoding/binary"

// Fragment describes the IP fragment a Packet holds (IsFragment).
type Fragment struct {
	// ID is the identification: 16 bits for IPv4 (RFC 791 §3.1), 32 for
	// IPv6 (RFC 8200 §4.5).
	ID uint32
	// Offset is where this fragment's data sits in the fragmentable part
	// of the original datagram, in bytes; More is the M (MF) flag.
	Offset int
	More   bool
	// Proto is the IPv4 protocol, or the Next Header field of the IPv6
	// Fragment header (the first header of the fragmentable part).
	Proto uint8
	// Head is the frame offset where the headers every fragment repeats
	// end: the end of the IPv4 header, or the IPv6 Fragment header's
	// offset. Data is where this fragment's data starts (Head for IPv4,
	// Head+8 for IPv6); the data runs to End().
	Head, Data int
	// PrevNext is the frame offset of the Next Header field that names the
	// Fragment header (IPv6 only; 0 for IPv4).
	PrevNext int
}

// Fragment returns the fragment fields of an IP fragment. ok is false for
// packets that are not fragments, and for those Decode rejected before
// reaching the fragment fields.
func (p *Packet) Fragment() (f Fragment, ok bool) {
	if p.flags&flagFragment == 0 {
		return f, false
	}
	b := p.b
	switch p.version {
	case 4:
		fo := binary.BigEndian.Uint16(b[p.l3+6:])
		hl := int(b[p.l3]&0x0f) * 4
		return Fragment{
			ID:     uint32(binary.BigEndian.Uint16(b[p.l3+4:])),
			Offset: int(fo&0x1fff) * 8, More: fo&0x2000 != 0,
			Proto: b[p.l3+9], Head: p.l3 + hl, Data: p.l3 + hl,
		}, true
	case 6:
		// Walk again to the Fragment header (walkIPv6 checked the chain
		// up to it).
		prev, nh, off := p.l3+6, b[p.l3+6], p.l3+ipv6HeaderLen
		for nh != ProtoFragment {
			if p.end-off < 8 {
				return f, false
			}
			n := (int(b[off+1]) + 1) * 8
			if nh == ProtoAH {
				n = (int(b[off+1]) + 2) * 4
			}
			switch nh {
			case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoMobility, ProtoHIP, ProtoShim6, ProtoAH:
			default:
				return f, false
			}
			prev, nh, off = off, b[off], off+n
		}
		if p.end-off < 8 {
			return f, false
		}
		fo := binary.BigEndian.Uint16(b[off+2:])
		return Fragment{
			ID:     binary.BigEndian.Uint32(b[off+4:]),
			Offset: int(fo & 0xfff8), More: fo&1 != 0,
			Proto: b[off], Head: off, Data: off + 8, PrevNext: prev,
		}, true
	}
	return f, false
}

// FragProgress tells when every fragment of a datagram has gone by, for
// state kept per datagram without its data: it sums the data lengths and
// learns the datagram's length from the last fragment. Duplicates or
// overlaps make it end early; that only forgets the state sooner.
type FragProgress struct {
	seen  int
	total int // 0 until the last fragment (More clear) went by
}

// Add counts a fragment of n data bytes and reports whether the datagram
// is complete.
func (f *FragProgress) Add(fr Fragment, n int) bool {
	f.seen += n
	if !fr.More {
		f.total = fr.Offset + n
	}
	return f.total > 0 && f.seen >= f.total
}
