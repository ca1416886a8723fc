// Package afpacket is a port backend for interfaces without zero-copy
// AF_XDP (veth, virtio, most cloud NICs): an AF_PACKET socket per port with
// PACKET_VNET_HDR, so that TCP moves through user space as super-segments of
// up to 64 KiB, one system call for a batch of them, instead of one skb and
// one copy per 1.5 KB frame.
//
// # Receive
//
// With GRO on the interface (for veth, `ethtool -K PORT gro on`, which also
// gives the veth NAPI), the kernel coalesces consecutive segments of a TCP
// flow into one skb; a sender with TSO hands over such super-segments itself.
// Each frame read from the socket is preceded by a virtio_net_hdr
// ([VnetHdr]): a GSO type (TCPv4 or TCPv6) and gso_size (the segment size
// the segments had) for a super-segment, and for a partial checksum
// (FlagNeedsCsum) where it starts and where the field is. The field then
// holds only the pseudo-header sum; [VnetHdr.CompleteChecksum] finishes it,
// or the header is carried to the transmit side and the kernel finishes it.
// [CheckTCP] validates a received header against its frame (the kernel's
// hdr_len is recomputed, never trusted).
//
// # Transmit
//
// [PrepareGSO] sets the IP length and the pseudo-header sum of a frame with
// any amount of TCP payload and returns the header that makes the kernel cut
// it into segments of gso_size payload bytes and fill in every checksum
// (in software if the device has no TSO, in the NIC otherwise; with
// PACKET_QDISC_BYPASS the kernel cannot segment in software and drops the
// frame, so the first such drop turns the bypass off: Options.QdiscBypass).
// [Segment]
// does the same cut in software, for a far side that must see MTU-sized
// frames from user space.
//
// # Sockets
//
// [Open] binds a socket to one interface for every protocol (ETH_P_ALL),
// promiscuous, ignoring its own outgoing frames (PACKET_IGNORE_OUTGOING),
// optionally with PACKET_QDISC_BYPASS. The kernel moves a frame's outer VLAN
// tag out of the data before packet sockets see it; Read puts it back from
// PACKET_AUXDATA (moving the frame by 4 bytes). [Socket.Read] and [Socket.Write]
// move a batch of frames with one recvmmsg or sendmmsg; like wireguard-go's
// tun.Device they take caller-owned buffers and an offset, and the
// virtio_net_hdr sits in the VnetHdrLen bytes before the offset.
// [Socket.WriteGather] sends frames made of several pieces each
// (scatter-gather), so a frame merged from others needs no copy. None
// blocks; [Socket.Wait] does.
//
// The frame logic (vnet.go, frame.go, csum.go, gso.go) is plain Go with no
// system calls, tested by tables and FuzzGSOSegment; the socket is
// Linux-only and tested in network namespaces against the kernel's own TCP.
package afpacket
