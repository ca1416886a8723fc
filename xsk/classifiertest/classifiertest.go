// Package classifiertest is the list of the XDP classifier's rules, as a
// table of cases: a frame, the port it arrives on, the fast-path map and
// each port's fast-path switch, and where the frame must go. The same table
// is run against the BPF program (xsk, with BPF_PROG_TEST_RUN on the loaded
// program), the Go reference in this package ([Classify]) and the
// in-memory bump (memport.Bump); beyond the table, fuzz targets hold the
// program (xsk's FuzzClassifier) and memport.Bump (memport's
// FuzzBumpMatchesReference) to Classify on arbitrary frames. The prose in
// xsk's package documentation and docs/architecture.md §3 points here. A
// rule that changes changes here first, and every implementation must
// follow.
//
// The rules, in the order the program applies them (the functions named
// ...Rules below hold the cases of each; Cases adds the switches and the
// map):
//
//  1. Fast path off on the arrival port (Bump.SetPortFastPath): every frame,
//     whatever it is, goes to a worker (AllToXSK). The other port's switch
//     does not matter.
//  2. Ethernet with up to two VLAN tags (802.1Q or 802.1ad, any order); a
//     third tag is Unparsed. Ethertypes other than IPv4 and IPv6 (ARP,
//     LLDP, PPPoE, MPLS, a tag with another TPID such as 0x9100, ...) are
//     NonTCP: they are not looked into.
//  3. IPv4: a bad version is Unparsed. ICMP goes to a worker if it is a
//     fragment (first or later: a later one shows no type and may hold the
//     rest of a quote) or an error message (types 3, 4, 5, 11, 12), and is
//     NonTCP otherwise, also when its IHL is below 5 or it ends before the
//     type byte (no usable error). An Authentication Header (protocol 51)
//     is Unparsed: the TCP it may hold (a host's IPsec AH policy added
//     while its connection is encrypted) must not take the fast path.
//     Other non-TCP protocols are NonTCP, fragments included. TCP with an
//     IHL below 5 is Unparsed, a TCP fragment (first or later) is Fragment.
//  4. IPv6: a bad version is Unparsed. TCP must follow the fixed header;
//     an extension header that may precede it (hop-by-hop, routing,
//     fragment, AH, destination options, mobility, HIP, shim6, 253, 254)
//     is IPv6Ext, whatever follows it. ICMPv6 types 1-4 (errors) and 137
//     (redirect: it quotes the redirected packet) are ICMPError, other
//     ICMPv6 (and one without a type byte) and other protocols (ESP
//     included) are NonTCP.
//  5. TCP: SYN first (SYN), then FIN or RST (FINRST), listed or not: the
//     engine sees every connection start, end and tuple reuse. Other
//     segments take the fast path if this direction's flow is in the map
//     (FastPath; address family, both addresses and both ports must
//     match), else go to a worker (UnknownFlow). The TCP header is not
//     checked beyond its first 20 bytes being there.
//  6. A frame that ends inside a header the classifier reads (Ethernet,
//     a VLAN tag, the IPv4 or IPv6 fixed header, the first 20 bytes of
//     TCP) is Truncated.
//  7. A frame rules 2-5 would send to the other port (NonTCP, and TCP
//     other than SYN, FIN and RST, before the map is looked at) that is
//     longer than the other port forwards, its MTU ([PeerMTU] in the
//     table) plus an Ethernet header and one VLAN tag, is Oversize: the
//     kernel would drop it after the redirect (xdp_ok_fwd_dev). Only
//     generic XDP sees one, an skb after GRO or a local sender's GSO skb.
//
// Each rule ends in one of two verdicts, Peer (the fast path) or Worker.
// How a Worker frame reaches the workers is chosen when the classifier is
// attached, and every case is in the table once for each ([Delivery]): to
// the AF_XDP socket of the RX queue (Socket), or passed to the kernel for
// the port's AF_PACKET socket (Stack, xsk.SlowPathStack), where a TC
// program drops it after the socket's tap so the appliance's own stack
// never acts on it. Nothing else of the rules depends on it. Where a
// verdict has nowhere to go (no AF_XDP socket registered for the RX queue,
// no devmap entry for the other port) the program drops the frame and
// counts it; the BPF runner checks both. The in-memory bump has one queue
// per port either way.
package classifiertest

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Port is the port a frame arrives on.
type Port int

const (
	Inside Port = iota
	Outside
)

// Verdict is where the classifier sends a frame.
type Verdict int

const (
	// Peer: redirected to the other port inside the kernel (the fast path).
	Peer Verdict = iota + 1
	// Worker: to the AF_XDP socket of the RX queue, for a worker and the engine.
	Worker
)

func (v Verdict) String() string {
	switch v {
	case Peer:
		return "peer"
	case Worker:
		return "worker"
	}
	return "Verdict(?)"
}

// Delivery is how a Worker verdict reaches the workers, chosen when the
// classifier is attached (xsk.AttachOptions.SlowPath).
type Delivery int

