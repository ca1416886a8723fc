package xsk

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Verdict counters of the classifier, one per-CPU slot each per port.
// Frames go to the engine for one of the "worker reasons" and to the other
// port (devmap) for one of the "peer reasons"; the outcome counters say
// whether the redirect map had an entry, or, for a bump attached with
// SlowPathStack, that the frame was passed to the kernel's stack. So, per
// port:
//
//	ToXSK + NoSocket + ToStack == SYN + FINRST + UnknownFlow + Truncated + Fragment + IPv6Ext + Unparsed + ICMPError + AllToXSK + Oversize
//	ToPeer + RedirectMiss      == FastPath + NonTCP
const (
	cntToXSK        = iota // redirected to the queue's AF_XDP socket
	cntNoSocket            // no socket registered for the queue: dropped
	cntToPeer              // redirected to the other port
	cntRedirectMiss        // devmap had no entry for the other port: dropped
	cntFastPath            // TCP of a flow in the fast-path map
	cntNonTCP              // not TCP (ARP, ICMP other than errors, UDP, ND, other ethertypes)
	cntSYN                 // TCP with SYN set
	cntUnknownFlow         // TCP of a flow not in the fast-path map
	cntTruncated           // frame ends inside a header the classifier needs
	cntFragment            // IPv4 fragment (first or not) of a TCP or ICMP datagram
	cntIPv6Ext             // IPv6 with an extension header that may precede TCP
	cntUnparsed            // bad IP version/IHL, or more than two VLAN tags
	cntFINRST              // TCP with FIN or RST set (and no SYN), listed or not
	cntAllToXSK            // any frame while the fast path is off (Bump.SetFastPath)
	cntICMPError           // ICMPv4 error (types 3, 4, 5, 11, 12, unfragmented), ICMPv6 error (types 1-4) or redirect (137)
	cntToStack             // passed to the kernel's stack (XDP_PASS) for an AF_PACKET socket (SlowPathStack)
	cntStackDropped        // dropped by the TC ingress program after the AF_PACKET taps (SlowPathStack; per skb)
	cntOversize            // for the other port, but longer than it forwards (peerFits)
	numCounters
)

// PortStats are the classifier's verdict counts for one port, summed over CPUs.
type PortStats struct {
	ToXSK, NoSocket, ToPeer, RedirectMiss                    uint64
	FastPath, NonTCP                                         uint64
	SYN, UnknownFlow, Truncated, Fragment, IPv6Ext, Unparsed uint64
	FINRST, AllToXSK, ICMPError                              uint64
	ToStack, StackDropped, Oversize                          uint64
}

func portStatsFrom(c []uint64) PortStats {
	return PortStats{
		ToXSK: c[cntToXSK], NoSocket: c[cntNoSocket], ToPeer: c[cntToPeer], RedirectMiss: c[cntRedirectMiss],
		FastPath: c[cntFastPath], NonTCP: c[cntNonTCP],
		SYN: c[cntSYN], UnknownFlow: c[cntUnknownFlow], Truncated: c[cntTruncated],
		Fragment: c[cntFragment], IPv6Ext: c[cntIPv6Ext], Unparsed: c[cntUnparsed],
		FINRST: c[cntFINRST], AllToXSK: c[cntAllToXSK], ICMPError: c[cntICMPError],
		ToStack: c[cntToStack], StackDropped: c[cntStackDropped], Oversize: c[cntOversize],
	}
}

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
	tcActShot   = 2

	ethPIPv4   = 0x0800
	ethPIPv6   = 0x86dd
	ethP8021Q  = 0x8100
	ethP8021AD = 0x88a8
	ipProtoAH  = 51

	// Stack layout: the flow key at fp-40 (40 bytes), the counter index at
	// fp-44, the config map key at fp-48, bpf_check_mtu's length at fp-52.
	keyOff = -40
	idxOff = -44
	cfgOff = -48
	mtuOff = -52

	// bpf_check_mtu's verdict for a frame longer than the MTU allows.
	mtuFragNeeded = 1

	// Slot p of the config map (p: the port whose program reads it): 0 =
	// fast path on (the zero value, so a new map means on), 1 = every
	// frame arriving at port p to the AF_XDP socket.
	cfgFastPathOff = 1
)

