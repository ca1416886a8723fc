// Package packettest builds Ethernet frames for tests: VLAN tags, IPv4 with
// options, IPv6 with extension headers, TCP with options, UDP and ICMP, with
// correct lengths and checksums computed by a plain reference implementation
// (RefChecksum), independent of package packet's fast one.
//
//	frame := packettest.Frame{
//		Src: packettest.HostA4, Dst: packettest.HostB4,
//		TCP: &packettest.TCP{SrcPort: 40000, DstPort: 80, Flags: packettest.SYN,
//			Options: packettest.MSSOption(1460)},
//	}.Bytes()
package packettest

import (
	"encoding/binary"
	"net/netip"
)

// Documentation addresses (RFC 5737, RFC 3849) for tests.
var (
	HostA4 = netip.MustParseAddr("192.0.2.1")
	HostB4 = netip.MustParseAddr("198.51.100.2")
	HostA6 = netip.MustParseAddr("2001:db8::a")
	HostB6 = netip.MustParseAddr("2001:db8:1::b")
)

// TCP flag bits.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

// Tag is one VLAN tag: TPID 0x8100 (802.1Q) or 0x88a8 (802.1ad) and the TCI.
type Tag struct{ TPID, TCI uint16 }

// Ext is one IPv6 extension header. Proto is its own type (0 hop-by-hop,
// 43 routing, 44 fragment, 60 destination options, 51 AH); Data is what follows
// the next-header and length bytes. Bytes fills in both bytes; Data must make
// the header a multiple of 8 bytes (4 for AH), and is 6 bytes for a fragment.
type Ext struct {
	Proto uint8
	Data  []byte
}

// TCP is a TCP header and payload. Options is padded with zeros to 4 bytes.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window, Urgent   uint16
	Options          []byte
	Payload          []byte
}

// Frame describes a frame to build. The IP version follows Src. With TCP set
// the protocol is TCP; otherwise Proto and the raw L4 bytes are used (with the
// UDP, ICMP or ICMPv6 checksum filled in at its usual offset).
type Frame struct {
	Tags          []Tag
	EtherType     uint16 // only for non-IP frames (Src invalid)
	Src, Dst      netip.Addr
	TTL           uint8 // 64 if zero
	IPv4Options   []byte
	FragOffset    uint16 // IPv4 fragment offset in 8-byte units
	MoreFragments bool   // IPv4 MF flag
	DF            bool   // IPv4 don't-fragment flag (Linux TCP sets it)
	Ext           []Ext
	TCP           *TCP
	Proto         uint8
	L4            []byte
	Padding       int // zero bytes after the datagram (Ethernet padding)
}

// Bytes returns the frame.
func (f Frame) Bytes() []byte {
	b := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1} // dst MAC, src MAC
	for _, t := range f.Tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	if !f.Src.IsValid() {
		b = binary.BigEndian.AppendUint16(b, f.EtherType)
		b = append(b, f.L4...)
		return append(b, make([]byte, f.Padding)...)
	}
	proto, l4 := f.Proto, f.L4
	if f.TCP != nil {
		proto, l4 = 6, f.TCP.Bytes()
	}
	ttl := f.TTL
	if ttl == 0 {
		ttl = 64
	}
	whole := f.FragOffset == 0 && !f.MoreFragments && !hasFragExt(f.Ext)
	if whole {
		l4 = withL4Checksum(f.Src, f.Dst, proto, l4)
	}
	if f.Src.Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		opts := pad4(f.IPv4Options)
		h := make([]byte, 20, 20+len(opts))
		h[0] = 0x40 | byte((20+len(opts))/4)
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(opts)+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		frag := f.FragOffset & 0x1fff
		if f.MoreFragments {
			frag |= 0x2000
		}
		if f.DF {
			frag |= 0x4000
		}
		binary.BigEndian.PutUint16(h[6:], frag)
		h[8], h[9] = ttl, proto
		s, d := f.Src.As4(), f.Dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		h = append(h, opts...)
		binary.BigEndian.PutUint16(h[10:], RefChecksum(h))
		b = append(b, h...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		var ext []byte
		for i, e := range f.Ext {
			next := proto
			if i+1 < len(f.Ext) {
				next = f.Ext[i+1].Proto
			}
			n := byte(0)
			switch e.Proto {
			case 44:
			case 51:
				n = byte((2+len(e.Data))/4 - 2)
			default:
				n = byte((2+len(e.Data))/8 - 1)
			}
			ext = append(ext, next, n)
			ext = append(ext, e.Data...)
		}
		first := proto
		if len(f.Ext) > 0 {
			first = f.Ext[0].Proto
		}
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+len(l4)))
		h[6], h[7] = first, ttl
		s, d := f.Src.As16(), f.Dst.As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		b = append(append(b, h...), ext...)
	}
	b = append(b, l4...)
	return append(b, make([]byte, f.Padding)...)
}