const (
	// Socket: redirected to the AF_XDP socket of the RX queue (XDP_REDIRECT
	// through the XSKMAP), counted ToXSK (NoSocket and dropped without one).
	Socket Delivery = iota
	// Stack: passed to the kernel (XDP_PASS) for an AF_PACKET socket,
	// counted ToStack.
	Stack
)

// Deliveries are both ways, in the order Cases lists them.
var Deliveries = []Delivery{Socket, Stack}

func (d Delivery) String() string {
	if d == Stack {
		return "stack"
	}
	return "socket"
}

// Reason is the BPF program's counter for a verdict, named as the field of
// xsk.PortStats. The in-memory bump has no such counters.
type Reason string

const (
	FastPath    Reason = "FastPath"    // Peer: TCP of a listed flow
	NonTCP      Reason = "NonTCP"      // Peer: not TCP
	SYN         Reason = "SYN"         // Worker: TCP with SYN
	FINRST      Reason = "FINRST"      // Worker: TCP with FIN or RST and no SYN
	UnknownFlow Reason = "UnknownFlow" // Worker: TCP of an unlisted flow
	Truncated   Reason = "Truncated"   // Worker: ends inside a header
	Fragment    Reason = "Fragment"    // Worker: IPv4 fragment of TCP or ICMP
	IPv6Ext     Reason = "IPv6Ext"     // Worker: IPv6 extension header
	Unparsed    Reason = "Unparsed"    // Worker: bad version or IHL, third VLAN tag, IPv4 AH
	ICMPError   Reason = "ICMPError"   // Worker: ICMP or ICMPv6 error message
	AllToXSK    Reason = "AllToXSK"    // Worker: fast path off on the arrival port
	Oversize    Reason = "Oversize"    // Worker: for the other port, but longer than it forwards
)

// PeerMTU is the other port's MTU in the table: a frame of up to PeerMTU
// plus 18 bytes (an Ethernet header and one VLAN tag) goes to it (rule 7).
// A runner gives both ports this MTU.
const PeerMTU = 1500

// Verdict is the verdict that goes with reason r.
func (r Reason) Verdict() Verdict {
	if r == FastPath || r == NonTCP {
		return Peer
	}
	return Worker
}

// Flow is one direction of a TCP flow, an entry of the fast-path map.
type Flow struct{ Src, Dst netip.AddrPort }

// Case is one frame through the classifier. Cases made from one rule share
// its Frame: a runner must not modify it.
type Case struct {
	Name     string
	Frame    []byte
	Port     Port    // the port the frame arrives on
	FastPath [2]bool // each port's fast-path switch, indexed by Port
	Listed   []Flow  // the fast-path map
	Want     Verdict
	Reason   Reason   // the BPF program's counter for Want
	Delivery Delivery // how a Worker verdict leaves the program
}

// Addresses and the flows the standard map lists: one direction of one
// IPv4 and one IPv6 flow (the engine lists both directions of a flow it
// hands to the fast path; listing one shows that a direction is a key of
// its own).
var (
	A4, B4 = packettest.HostA4, packettest.HostB4
	A6, B6 = packettest.HostA6, packettest.HostB6

	Flow4 = Flow{netip.AddrPortFrom(A4, 40000), netip.AddrPortFrom(B4, 443)}
	Flow6 = Flow{netip.AddrPortFrom(A6, 40000), netip.AddrPortFrom(B6, 443)}

	StandardMap = []Flow{Flow4, Flow6}
)

// Reverse is the other direction of f.
func (f Flow) Reverse() Flow { return Flow{f.Dst, f.Src} }

const (
	data = packettest.ACK | packettest.PSH

	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
)

var (
	vlan100 = packettest.Tag{TPID: 0x8100, TCI: 100}
	sTag200 = packettest.Tag{TPID: 0x88a8, TCI: 200}
)

// rule is one entry of the base table: a frame whose verdict, with the
// standard map and the fast path on, is reason.
type rule struct {
	name   string
	frame  []byte
	reason Reason
}

// seg is a TCP segment of f (or, reversed, of its other direction).
func seg(f Flow, flags uint8, payload []byte, tags ...packettest.Tag) packettest.Frame {
	return packettest.Frame{Tags: tags, Src: f.Src.Addr(), Dst: f.Dst.Addr(),
		TCP: &packettest.TCP{SrcPort: f.Src.Port(), DstPort: f.Dst.Port(), Seq: 1000, Ack: 2000,
			Flags: flags, Window: 65535, Payload: payload}}
}

func tcpFrame(f Flow, flags uint8, tags ...packettest.Tag) []byte {
	return seg(f, flags, []byte("data"), tags...).Bytes()
}

// ipFrame is an IP datagram of protocol proto with body l4.
func ipFrame(src, dst netip.Addr, proto uint8, l4 []byte, tags ...packettest.Tag) []byte {
	return packettest.Frame{Tags: tags, Src: src, Dst: dst, Proto: proto, L4: l4}.Bytes()
}