// ipv6ExtHeaders are the next-header values that may sit between the IPv6
// header and a TCP header (RFC 8200 §4 and the IANA list): hop-by-hop,
// routing, fragment, AH, destination options, mobility, HIP, shim6 and the
// two experimental values. Such frames go to the engine. ESP (50) is not in
// the list: its payload is opaque to everyone on the path, so it is non-TCP.
var ipv6ExtHeaders = []int32{0, 43, 44, 51, 60, 135, 139, 140, 253, 254}

// icmpv4Errors are the ICMPv4 error message types (RFC 1122 §3.2.2):
// destination unreachable, source quench, redirect, time exceeded and
// parameter problem. Each quotes the datagram it is about. ICMPv6 errors
// are types 1-4 (RFC 4443 §2.1).
var icmpv4Errors = []int32{3, 4, 5, 11, 12}

// progBuilder emits classifier instructions and attaches labels to the next
// instruction emitted.
type progBuilder struct {
	insns   asm.Instructions
	pending string
	nlabel  int
}

func (b *progBuilder) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if b.pending != "" {
			in = in.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, in)
	}
}

func (b *progBuilder) label(name string) {
	if b.pending != "" { // two labels on one spot: separate them with a no-op
		b.emit(asm.Mov.Reg(asm.R6, asm.R6))
	}
	b.pending = name
}

func (b *progBuilder) fresh() string {
	b.nlabel++
	return fmt.Sprintf("tmp%d", b.nlabel)
}

// count adds one to this CPU's slot base+idx of the counter array. Clobbers
// R0-R5.
func (b *progBuilder) count(counters *ebpf.Map, slot int) {
	skip := b.fresh()
	b.emit(
		asm.StoreImm(asm.RFP, idxOff, int64(slot), asm.Word),
		asm.LoadMapPtr(asm.R1, counters.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, idxOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, skip),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.label(skip)
}

// classifierMaps are the maps one port's program uses.
type classifierMaps struct {
	xsks     *ebpf.Map // XSKMAP of this port, key = RX queue
	peer     *ebpf.Map // DEVMAP, key 0 = the other port
	flows    *ebpf.Map // fast-path LRU hash, shared by both ports
	counters *ebpf.Map // per-CPU verdict counters, both ports
	config   *ebpf.Map // two-entry array: each port's fast-path switch
	base     int       // this port's first counter slot
	slow     SlowPath  // where the worker-bound frames go
	peerDev  int       // the other port's interface index
	peerFit  int       // frames no longer than this fit the other port: its MTU at load plus 18 (peerFits)
}

// classifier builds one port's program. Registers: R6 ctx, R7 data, R8
// data_end, R9 the header being parsed. Each method emits one part; labels
// join them: "parse" (Ethernet), "ipv4", "ipv4icmp", "ipv6", "ipv6icmp",
// "ipv6tcp", "tcp", the peer verdicts "non_tcp" and "to_peer", the worker
// reasons ("syn", "fin_rst", ...) and "to_xsk" (which, with SlowPathStack,
// passes the frame to the stack instead).
type classifier struct {
	progBuilder
	m classifierMaps
}

// classifierProgram returns the instructions of one port's classifier. The
// rules it implements are listed, as a table of cases that every
// implementation runs, in xsk/classifiertest; docs/architecture.md §3 says
// why there are two paths.
func classifierProgram(m classifierMaps) asm.Instructions {
	c := &classifier{m: m}
	c.fastPathSwitch()
	c.ethernet()
	c.ipv4()
	c.ipv4ICMP()
	c.ipv6()
	c.ipv6ICMP()
	c.ipv6TCP()
	c.tcp()
	c.toPeer()
	c.workerReasons()
	if c.m.slow == SlowPathStack {
		c.toStack()
	} else {
		c.toXSK()
	}
	return c.insns
}

// c counts one verdict reason of this port.
func (c *classifier) c(slot int) { c.count(c.m.counters, c.m.base+slot) }

// bound jumps to label when fewer than n bytes follow R9.
func (c *classifier) bound(n int32, label string) {
	c.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, n),
		asm.JGT.Reg(asm.R2, asm.R8, label),
	)
}

// fastPathSwitch loads the packet pointers and, with this port's fast path
// off, sends every frame, non-TCP included, to user space (the daemon's
// --no-fast-path, or a port whose redirect cannot deliver).
func (c *classifier) fastPathSwitch() {
	c.emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R9, asm.R7),
	)
	c.emit(
		asm.StoreImm(asm.RFP, cfgOff, int64(c.m.base/numCounters), asm.Word),
		asm.LoadMapPtr(asm.R1, c.m.config.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, cfgOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "parse"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R1, cfgFastPathOff, "all_to_xsk"),
	)
}