func hasFragExt(ext []Ext) bool {
	for _, e := range ext {
		if e.Proto == 44 {
			return true
		}
	}
	return false
}

func pad4(b []byte) []byte {
	out := append([]byte(nil), b...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	return out
}

// Bytes returns the TCP header and payload, the checksum left zero
// (Frame.Bytes fills it in).
func (t *TCP) Bytes() []byte {
	opts := pad4(t.Options)
	h := make([]byte, 20, 20+len(opts)+len(t.Payload))
	binary.BigEndian.PutUint16(h[0:], t.SrcPort)
	binary.BigEndian.PutUint16(h[2:], t.DstPort)
	binary.BigEndian.PutUint32(h[4:], t.Seq)
	binary.BigEndian.PutUint32(h[8:], t.Ack)
	h[12] = byte((20+len(opts))/4) << 4
	h[13] = t.Flags
	binary.BigEndian.PutUint16(h[14:], t.Window)
	binary.BigEndian.PutUint16(h[18:], t.Urgent)
	h = append(h, opts...)
	return append(h, t.Payload...)
}

// withL4Checksum returns a copy of l4 with its checksum field set, for TCP,
// UDP, ICMP and ICMPv6; other protocols are returned unchanged.
func withL4Checksum(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	off := map[uint8]int{6: 16, 17: 6, 1: 2, 58: 2}
	o, ok := off[proto]
	if !ok || len(l4) < o+2 {
		return l4
	}
	out := append([]byte(nil), l4...)
	out[o], out[o+1] = 0, 0
	var c uint16
	if proto == 1 {
		c = RefChecksum(out)
	} else {
		c = RefChecksum(Pseudo(src, dst, proto, len(out)), out)
		if c == 0 && proto == 17 {
			c = 0xffff
		}
	}
	binary.BigEndian.PutUint16(out[o:], c)
	return out
}

// Pseudo returns the pseudo-header bytes of RFC 9293 §3.1 (IPv4) or
// RFC 8200 §8.1 (IPv6) for an upper-layer packet of the given length.
func Pseudo(src, dst netip.Addr, proto uint8, length int) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		p := append(s[:], d[:]...)
		p = append(p, 0, proto)
		return binary.BigEndian.AppendUint16(p, uint16(length))
	}
	s, d := src.As16(), dst.As16()
	p := append(s[:], d[:]...)
	p = binary.BigEndian.AppendUint32(p, uint32(length))
	return append(p, 0, 0, 0, proto)
}

// RefChecksum is the textbook Internet checksum (RFC 1071) of the
// concatenation of parts: 16-bit big-endian words summed in 32 bits, an odd
// final byte padded with zero, carries folded, complemented. Slow and obvious
// on purpose: it is the reference the fast code is tested against.
func RefChecksum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// UDP returns a UDP header (length set, checksum left for Frame.Bytes) and payload.
func UDP(srcPort, dstPort uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], srcPort)
	binary.BigEndian.PutUint16(h[2:], dstPort)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// ICMP returns an ICMP or ICMPv6 message: type, code, checksum (filled by