// ahThenTCP is an IPsec Authentication Header (RFC 4302: 12-byte ICV)
// followed by a TCP header (ACK, no data): the body of an IPv4 datagram of
// protocol 51.
func ahThenTCP() []byte {
	b := make([]byte, 24+20)
	b[0], b[1] = 6, 24/4-2 // next header TCP, length in 4-byte units minus 2
	binary.BigEndian.PutUint32(b[4:], 0x100)
	binary.BigEndian.PutUint16(b[24:], 40000)
	binary.BigEndian.PutUint16(b[26:], 443)
	b[24+12], b[24+13] = 5<<4, 0x10
	return b
}

// raw is a non-IP frame.
func raw(etype uint16, payload []byte, tags ...packettest.Tag) []byte {
	return packettest.Frame{Tags: tags, EtherType: etype, L4: payload}.Bytes()
}

// icmp is an ICMP or ICMPv6 message without a body of interest.
func icmp(typ uint8, body []byte) []byte { return packettest.ICMP(typ, 0, 0x00010001, body) }

// icmpErr is an ICMP or ICMPv6 error quoting quote (rest of header: MTU 1280).
func icmpErr(typ, code uint8, quote []byte) []byte { return packettest.ICMP(typ, code, 1280, quote) }

// patch returns a copy of frame with byte off (counted from the IP header,
// after tags tags) set to v.
func patch(frame []byte, tags, off int, v byte) []byte {
	out := append([]byte(nil), frame...)
	out[14+4*tags+off] = v
	return out
}

// fragExt is an IPv6 fragment header's data: offset in 8-byte units, M flag.
func fragExt(offset uint16, more bool) packettest.Ext {
	d := make([]byte, 6)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(d, v)
	d[5] = 7 // identification
	return packettest.Ext{Proto: 44, Data: d}
}

// arp is an Ethernet ARP who-has A4 -> B4.
func arp() []byte { return packettest.ARP(A4, B4) }

// Flows and quotes the rules share.
var (
	r4, r6 = Flow4.Reverse(), Flow6.Reverse()
	other4 = Flow{netip.AddrPortFrom(A4, 40001), Flow4.Dst}
	other6 = Flow{Flow6.Src, netip.AddrPortFrom(B6, 444)}
	// From the far host: the IP header and 8 bytes of TCP (IPv4), or more.
	quote4 = packettest.Quote(seg(Flow4, data, nil).Bytes(), 28)
	quote6 = packettest.Quote(seg(Flow6, data, nil).Bytes(), 48)
	// From the near host: a quote of a segment it was delivered (possibly
	// decrypted plaintext).
	quote4r = packettest.Quote(seg(r4, data, []byte("delivered plaintext")).Bytes(), 1000)
	quote6r = packettest.Quote(seg(r6, data, []byte("delivered plaintext")).Bytes(), 1000)
)

// baseRules is the table with the standard map and the fast path on, for a
// frame arriving on either port.
func baseRules() []rule {
	var rules []rule
	for _, group := range [][]rule{notIPRules(), ipv4Rules(), icmpv4Rules(), ipv6Rules(), tcpRules(), truncations(), oversizeRules()} {
		rules = append(rules, group...)
	}
	return rules
}

// notIPRules: rule 2, Ethernet and tags; what is not IP is not looked into.
func notIPRules() []rule {
	return []rule{
		// 2. Not IP: not looked into.
		{"ARP", raw(0x0806, arp()), NonTCP},
		{"VLAN ARP", raw(0x0806, arp(), vlan100), NonTCP},
		{"LLDP", raw(0x88cc, make([]byte, 32)), NonTCP},
		{"PPPoE session", raw(0x8864, make([]byte, 40)), NonTCP},
		{"MPLS", raw(0x8847, make([]byte, 40)), NonTCP},
		{"802.1ad then ARP", raw(0x0806, arp(), sTag200), NonTCP},
		{"TPID 0x9100 then TCP of a listed flow (not a tag the program knows)", tcpFrame(Flow4, data, packettest.Tag{TPID: 0x9100, TCI: 5}), NonTCP},
		{"TPID 0x9100 then TCP SYN", tcpFrame(Flow4, packettest.SYN, packettest.Tag{TPID: 0x9100, TCI: 5}), NonTCP},
		{"three VLAN tags", tcpFrame(Flow4, data, sTag200, vlan100, vlan100), Unparsed},
		{"three VLAN tags, ARP", raw(0x0806, arp(), vlan100, vlan100, vlan100), Unparsed},
	}
}

