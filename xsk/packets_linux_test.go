package xsk

import (
	"encoding/binary"
	"net/netip"
)

// A tiny packet builder for tests only: the project's parser lives in
// appliance/packet; this file builds frames byte by byte so the classifier
// tests do not depend on it. Checksums are left zero: the classifier does
// not look at them.

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
)

// ether builds an Ethernet frame; each tag is a (TPID, TCI) pair inserted
// after the source address.
func ether(etype uint16, payload []byte, tags ...[2]uint16) []byte {
	b := append([]byte{}, macB[:]...)
	b = append(b, macA[:]...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t[0])
		b = binary.BigEndian.AppendUint16(b, t[1])
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	return append(b, payload...)
}

type ip4Opts struct {
	options  []byte // IPv4 options, padded by the caller to 4 bytes
	fragOff  uint16 // in 8-byte units
	moreFrag bool
	version  uint8 // 0 means 4
	ihl      uint8 // 0 means computed
}

func ipv4(src, dst netip.Addr, proto uint8, payload []byte, o ip4Opts) []byte {
	hl := 20 + len(o.options)
	b := make([]byte, hl, hl+len(payload))
	ver, ihl := o.version, o.ihl
	if ver == 0 {
		ver = 4
	}
	if ihl == 0 {
		ihl = uint8(hl / 4)
	}
	b[0] = ver<<4 | ihl
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)))
	ff := o.fragOff & 0x1fff
	if o.moreFrag {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], o.options)
	return append(b, payload...)
}

func ipv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

func tcp(sport, dport uint16, flags uint8, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	binary.BigEndian.PutUint32(b[8:], 2000)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	return append(b, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

// arpRequest is an Ethernet ARP who-has payload.
func arpRequest(sender, target netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	b = append(b, macA[:]...)
	s, t := sender.As4(), target.As4()
	b = append(b, s[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, t[:]...)
}

// icmpEcho is an ICMP (type 8) or ICMPv6 (type 128) echo request or an
// ICMPv6 neighbour solicitation (type 135) body.
func icmpMsg(typ uint8, body []byte) []byte {
	return append([]byte{typ, 0, 0, 0, 0, 1, 0, 1}, body...)
}

// flowKeyOf is the FlowKey of a TCP segment from src:sport to dst:dport.
func flowKeyOf(src, dst netip.Addr, sport, dport uint16) FlowKey {
	k := FlowKey{SrcPort: sport, DstPort: dport}
	if src.Is4() {
		k.Family = 4
		s, d := src.As4(), dst.As4()
		copy(k.Src[:], s[:])
		copy(k.Dst[:], d[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = src.As16(), dst.As16()
	}
	return k
}

// icmpErr is an ICMP or ICMPv6 error message: type, code, a zero checksum,
// four bytes (the next-hop MTU 1280 for a PTB) and the quoted packet.
func icmpErr(typ, code uint8, quoted []byte) []byte {
	return append([]byte{typ, code, 0, 0, 0, 0, 0x05, 0x00}, quoted...)
}
