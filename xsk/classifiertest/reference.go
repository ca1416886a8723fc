package classifiertest

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// icmpv4Errors are the ICMPv4 error message types (RFC 1122 §3.2.2); the
// ICMPv6 ones are 1-4 (RFC 4443 §2.1).
var icmpv4Errors = []byte{3, 4, 5, 11, 12}

// ipv6ExtHeaders are the next-header values that may sit between the IPv6
// header and TCP (RFC 8200 §4 and the IANA list).
var ipv6ExtHeaders = []byte{0, 43, 44, 51, 60, 135, 139, 140, 253, 254}

// Classify is the classifier's rules in plain Go, byte offset by byte
// offset: the reason a frame arriving at a port whose fast path is on (or
// off) lands in, given which flows the map lists, the other port's MTU
// being PeerMTU. It is the oracle the fuzz targets hold the BPF program and
// the in-memory bump to; the table holds it to the rules.
func Classify(f []byte, fastPath bool, listed func(Flow) bool) Reason {
	if !fastPath {
		return AllToXSK
	}
	et, off, r := ethernet(f)
	if r != "" {
		return r
	}
	var src, dst netip.Addr
	switch et {
	case ethIPv4:
		src, dst, off, r = ipv4(f, off)
	case ethIPv6:
		src, dst, off, r = ipv6(f, off)
	default:
		r = NonTCP
	}
	if r == NonTCP && len(f) > PeerMTU+18 {
		return Oversize
	}
	if r != "" {
		return r
	}
	return tcp(f, off, src, dst, listed)
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

func isVLAN(et uint16) bool { return et == 0x8100 || et == 0x88a8 }

// ethernet returns the ethertype after up to two VLAN tags and the offset
// of what follows, or the reason the frame ends there.
func ethernet(f []byte) (et uint16, off int, r Reason) {
	if len(f) < 14 {
		return 0, 0, Truncated
	}
	et, off = be16(f[12:]), 14
	for tag := 0; tag < 2 && isVLAN(et); tag++ {
		if len(f) < off+4 {
			return 0, 0, Truncated
		}
		et, off = be16(f[off+2:]), off+4
	}
	if isVLAN(et) {
		return 0, 0, Unparsed
	}
	return et, off, ""
}

// ipv4 returns the addresses of an unfragmented TCP datagram at f[off:] and
// the offset of its TCP header, or the reason the frame ends here.
func ipv4(f []byte, off int) (src, dst netip.Addr, tcpOff int, r Reason) {
	if len(f) < off+20 {
		return src, dst, 0, Truncated
	}
	ip := f[off:]
	if ip[0]>>4 != 4 {
		return src, dst, 0, Unparsed
	}
	ihl := int(ip[0]&0x0f) * 4
	frag := be16(ip[6:])&0x3fff != 0 // MF or an offset
	if ip[9] == 1 {
		switch {
		case ihl < 20:
			return src, dst, 0, NonTCP
		case frag:
			return src, dst, 0, Fragment
		case len(ip) > ihl && slices.Contains(icmpv4Errors, ip[ihl]):
			return src, dst, 0, ICMPError
		}
		return src, dst, 0, NonTCP
	}
	switch {
	case ip[9] == 51:
		return src, dst, 0, Unparsed // AH: TCP may be inside
	case ip[9] != 6:
		return src, dst, 0, NonTCP
	case ihl < 20:
		return src, dst, 0, Unparsed
	case frag:
		return src, dst, 0, Fragment
	}
	src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	return src, dst, off + ihl, ""
}

// ipv6 is ipv4 for IPv6: TCP must follow the fixed header.
func ipv6(f []byte, off int) (src, dst netip.Addr, tcpOff int, r Reason) {
	if len(f) < off+40 {
		return src, dst, 0, Truncated
	}
	ip := f[off:]
	if ip[0]>>4 != 6 {
		return src, dst, 0, Unparsed
	}
	switch nh := ip[6]; {
	case nh == 6:
	case slices.Contains(ipv6ExtHeaders, nh):
		return src, dst, 0, IPv6Ext
	case nh == 58 && len(ip) > 40 && (ip[40] >= 1 && ip[40] <= 4 || ip[40] == 137):
		return src, dst, 0, ICMPError
	default:
		return src, dst, 0, NonTCP
	}
	src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	return src, dst, off + 40, ""
}

// tcp classifies the TCP segment at f[off:] from src to dst (an IHL may
// put off past the end).
func tcp(f []byte, off int, src, dst netip.Addr, listed func(Flow) bool) Reason {
	if len(f) < off+20 {
		return Truncated
	}
	seg := f[off:]
	switch {
	case seg[13]&0x02 != 0: // SYN
		return SYN
	case seg[13]&0x05 != 0: // FIN or RST
		return FINRST
	case len(f) > PeerMTU+18:
		return Oversize
	case listed(Flow{netip.AddrPortFrom(src, be16(seg[0:])), netip.AddrPortFrom(dst, be16(seg[2:]))}):
		return FastPath
	}
	return UnknownFlow
}

// Lists reports whether the map listed holds f: a listed-function for
// Classify.
func Lists(listed []Flow) func(Flow) bool {
	return func(f Flow) bool { return slices.Contains(listed, f) }
}