// ipv4Rules: rule 3 without ICMP: other protocols, TCP fragments, bad headers.
func ipv4Rules() []rule {
	return []rule{
		// 3. IPv4, not TCP.
		{"IPv4 UDP", ipFrame(A4, B4, 17, packettest.UDP(5353, 53, []byte("q"))), NonTCP},
		{"IPv4 GRE", ipFrame(A4, B4, 47, make([]byte, 24)), NonTCP},
		{"IPv4 AH then TCP", ipFrame(A4, B4, 51, ahThenTCP()), Unparsed},
		{"IPv4 AH fragment", packettest.Frame{Src: A4, Dst: B4, Proto: 51, L4: make([]byte, 24), FragOffset: 100}.Bytes(), Unparsed},
		{"IPv4 UDP first fragment", packettest.Frame{Src: A4, Dst: B4, Proto: 17, L4: make([]byte, 16), MoreFragments: true}.Bytes(), NonTCP},
		{"IPv4 UDP later fragment", packettest.Frame{Src: A4, Dst: B4, Proto: 17, L4: make([]byte, 8), FragOffset: 100}.Bytes(), NonTCP},
		{"IPv4 UDP, IHL 4", patch(ipFrame(A4, B4, 17, packettest.UDP(1, 2, nil)), 0, 0, 0x44), NonTCP},
		// 3. IPv4 TCP: fragments and malformed headers.
		{"IPv4 TCP first fragment", packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, data, []byte("data")).TCP, MoreFragments: true}.Bytes(), Fragment},
		{"IPv4 TCP middle fragment", packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, data, []byte("data")).TCP, MoreFragments: true, FragOffset: 185}.Bytes(), Fragment},
		{"IPv4 TCP last fragment", packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, data, []byte("data")).TCP, FragOffset: 185}.Bytes(), Fragment},
		{"IPv4 TCP SYN, first fragment", packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, packettest.SYN, nil).TCP, MoreFragments: true}.Bytes(), Fragment},
		{"IPv4 TCP fragment, IHL 4", patch(packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, data, nil).TCP, MoreFragments: true}.Bytes(), 0, 0, 0x44), Unparsed},
		{"IPv4 TCP, IHL 4", patch(tcpFrame(Flow4, data), 0, 0, 0x44), Unparsed},
		{"IPv4 TCP, IHL 0", patch(tcpFrame(Flow4, data), 0, 0, 0x40), Unparsed},
		{"IPv4 TCP, IHL 15 past the end", patch(tcpFrame(Flow4, data), 0, 0, 0x4f), Truncated},
		{"ethertype IPv4, version 6", patch(tcpFrame(Flow4, data), 0, 0, 0x65), Unparsed},
		{"ethertype IPv4, version 6, UDP", patch(ipFrame(A4, B4, 17, packettest.UDP(1, 2, nil)), 0, 0, 0x65), Unparsed},
		{"ethertype IPv6, IPv4 header", patchEtherType(tcpFrame(Flow4, data, vlan100), 1, ethIPv6), Unparsed},
	}
}

// icmpv4Rules: rule 3 for ICMP: errors and fragments to a worker, the rest non-TCP.
func icmpv4Rules() []rule {
	rules := []rule{
		// 3. ICMPv4 informational messages: non-TCP.
		{"ICMPv4 echo", ipFrame(A4, B4, 1, icmp(8, nil)), NonTCP},
		{"ICMPv4 echo reply", ipFrame(A4, B4, 1, icmp(0, nil)), NonTCP},
		{"ICMPv4 timestamp", ipFrame(A4, B4, 1, icmp(13, make([]byte, 12))), NonTCP},
		{"ICMPv4 router advertisement", ipFrame(A4, B4, 1, icmp(9, make([]byte, 8))), NonTCP},
		// 3. ICMPv4 errors (every type), either direction, any quote.
		{"VLAN ICMPv4 fragmentation needed, IP options", packettest.Frame{Tags: []packettest.Tag{vlan100}, Src: B4, Dst: A4,
			IPv4Options: []byte{1, 1, 1, 0}, Proto: 1, L4: icmpErr(3, 4, quote4)}.Bytes(), ICMPError},
		{"QinQ ICMPv4 time exceeded", ipFrame(B4, A4, 1, icmpErr(11, 0, quote4), sTag200, vlan100), ICMPError},
		{"ICMPv4 fragmentation needed, don't fragment", patch(ipFrame(B4, A4, 1, icmpErr(3, 4, quote4)), 0, 6, 0x40), ICMPError},
		{"ICMPv4 error without a quote", ipFrame(B4, A4, 1, icmpErr(3, 1, nil)), ICMPError},
		{"ICMPv4, only the type byte", ipFrame(B4, A4, 1, []byte{11}), ICMPError},
		{"ICMPv4, no header", ipFrame(B4, A4, 1, nil), NonTCP},
		{"ICMPv4 fragmentation needed, IHL 4", patch(ipFrame(B4, A4, 1, icmpErr(3, 4, quote4)), 0, 0, 0x44), NonTCP},
		{"ICMPv4 fragmentation needed, IHL 15 past the end", patch(ipFrame(B4, A4, 1, icmpErr(3, 4, quote4[:20])), 0, 0, 0x4f), NonTCP},
		// 3. ICMPv4 fragments: to a worker whatever the type.
		{"ICMPv4 fragmentation needed, first fragment", packettest.Frame{Src: B4, Dst: A4, Proto: 1, L4: icmpErr(3, 4, quote4), MoreFragments: true}.Bytes(), Fragment},
		{"ICMPv4 time exceeded, later fragment", packettest.Frame{Src: B4, Dst: A4, Proto: 1, L4: icmpErr(11, 0, quote4), FragOffset: 10}.Bytes(), Fragment},
		{"ICMPv4 echo, first fragment", packettest.Frame{Src: A4, Dst: B4, Proto: 1, L4: icmp(8, make([]byte, 64)), MoreFragments: true}.Bytes(), Fragment},
		{"ICMPv4 echo, last fragment", packettest.Frame{Src: A4, Dst: B4, Proto: 1, L4: make([]byte, 16), FragOffset: 9}.Bytes(), Fragment},
		{"ICMPv4 fragment, IHL 4", patch(packettest.Frame{Src: B4, Dst: A4, Proto: 1, L4: icmpErr(3, 4, quote4), MoreFragments: true}.Bytes(), 0, 0, 0x44), NonTCP},
	}
	// Every ICMPv4 error type and code class, sent by the far host about a
	// segment to it and by the near host about a segment it was delivered
	// (the quote's direction does not matter to the classifier).
	for _, e := range []struct {
		name      string
		typ, code uint8
	}{
		{"destination unreachable (net)", 3, 0}, {"port unreachable", 3, 3}, {"fragmentation needed", 3, 4},
		{"administratively prohibited", 3, 13}, {"source quench", 4, 0}, {"redirect", 5, 1},
		{"time exceeded", 11, 0}, {"reassembly time exceeded", 11, 1}, {"parameter problem", 12, 0},
	} {
		rules = append(rules,
			rule{"ICMPv4 " + e.name + " from B", ipFrame(B4, A4, 1, icmpErr(e.typ, e.code, quote4)), ICMPError},
			rule{"ICMPv4 " + e.name + " from A", ipFrame(A4, B4, 1, icmpErr(e.typ, e.code, quote4r)), ICMPError})
	}
	return rules
}