// Frame.Bytes), the 4-byte rest-of-header word, and the body (for error
// messages, the quoted datagram: see Quote).
func ICMP(typ, code uint8, rest uint32, body []byte) []byte {
	h := []byte{typ, code, 0, 0}
	h = binary.BigEndian.AppendUint32(h, rest)
	return append(h, body...)
}

// Quote returns the IP datagram of frame (which Bytes built, without tags)
// truncated to n bytes of it, as an ICMP error quotes it.
func Quote(frame []byte, n int) []byte {
	d := frame[14:]
	if n < len(d) {
		d = d[:n]
	}
	return append([]byte(nil), d...)
}

// MSSOption returns an MSS option.
func MSSOption(mss uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{2, 4}, mss)
}

// TimestampOption returns NOP, NOP, Timestamps (the usual 12-byte layout).
func TimestampOption(val, ecr uint32) []byte {
	b := []byte{1, 1, 8, 10}
	b = binary.BigEndian.AppendUint32(b, val)
	return binary.BigEndian.AppendUint32(b, ecr)
}

// ARP returns the body of an Ethernet ARP request (who has target? tell
// sender), for a Frame with EtherType 0x0806.
func ARP(sender, target netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 1} // Ethernet, IPv4, request
	b = append(b, 2, 0, 0, 0, 0, 1)     // the sender's MAC: Frame's source
	s, t := sender.As4(), target.As4()
	b = append(b, s[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, t[:]...)
}

// Fragments cuts frame, which holds a whole IP datagram (as Bytes builds
// it: VLAN tags allowed), into fragments carrying chunk bytes of data each
// (a multiple of 8), as a router (IPv4) or the sending host (IPv6: a
// Fragment header right after the fixed header) would; id is the
// identification (its low 16 bits for IPv4). It panics on a frame that is
// not IP.
func Fragments(frame []byte, chunk int, id uint32) [][]byte {
	l3 := 12
	for et := binary.BigEndian.Uint16(frame[l3:]); et == 0x8100 || et == 0x88a8 || et == 0x9100; et = binary.BigEndian.Uint16(frame[l3:]) {
		l3 += 4
	}
	et := binary.BigEndian.Uint16(frame[l3:])
	l3 += 2
	var head, data []byte
	v6 := et == 0x86dd
	switch {
	case v6:
		end := l3 + 40 + int(binary.BigEndian.Uint16(frame[l3+4:]))
		head, data = frame[:l3+40], frame[l3+40:end]
	case et == 0x0800:
		ihl := int(frame[l3]&0x0f) * 4
		end := l3 + int(binary.BigEndian.Uint16(frame[l3+2:]))
		head, data = frame[:l3+ihl], frame[l3+ihl:end]
	default:
		panic("packettest: Fragments of a frame that is not IP")
	}
	var out [][]byte
	for o := 0; o < len(data); o += chunk {
		n := min(chunk, len(data)-o)
		more := o+n < len(data)
		f := append([]byte(nil), head...)
		ip := f[l3:]
		if v6 {
			nh := ip[6]
			ip[6] = 44
			fh := make([]byte, 8)
			fh[0] = nh
			fo := uint16(o)
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fo)
			binary.BigEndian.PutUint32(fh[4:], id)
			f = append(f, fh...)
			f = append(f, data[o:o+n]...)
			binary.BigEndian.PutUint16(f[l3+4:], uint16(8+n))
		} else {
			fo := uint16(o / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(ip[4:], uint16(id))
			binary.BigEndian.PutUint16(ip[6:], fo)
			f = append(f, data[o:o+n]...)
			ip = f[l3:]
			binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-l3))
			ihl := int(ip[0]&0x0f) * 4
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], RefChecksum(ip[:ihl]))
		}
		out = append(out, f)
	}
	return out
}
