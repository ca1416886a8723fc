// Package xsk is tcpinc's packet I/O: AF_XDP sockets written directly on
// golang.org/x/sys/unix, and the XDP classifier that decides, per frame,
// whether the engine needs to see it (written with cilium/ebpf's asm
// package, so building needs no C toolchain). Nothing above this package
// knows about sockets, rings or BPF; all unsafe and x/sys/unix code of the
// project stays here. The package is Linux-only, but for the names of the
// types it shares with the appliance (types.go: Desc, PortID, FlowKey),
// which are defined in the portable packages bump and flow.
//
// # Sockets
//
// [Open] creates one AF_XDP socket for one queue of one interface, with its
// own UMEM (an anonymous mapping registered with XDP_UMEM_REG) and the four
// rings mapped at the offsets XDP_MMAP_OFFSETS reports. The UMEM is split in
// two: the first half of the frames serve RX and all start on the fill ring,
// the second half serve TX and start on a free list. The fill ring holds
// every RX frame and the completion ring every TX frame, so neither ring can
// be why a frame is stuck.
//
// The rings follow cilium/ebpf's ringbuf discipline: the kernel's index is
// read (atomically, with acquire semantics) only when the cached copy cannot
// serve a batch, and our index is published with one atomic store per batch.
// Every call is batch-shaped ([Socket.Receive], [Socket.Release],
// [Socket.GetTx], [Socket.Transmit] take a []Desc) and allocates nothing,
// which the tests prove with testing.AllocsPerRun, syscalls included.
//
// A socket has two independent halves: RX (Receive, Release) and TX (GetTx,
// PutTx, Transmit, Kick). They use disjoint rings and frames, so each half
// may be driven by its own goroutine (tcpinc's workers drive both halves of
// both ports' sockets of one queue from a single goroutine). [Wait] and
// [Socket.Stats] read only shared, atomically updated state and may be
// called from anywhere.
//
// # Frame ownership
//
// A [Desc] names a frame; the frame itself always has exactly one owner, and
// the socket keeps a state byte per frame to enforce it:
//
//	kernel (fill ring) --Receive--> caller --Release--> kernel
//	free list --GetTx--> caller --Transmit--> kernel (TX ring) --completion--> free list
//	                      caller --PutTx--> free list   (not sent after all)
//
// A frame is never handed out twice. A descriptor passed to Release,
// Transmit or PutTx that the caller does not own in that role (a double
// release, an RX frame passed to Transmit, a length past the frame end, a
// made-up address) is refused: it is counted in [Stats].Misuse and the first
// one is kept as [Socket.Err]. Nothing panics and nothing is silently
// corrupted. [Socket.Frame] returns a view into the UMEM that is valid only
// while the caller owns the frame; TX frames start at [Headroom] like RX
// data, so every received frame fits a TX frame of any socket.
//
// # Binding and wakeups
//
// With [BindAuto], Open first binds with XDP_ZEROCOPY and, if the driver
// refuses (veth always does, with EOPNOTSUPP), builds the socket again and
// binds with XDP_COPY. [Socket.BindMode] reports the outcome. Sockets are
// bound with XDP_USE_NEED_WAKEUP: [Socket.Kick] calls sendto only when the
// TX ring's flag asks for it, but then keeps calling while descriptors
// remain, because a copy-mode sendto sends at most 32 frames and answers
// EAGAIN while more are left. When the device queue pushes back (veth
// applies backpressure when its peer's queue is full), Kick stops after a
// few fruitless calls and [Wait] caps its poll(2) at [TxRetry] while any
// socket still has untransmitted frames, since poll retries the
// transmission. Without that cap a busy queue costs a whole poll timeout
// (in the namespace test one TCP transfer fell from ~1.4 Gbit/s to 39 Mbit/s).
// XDP_STATISTICS and the socket's own counters are in [Socket.Stats].
//
// # The classifier
//
// [AttachBump] attaches one XDP program to each port of the bump
// (docs/architecture.md §3). A program parses Ethernet, up to two VLAN tags
// (802.1Q or 802.1ad), IPv4 (with its IHL) and IPv6 (TCP must follow the
// fixed header directly), and gives each frame one of two verdicts:
//
//   - to the other port through a devmap (key 0 = other port): non-TCP
//     frames, and TCP frames without SYN, FIN or RST whose flow (this
//     direction's [FlowKey]) is in the fast-path LRU map, which both ports
//     share;
//   - to the AF_XDP socket of the RX queue through the port's XSKMAP:
//     everything else. SYNs, FINs and RSTs (so user space sees every
//     connection start, end and reuse of its tuple, even on the fast path),
//     unknown flows, ICMP error messages (one from the inside may quote a
//     segment the appliance delivered decrypted; for an encrypted flow the
//     engine must translate the sequence number a path MTU error quotes and
//     lower the MTU by the frame overhead), and every frame the program
//     cannot classify with certainty: truncated headers, IPv4 fragments of
//     TCP or ICMP (a later fragment shows no ports or ICMP type, a first one
//     may belong to an encrypted flow or start a quote), IPv6 with an
//     extension header that may precede TCP, a bad version or IHL, a third
//     VLAN tag. Other IPv4 fragments (UDP, ...) are non-TCP.
//
// The rules in full, case by case, are the table in package
// xsk/classifiertest; it is run against this program (with
// BPF_PROG_TEST_RUN), the Go reference classifier there and appliance's
// in-memory bump, and fuzz targets hold the program and the bump to the
// reference. A rule is changed in the table first.
//
// [Bump.SetFastPath](false) (or [Bump.SetPortFastPath] for one port) sends
// every frame arriving at a port, non-TCP included, to the AF_XDP socket
// (counted as AllToXSK): a two-entry config array map, read first by both
// programs, holds each port's switch, so user space sees all traffic.
//
// With [SlowPathStack] ([AttachOptions]) the second verdict is XDP_PASS
// instead (counted ToStack): the frame goes up the kernel's receive path,
// where GRO coalesces TCP segments, and an AF_PACKET socket on the port
// (package appliance/afpacketport) takes it from its tap; a TC ingress
// program, which runs after the taps, drops it there (StackDropped), so the
// appliance namespace's own stack never sees it. Everything else of the
// program is the same.
//
// With SlowPathXSK, if no socket is registered for the queue the frame is
// dropped, not passed: XDP_PASS would hand it to the appliance namespace's own stack,
// where a bump frame is lost anyway, and forwarding it past the engine would
// let a connection start without negotiation. TCP retransmits what was
// dropped. Each verdict and each reason is counted in a per-CPU array
// ([Bump.Stats]). Other encapsulations (PPPoE, MPLS, GRE) are not looked
// into: they count as non-TCP, are forwarded unchanged and stay unencrypted.
//
// With [XDPAuto] each port gets native (driver) mode if the driver supports
// it and generic mode otherwise; [Bump.Mode] reports which. The programs are
// attached through bpf_link, so they disappear with the process even when it
// crashes; [CleanupStale] removes what a previous run left anyway: programs
// attached through netlink (they outlive their process) and bpf_links that
// were pinned.
//
// # The veth caveat
//
// A native-mode devmap redirect into a veth delivers only if the veth's peer
// (the interface in the neighbouring namespace) runs NAPI: it has an XDP
// program attached or `ethtool -K <peer> gro on`. Otherwise the redirect
// fails after the program returned XDP_REDIRECT: ToPeer counts the frame,
// but the kernel drops it and counts it as an RX drop of the ingress port
// (`ethtool -S <port>` rx_queue_0_drops, `ip -s link` RX dropped, and the
// xdp:xdp_redirect_err tracepoint). [Bump.RedirectReady] checks the
// condition (the other port's NETDEV_XDP_ACT_NDO_XMIT feature, read over
// generic netlink); tcpincd checks it at start and every second, and turns
// the fast path of a port whose redirect cannot deliver off
// ([Bump.SetPortFastPath]), so its frames go through user space instead of
// being dropped. Real NICs have no such condition, and
// generic mode transmits through the normal skb path, where the kernel
// drops a redirected frame longer than the other port's MTU (plus an
// Ethernet header and a VLAN tag): generic XDP runs on the skb after GRO,
// or on a local sender's GSO skb, so a fast-path frame can be a
// super-segment. The program sends such a frame to the workers instead
// (Oversize): an AF_PACKET port (SlowPathStack) takes it and sends it on
// with GSO; an AF_XDP socket has no UMEM frame for it and drops it
// (its RxDropped). Test topologies that
// use veth must also turn off TX checksum offload and TSO/GSO on the
// neighbours (`ethtool -K <peer> tx off tso off gso off`): otherwise AF_XDP
// sees frames with partial checksums and 64 KB super-frames.
package xsk