// ipv6Rules: rule 4, ICMPv6 and extension headers included.
func ipv6Rules() []rule {
	rules := []rule{
		// 4. IPv6, not TCP.
		{"IPv6 UDP", ipFrame(A6, B6, 17, packettest.UDP(1, 2, nil)), NonTCP},
		{"IPv6 ESP", ipFrame(A6, B6, 50, make([]byte, 24)), NonTCP},
		{"IPv6 no next header", ipFrame(A6, B6, 59, nil), NonTCP},
		{"ICMPv6 neighbour solicitation", ipFrame(A6, B6, 58, icmp(135, make([]byte, 16))), NonTCP},
		{"ICMPv6 router advertisement", ipFrame(A6, B6, 58, icmp(134, make([]byte, 8))), NonTCP},
		{"ICMPv6 echo", ipFrame(A6, B6, 58, icmp(128, nil)), NonTCP},
		{"ICMPv6 echo reply", ipFrame(A6, B6, 58, icmp(129, nil)), NonTCP},
		{"QinQ ICMPv6 echo", ipFrame(A6, B6, 58, icmp(128, nil), sTag200, vlan100), NonTCP},
		{"ICMPv6 type 0 (reserved)", ipFrame(B6, A6, 58, icmpErr(0, 0, quote6)), NonTCP},
		{"ICMPv6 type 5 (unassigned)", ipFrame(B6, A6, 58, icmpErr(5, 0, quote6)), NonTCP},
		{"ICMPv6 type 127", ipFrame(B6, A6, 58, icmpErr(127, 0, quote6)), NonTCP},
		{"ICMPv6 redirect (quotes the redirected packet)", ipFrame(A6, B6, 58, icmp(137, make([]byte, 32))), ICMPError},
		{"ICMPv6, no header", ipFrame(B6, A6, 58, nil), NonTCP},
		// 4. ICMPv6 errors.
		{"QinQ ICMPv6 packet too big", ipFrame(B6, A6, 58, icmpErr(2, 0, quote6), sTag200, vlan100), ICMPError},
		{"ICMPv6 error, only the type byte", ipFrame(B6, A6, 58, []byte{1}), ICMPError},
		// 4. IPv6 extension headers, whatever follows.
		{"IPv6 hop-by-hop then TCP", v6ext(seg(Flow6, data, nil), packettest.Ext{Proto: 0, Data: make([]byte, 6)}), IPv6Ext},
		{"IPv6 routing then TCP", v6ext(seg(Flow6, data, nil), packettest.Ext{Proto: 43, Data: make([]byte, 6)}), IPv6Ext},
		{"IPv6 TCP first fragment", v6ext(seg(Flow6, data, []byte("data")), fragExt(0, true)), IPv6Ext},
		{"IPv6 TCP later fragment", v6ext(seg(Flow6, data, []byte("data")), fragExt(185, false)), IPv6Ext},
		{"IPv6 UDP fragment", packettest.Frame{Src: A6, Dst: B6, Proto: 17, L4: packettest.UDP(1, 2, nil), Ext: []packettest.Ext{fragExt(0, true)}}.Bytes(), IPv6Ext},
		{"IPv6 ICMPv6 error, fragment", packettest.Frame{Src: B6, Dst: A6, Proto: 58, L4: icmpErr(2, 0, quote6), Ext: []packettest.Ext{fragExt(0, true)}}.Bytes(), IPv6Ext},
		{"IPv6 AH then TCP", v6ext(seg(Flow6, data, nil), packettest.Ext{Proto: 51, Data: make([]byte, 10)}), IPv6Ext},
		{"IPv6 destination options then TCP", v6ext(seg(Flow6, data, nil), packettest.Ext{Proto: 60, Data: make([]byte, 6)}), IPv6Ext},
		{"VLAN IPv6 hop-by-hop then UDP", packettest.Frame{Tags: []packettest.Tag{vlan100}, Src: A6, Dst: B6, Proto: 17, L4: packettest.UDP(1, 2, nil),
			Ext: []packettest.Ext{{Proto: 0, Data: make([]byte, 6)}}}.Bytes(), IPv6Ext},
		{"ethertype IPv6, version 4", patch(tcpFrame(Flow6, data), 0, 0, 0x45), Unparsed},
		{"ethertype IPv6, version 0", patch(tcpFrame(Flow6, data), 0, 0, 0x00), Unparsed},
	}
	for _, e := range []struct {
		name      string
		typ, code uint8
	}{
		{"destination unreachable", 1, 4}, {"packet too big", 2, 0}, {"time exceeded", 3, 0}, {"parameter problem", 4, 1},
	} {
		rules = append(rules,
			rule{"ICMPv6 " + e.name + " from B", ipFrame(B6, A6, 58, icmpErr(e.typ, e.code, quote6)), ICMPError},
			rule{"VLAN ICMPv6 " + e.name + " from A", ipFrame(A6, B6, 58, icmpErr(e.typ, e.code, quote6r), vlan100), ICMPError})
	}
	// The remaining IPv6 extension header values.
	for _, nh := range []uint8{135, 139, 140, 253, 254} {
		rules = append(rules, rule{"IPv6 next header " + strconv.Itoa(int(nh)), ipFrame(A6, B6, nh, make([]byte, 48)), IPv6Ext})
	}
	return rules
}

