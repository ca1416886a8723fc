package xsk

import (
	"net/netip"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// The classifier tests' frames, built layer by layer with
// appliance/packet/packettest (the project's one frame builder; these
// names keep the case tables short). The classifier reads no checksums.

// ether builds an Ethernet frame; each tag is a (TPID, TCI) pair inserted
// after the source address.
func ether(etype uint16, payload []byte, tags ...[2]uint16) []byte {
	f := packettest.Frame{EtherType: etype, L4: payload}
	for _, t := range tags {
		f.Tags = append(f.Tags, packettest.Tag{TPID: t[0], TCI: t[1]})
	}
	return f.Bytes()
}

type ip4Opts struct {
	options  []byte // IPv4 options, padded by the caller to 4 bytes
	fragOff  uint16 // in 8-byte units
	moreFrag bool
	version  uint8 // 0 means 4
	ihl      uint8 // 0 means computed
}

// ipv4 is an IPv4 datagram; a version or IHL set in o overrides the right
// one (a malformed header).
func ipv4(src, dst netip.Addr, proto uint8, payload []byte, o ip4Opts) []byte {
	b := packettest.Frame{Src: src, Dst: dst, Proto: proto, L4: payload, IPv4Options: o.options,
		FragOffset: o.fragOff, MoreFragments: o.moreFrag}.Bytes()[14:]
	if o.version != 0 {
		b[0] = o.version<<4 | b[0]&0x0f
	}
	if o.ihl != 0 {
		b[0] = b[0]&0xf0 | o.ihl
	}
	return b
}

func ipv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	return packettest.Frame{Src: src, Dst: dst, Proto: next, L4: payload}.Bytes()[14:]
}

const (
	tcpFIN = packettest.FIN
	tcpSYN = packettest.SYN
	tcpRST = packettest.RST
	tcpPSH = packettest.PSH
	tcpACK = packettest.ACK
)

func tcp(sport, dport uint16, flags uint8, payload []byte) []byte {
	return (&packettest.TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Ack: 2000, Flags: flags, Window: 65535, Payload: payload}).Bytes()
}

func udp(sport, dport uint16, payload []byte) []byte { return packettest.UDP(sport, dport, payload) }

// arpRequest is an Ethernet ARP who-has payload.
func arpRequest(sender, target netip.Addr) []byte { return packettest.ARP(sender, target) }

// icmpMsg is an ICMP (type 8) or ICMPv6 (type 128) echo request, an ICMPv6
// neighbour solicitation (type 135), or another informational message.
func icmpMsg(typ uint8, body []byte) []byte { return packettest.ICMP(typ, 0, 0x00010001, body) }

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

// icmpErr is an ICMP or ICMPv6 error message: type, code, checksum, four
// bytes (the next-hop MTU 1280 for a PTB) and the quoted packet.
func icmpErr(typ, code uint8, quoted []byte) []byte { return packettest.ICMP(typ, code, 1280, quoted) }