// ethernet parses the Ethernet header and up to two VLAN tags (802.1Q or
// 802.1ad, any order; a third is unparsed) and dispatches on the
// ethertype: IPv4, IPv6, or non-TCP for everything else.
func (c *classifier) ethernet() {
	c.label("parse")
	c.bound(14, "truncated")
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 12, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.Add.Imm(asm.R9, 14),
	)
	for tag := 0; tag < 2; tag++ {
		next := c.fresh()
		c.emit(asm.JEq.Imm(asm.R1, ethP8021Q, next))
		c.emit(asm.JNE.Imm(asm.R1, ethP8021AD, "l3"))
		c.label(next)
		c.bound(4, "truncated")
		c.emit(
			asm.LoadMem(asm.R1, asm.R9, 2, asm.Half),
			asm.HostTo(asm.BE, asm.R1, asm.Half),
			asm.Add.Imm(asm.R9, 4),
		)
	}
	c.emit( // a third tag
		asm.JEq.Imm(asm.R1, ethP8021Q, "unparsed"),
		asm.JEq.Imm(asm.R1, ethP8021AD, "unparsed"),
	)

	c.label("l3")
	c.emit(
		asm.JEq.Imm(asm.R1, ethPIPv4, "ipv4"),
		asm.JEq.Imm(asm.R1, ethPIPv6, "ipv6"),
		asm.Ja.Label("non_tcp"),
	)
}

// ipv4 checks version, protocol, IHL and fragment bits, and for
// unfragmented TCP fills the flow key's addresses and family and moves R9
// to the TCP header. ICMP goes on to ipv4ICMP; an Authentication Header
// (RFC 4302), which may hold TCP of an encrypted connection (a host's AH
// policy added mid-connection), goes to the workers unread; other
// protocols are non-TCP.
func (c *classifier) ipv4() {
	c.label("ipv4")
	c.bound(20, "truncated")
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.RSh.Imm(asm.R2, 4),
		asm.JNE.Imm(asm.R2, 4, "unparsed"),
		asm.LoadMem(asm.R2, asm.R9, 9, asm.Byte),
		asm.JEq.Imm(asm.R2, 1, "ipv4icmp"),
		asm.JEq.Imm(asm.R2, ipProtoAH, "unparsed"), // TCP may be inside
		asm.JNE.Imm(asm.R2, 6, "non_tcp"),
		asm.And.Imm(asm.R1, 0x0f),
		asm.LSh.Imm(asm.R1, 2),
		asm.JLT.Imm(asm.R1, 20, "unparsed"),
		asm.LoadMem(asm.R2, asm.R9, 6, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.And.Imm(asm.R2, 0x3fff), // MF | fragment offset
		asm.JNE.Imm(asm.R2, 0, "fragment"),
		// Key: addresses, family; the rest zero.
		asm.Mov.Imm(asm.R3, 0),
		asm.StoreMem(asm.RFP, keyOff+0, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+8, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+16, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+24, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+32, asm.R3, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, 12, asm.Word),
		asm.StoreMem(asm.RFP, keyOff+0, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R9, 16, asm.Word),
		asm.StoreMem(asm.RFP, keyOff+16, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, keyOff+36, 4, asm.Byte),
		asm.Add.Reg(asm.R9, asm.R1), // skip IHL*4 bytes
		asm.Ja.Label("tcp"),
	)
}