// tcpRules: rule 5 with the standard map.
func tcpRules() []rule {
	return []rule{
		// 5. TCP: SYN, FIN, RST always to a worker.
		{"TCP SYN v4, listed flow", tcpFrame(Flow4, packettest.SYN), SYN},
		{"TCP SYN v4, unlisted flow", tcpFrame(other4, packettest.SYN), SYN},
		{"TCP SYN-ACK v6, unlisted direction", tcpFrame(r6, packettest.SYN|packettest.ACK), SYN},
		{"TCP SYN-FIN v4 listed (SYN counts)", tcpFrame(Flow4, packettest.SYN|packettest.FIN), SYN},
		{"TCP SYN-RST v6 listed (SYN counts)", tcpFrame(Flow6, packettest.SYN|packettest.RST), SYN},
		{"VLAN TCP SYN", tcpFrame(Flow4, packettest.SYN, vlan100), SYN},
		{"TCP FIN v4 listed", tcpFrame(Flow4, packettest.FIN|packettest.ACK), FINRST},
		{"TCP FIN v4 unlisted", tcpFrame(other4, packettest.FIN|packettest.ACK), FINRST},
		{"TCP RST v4 listed", tcpFrame(Flow4, packettest.RST), FINRST},
		{"TCP RST-ACK v6 listed", tcpFrame(Flow6, packettest.RST|packettest.ACK), FINRST},
		{"TCP FIN v6 listed", tcpFrame(Flow6, packettest.FIN), FINRST},
		{"VLAN TCP FIN listed", tcpFrame(Flow4, packettest.FIN|packettest.ACK, vlan100), FINRST},
		// 5. Other TCP: the map decides, per direction.
		{"TCP data v4 listed", tcpFrame(Flow4, data), FastPath},
		{"TCP pure ACK v4 listed", seg(Flow4, packettest.ACK, nil).Bytes(), FastPath},
		{"TCP no flags v4 listed", seg(Flow4, 0, nil).Bytes(), FastPath},
		{"TCP URG|ECE|CWR v4 listed", tcpFrame(Flow4, packettest.ACK|0x20|0x40|0x80), FastPath},
		{"TCP data v6 listed", tcpFrame(Flow6, data), FastPath},
		{"TCP v4 with IP options listed", packettest.Frame{Src: A4, Dst: B4, IPv4Options: []byte{1, 1, 1, 0}, TCP: seg(Flow4, data, []byte("data")).TCP}.Bytes(), FastPath},
		{"TCP v4 with 40 bytes of IP options listed", packettest.Frame{Src: A4, Dst: B4, IPv4Options: make([]byte, 40), TCP: seg(Flow4, data, nil).TCP}.Bytes(), FastPath},
		{"TCP v4 listed, don't fragment", patch(tcpFrame(Flow4, data), 0, 6, 0x40), FastPath},
		{"TCP v4 listed, reserved flag bit", patch(tcpFrame(Flow4, data), 0, 6, 0x80), FastPath},
		{"TCP v4 listed, Ethernet padding", packettest.Frame{Src: A4, Dst: B4, TCP: seg(Flow4, data, nil).TCP, Padding: 6}.Bytes(), FastPath},
		{"TCP v4 listed, TCP data offset 4 (not checked)", patch(tcpFrame(Flow4, data), 0, 20+12, 0x40), FastPath},
		{"VLAN TCP listed", tcpFrame(Flow4, data, vlan100), FastPath},
		{"802.1ad TCP listed", tcpFrame(Flow4, data, sTag200), FastPath},
		{"QinQ TCP v6 listed", tcpFrame(Flow6, data, sTag200, vlan100), FastPath},
		{"802.1Q inside 802.1Q TCP listed", tcpFrame(Flow6, data, vlan100, vlan100), FastPath},
		{"TCP data v4 unlisted (source port)", tcpFrame(other4, data), UnknownFlow},
		{"TCP data v4 unlisted (reverse direction)", tcpFrame(r4, data), UnknownFlow},
		{"TCP data v4 unlisted (source address)", tcpFrame(Flow{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.3"), 40000), Flow4.Dst}, data), UnknownFlow},
		{"TCP data v6 unlisted (destination port)", tcpFrame(other6, data), UnknownFlow},
		{"TCP data v6 unlisted (reverse direction)", tcpFrame(r6, data), UnknownFlow},
		{"TCP data v6, IPv4-mapped addresses of the listed v4 flow", tcpFrame(Flow{
			netip.AddrPortFrom(netip.AddrFrom16(A4.As16()), 40000), netip.AddrPortFrom(netip.AddrFrom16(B4.As16()), 443)}, data), UnknownFlow},
		{"VLAN TCP unlisted", tcpFrame(other4, data, vlan100), UnknownFlow},
		{"QinQ TCP unlisted", tcpFrame(other4, data, sTag200, vlan100), UnknownFlow},
	}
}

// truncations are frames cut at every length: a fast-path segment of each
// family (the IPv6 one behind two tags) and an ICMPv4 error. Only what ends
// inside a header the classifier reads is Truncated.
func truncations() []rule {
	var rules []rule
	for _, full := range [][]byte{
		seg(Flow4, data, nil).Bytes(),
		seg(Flow6, data, nil, sTag200, vlan100).Bytes(),
	} {
		for n := 0; n < len(full); n++ {
			rules = append(rules, rule{"fast-path segment cut to " + strconv.Itoa(n) + " bytes", full[:n], Truncated})
		}
		rules = append(rules, rule{"fast-path segment, complete", full, FastPath})
	}
	icmp4 := ipFrame(B4, A4, 1, icmpErr(3, 4, nil))
	for n := 0; n <= len(icmp4); n++ {
		r := rule{"ICMPv4 error cut to " + strconv.Itoa(n) + " bytes", icmp4[:n], Truncated}
		switch {
		case n == 14+20: // the IP header, no type byte: no usable error
			r.reason = NonTCP
		case n > 14+20:
			r.reason = ICMPError
		}
		rules = append(rules, r)
	}
	arp := raw(0x0806, arp(), vlan100)
	for n := 0; n < 18; n++ {
		rules = append(rules, rule{"VLAN ARP cut to " + strconv.Itoa(n) + " bytes", arp[:n], Truncated})
	}
	// Not IP: the classifier reads nothing past the ethertype.
	return append(rules, rule{"VLAN ARP cut after the ethertype", arp[:18], NonTCP})
}

// oversizeRules: rule 7, frames around the longest the other port forwards.
func oversizeRules() []rule {
	limit := PeerMTU + 18
	fill := func(f packettest.Frame, n int, tags ...packettest.Tag) []byte {
		f.Tags = tags
		if f.TCP != nil {
			f.TCP.Payload = make([]byte, n-len(f.Bytes()))
		} else {
			f.L4 = packettest.UDP(1, 2, make([]byte, n-len(f.Bytes())))
		}
		return f.Bytes()
	}
	udp := packettest.Frame{Src: A4, Dst: B4, Proto: 17, L4: packettest.UDP(1, 2, nil)}
	return []rule{
		{"TCP data v4 listed, as long as the other port forwards", fill(seg(Flow4, data, nil), limit, vlan100), FastPath},
		{"TCP data v4 listed, a byte longer", fill(seg(Flow4, data, nil), limit+1, vlan100), Oversize},
		{"TCP data v4 listed, a super-segment", fill(seg(Flow4, data, nil), 3000), Oversize},
		{"TCP data v6 listed, QinQ, a byte longer", fill(seg(Flow6, data, nil), limit+1, sTag200, vlan100), Oversize},
		{"TCP data v4 unlisted, a super-segment (before the map)", fill(seg(other4, data, nil), 3000), Oversize},
		{"TCP SYN v4, longer than the other port forwards", fill(seg(Flow4, packettest.SYN, nil), 3000), SYN},
		{"TCP FIN v4 listed, longer than the other port forwards", fill(seg(Flow4, packettest.FIN|packettest.ACK, nil), 3000), FINRST},
		{"UDP, as long as the other port forwards", fill(udp, limit, vlan100), NonTCP},
		{"UDP, a byte longer", fill(udp, limit+1, vlan100), Oversize},
		{"ARP-typed frame, longer than the other port forwards", raw(0x0806, make([]byte, 2000)), Oversize},
		{"IPv6 hop-by-hop then TCP, longer than the other port forwards", v6ext(seg(Flow6, data, make([]byte, 2000)), packettest.Ext{Proto: 0, Data: make([]byte, 6)}), IPv6Ext},
	}
}

func v6ext(f packettest.Frame, ext ...packettest.Ext) []byte {
	f.Ext = ext
	return f.Bytes()
}

// patchEtherType returns frame with the ethertype after tags tags set to et.
func patchEtherType(frame []byte, tags int, et uint16) []byte {
	out := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(out[12+4*tags:], et)
	return out
}

// Cases returns the table: every base rule with the standard map, arriving
// on each port, with the fast path on, off on the other port only (no
// effect), off on the arrival port and off on both, with each delivery;
// and the rules whose input is the map itself. Frames are fresh copies for
// each call.
func Cases() []Case {
	var cases []Case
	for _, r := range baseRules() {
		cases = append(cases, expand(r, StandardMap)...)
	}
	r4 := Flow4.Reverse()
	both := []Flow{Flow4, r4}
	for _, m := range []struct {
		r      rule
		listed []Flow
	}{
		// 5. The map is the input: a direction is listed or not.
		{rule{"TCP data v4, empty map", tcpFrame(Flow4, data), UnknownFlow}, nil},
		{rule{"ARP, empty map", raw(0x0806, arp()), NonTCP}, nil},
		{rule{"TCP data v4, both directions listed", tcpFrame(Flow4, data), FastPath}, both},
		{rule{"TCP data v4 reverse, both directions listed", tcpFrame(r4, data), FastPath}, both},
		{rule{"TCP data v4, only the reverse listed", tcpFrame(Flow4, data), UnknownFlow}, []Flow{r4}},
		{rule{"TCP data v4 reverse, only the reverse listed", tcpFrame(r4, data), FastPath}, []Flow{r4}},
		{rule{"TCP FIN v4 reverse, both directions listed", tcpFrame(r4, packettest.FIN|packettest.ACK), FINRST}, both},
		{rule{"TCP RST v4, both directions listed", tcpFrame(Flow4, packettest.RST), FINRST}, both},
		{rule{"TCP SYN v4 reverse, both directions listed", tcpFrame(r4, packettest.SYN), SYN}, both},
		{rule{"ICMPv4 fragmentation needed quoting a listed flow, both listed", ipFrame(B4, A4, 1,
			icmpErr(3, 4, packettest.Quote(tcpFrame(Flow4, data), 28))), ICMPError}, both},
	} {
		cases = append(cases, expand(m.r, m.listed)...)
	}
	return cases
}

// expand is rule r with map listed, arriving on each port, under each
// combination of the two fast-path switches, with each delivery.
func expand(r rule, listed []Flow) []Case {
	var cases []Case
	for _, d := range Deliveries {
		for _, p := range []Port{Inside, Outside} {
			for _, sw := range [][2]bool{{true, true}, {false, true}, {true, false}, {false, false}} {
				c := Case{Name: r.name, Frame: r.frame, Port: p, FastPath: sw, Listed: listed, Reason: r.reason, Delivery: d}
				if !sw[p] {
					c.Reason = AllToXSK
				}
				c.Want = c.Reason.Verdict()
				cases = append(cases, c)
			}
		}
	}
	return cases
}

// String names c with its inputs, for test failures.
func (c Case) String() string {
	sw := func(on bool) string {
		if on {
			return "on"
		}
		return "off"
	}
	port := [2]string{"inside", "outside"}
	return c.Name + " (" + strconv.Itoa(len(c.Frame)) + " bytes, arriving " + port[c.Port] +
		", fast path inside " + sw(c.FastPath[Inside]) + ", outside " + sw(c.FastPath[Outside]) +
		", " + strconv.Itoa(len(c.Listed)) + " listed, delivery " + c.Delivery.String() + ")"
}