// ipv4ICMP sends ICMPv4 error messages (RFC 1122 §3.2.2: destination
// unreachable, source quench, redirect, time exceeded, parameter problem)
// to the engine: one from the inside may quote up to 548 bytes of a segment
// the appliance delivered decrypted, which must not reach the outside
// unseen, and a fragmentation needed from the outside needs its quoted
// sequence number translated and the MTU lowered by the frame overhead.
// Echo and the other informational types are non-TCP. Every fragment
// (first or not) goes to the engine: a later fragment carries no type, and
// one of an error may hold the rest of a quote of plaintext; the workers
// decide per datagram once its first fragment is seen. A bad IHL or a
// header cut short is no usable error (the engine would not find its quote
// either). On entry R1 holds the first byte of the IPv4 header.
func (c *classifier) ipv4ICMP() {
	c.label("ipv4icmp")
	c.emit(
		asm.And.Imm(asm.R1, 0x0f),
		asm.LSh.Imm(asm.R1, 2),
		asm.JLT.Imm(asm.R1, 20, "non_tcp"),
		asm.LoadMem(asm.R2, asm.R9, 6, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.And.Imm(asm.R2, 0x3fff),
		asm.JNE.Imm(asm.R2, 0, "fragment"),
		asm.Add.Reg(asm.R9, asm.R1),
	)
	c.bound(1, "non_tcp")
	c.emit(asm.LoadMem(asm.R1, asm.R9, 0, asm.Byte))
	for _, typ := range icmpv4Errors {
		c.emit(asm.JEq.Imm(asm.R1, typ, "icmp_error"))
	}
	c.emit(asm.Ja.Label("non_tcp"))
}

// ipv6 checks the version and the next header: TCP only directly after the
// fixed header; an extension header that may precede TCP goes to the
// engine; ICMPv6 goes on to ipv6ICMP; anything else is non-TCP.
func (c *classifier) ipv6() {
	c.label("ipv6")
	c.bound(40, "truncated")
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, 6, "unparsed"),
		asm.LoadMem(asm.R1, asm.R9, 6, asm.Byte),
		asm.JEq.Imm(asm.R1, 6, "ipv6tcp"),
	)
	for _, nh := range ipv6ExtHeaders {
		c.emit(asm.JEq.Imm(asm.R1, nh, "ipv6ext"))
	}
	c.emit(
		asm.JEq.Imm(asm.R1, 58, "ipv6icmp"),
		asm.Ja.Label("non_tcp"),
	)
}

// ipv6ICMP sends ICMPv6 error messages (RFC 4443 §2.1: types 1-4) and
// redirects (type 137, which quote the redirected packet, RFC 4861 §4.5) to
// the engine, like ICMPv4 errors; other ICMPv6, and one without a type
// byte, is non-TCP.
func (c *classifier) ipv6ICMP() {
	c.label("ipv6icmp")
	c.emit(asm.Add.Imm(asm.R9, 40))
	c.bound(1, "non_tcp")
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Byte),
		asm.JLT.Imm(asm.R1, 1, "non_tcp"),
		asm.JLE.Imm(asm.R1, 4, "icmp_error"),
		asm.JEq.Imm(asm.R1, 137, "icmp_error"),
		asm.Ja.Label("non_tcp"),
	)
}

// ipv6TCP fills the flow key's addresses and family from the IPv6 header
// and moves R9 to the TCP header; it falls through to tcp.
func (c *classifier) ipv6TCP() {
	c.label("ipv6tcp")
	for i := int16(0); i < 32; i += 8 {
		c.emit(
			asm.LoadMem(asm.R2, asm.R9, 8+i, asm.DWord),
			asm.StoreMem(asm.RFP, keyOff+i, asm.R2, asm.DWord),
		)
	}
	c.emit(
		asm.Mov.Imm(asm.R3, 0),
		asm.StoreMem(asm.RFP, keyOff+32, asm.R3, asm.DWord),
		asm.StoreImm(asm.RFP, keyOff+36, 6, asm.Byte),
		asm.Add.Imm(asm.R9, 40),
	)
}

// tcp sends SYNs, FINs and RSTs to the engine (it must see connections
// start, end and reuse a tuple), and a segment the other port would not
// take (peerFits), then completes the key with the ports and looks the
// flow up: listed, it takes the fast path (and its packet count moves);
// unlisted, it goes to the engine.
func (c *classifier) tcp() {
	c.label("tcp")
	c.bound(20, "truncated")
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 13, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 0x02),
		asm.JNE.Imm(asm.R2, 0, "syn"),
		asm.And.Imm(asm.R1, 0x05), // FIN | RST
		asm.JNE.Imm(asm.R1, 0, "fin_rst"),
	)
	c.peerFits()
	c.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, keyOff+32, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R9, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, keyOff+34, asm.R1, asm.Half),
		asm.LoadMapPtr(asm.R1, c.m.flows.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "unknown_flow"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord), // per-flow packet count
	)
	c.c(cntFastPath)
	c.emit(asm.Ja.Label("to_peer"))
}

// peerFits sends a frame the other port would not take to the workers
// ("oversize"): one longer than its MTU plus an Ethernet header and one
// VLAN tag, the most the kernel forwards a redirected frame with
// (xdp_ok_fwd_dev; bpf_check_mtu allows no tag, hence the 4 bytes less).
// Only generic XDP sees such frames: it runs on the skb after GRO, or on
// a local sender's GSO skb (a tap or veth). Redirected, the kernel drops
// them after the program counted them sent. An AF_PACKET port takes a
// super-segment and sends it with GSO. A frame no longer than what fitted
// when the program was loaded goes without asking (the helper call costs
// about 10 ns a frame in BPF_PROG_TEST_RUN here); a longer one is checked against
// the MTU as it is now (an error, no such device, leaves it to the
// redirect). So only an MTU lowered while the program runs lets the
// kernel drop frames again. Clobbers R0-R5.
func (c *classifier) peerFits() {
	fits := c.fresh()
	c.emit(
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, int32(min(c.m.peerFit, 0xffff))),
		asm.JGE.Reg(asm.R2, asm.R8, fits),
	)
	c.emit(
		asm.StoreImm(asm.RFP, mtuOff, 0, asm.Word), // 0: the frame's own length
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, int32(c.m.peerDev)),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, mtuOff),
		asm.Mov.Imm(asm.R4, -4),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCheckMtu.Call(),
		asm.JEq.Imm(asm.R0, mtuFragNeeded, "oversize"),
	)
	c.label(fits)
}

// toPeer counts non-TCP frames and redirects them and fast-path frames to
// the other port through the devmap; without an entry there the frame is
// dropped and counted. A non-TCP frame longer than the other port takes
// goes to the workers (peerFits; tcp checks TCP before its lookup).
func (c *classifier) toPeer() {
	c.label("non_tcp")
	c.peerFits()
	c.c(cntNonTCP)
	c.label("to_peer")
	c.emit(
		asm.LoadMapPtr(asm.R1, c.m.peer.FD()),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, xdpDrop), // fallback action if the entry is missing
		asm.FnRedirectMap.Call(),
		asm.JNE.Imm(asm.R0, xdpRedirect, "peer_miss"),
	)
	c.c(cntToPeer)
	c.emit(asm.Mov.Imm(asm.R0, xdpRedirect), asm.Return())
	c.label("peer_miss")
	c.c(cntRedirectMiss)
	c.emit(asm.Mov.Imm(asm.R0, xdpDrop), asm.Return())
}

// workerReasons counts each reason a frame goes to the engine, then joins
// toXSK.
func (c *classifier) workerReasons() {
	for _, r := range []struct {
		label string
		slot  int
	}{
		{"syn", cntSYN}, {"fin_rst", cntFINRST}, {"unknown_flow", cntUnknownFlow}, {"truncated", cntTruncated},
		{"fragment", cntFragment}, {"ipv6ext", cntIPv6Ext}, {"unparsed", cntUnparsed},
		{"all_to_xsk", cntAllToXSK}, {"icmp_error", cntICMPError}, {"oversize", cntOversize},
	} {
		c.label(r.label)
		c.c(r.slot)
		c.emit(asm.Ja.Label("to_xsk"))
	}
}

// toXSK redirects to the AF_XDP socket of the RX queue. If none is
// registered the frame is dropped (and counted): XDP_PASS would hand it to
// the appliance namespace's own stack, where a bump frame is lost anyway,
// and forwarding it past the engine would let a connection start without
// negotiation. A dropped SYN or segment is retransmitted by TCP.
func (c *classifier) toXSK() {
	c.label("to_xsk")
	c.emit(
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // xdp_md.rx_queue_index
		asm.LoadMapPtr(asm.R1, c.m.xsks.FD()),
		asm.Mov.Imm(asm.R3, xdpDrop),
		asm.FnRedirectMap.Call(),
		asm.JNE.Imm(asm.R0, xdpRedirect, "no_socket"),
	)
	c.c(cntToXSK)
	c.emit(asm.Mov.Imm(asm.R0, xdpRedirect), asm.Return())
	c.label("no_socket")
	c.c(cntNoSocket)
	c.emit(asm.Mov.Imm(asm.R0, xdpDrop), asm.Return())
}

// toStack is toXSK for a bump whose workers read an AF_PACKET socket
// (SlowPathStack): the frame is passed to the kernel, where GRO coalesces
// consecutive TCP segments and the socket's tap sees the result. The
// appliance namespace's own stack must not act on it: Bump's TC ingress
// program, which runs after the taps, drops every frame that was passed.
func (c *classifier) toStack() {
	c.label("to_xsk")
	c.c(cntToStack)
	c.emit(asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
}
