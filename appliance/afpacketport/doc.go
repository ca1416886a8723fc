// Package afpacketport is the appliance's AF_PACKET port backend, for
// interfaces where AF_XDP can only copy (veth, virtio, most cloud NICs):
// one socket of package afpacket with PACKET_VNET_HDR per port ([Open]),
// driven by a worker (package appliance) as a bump.Port, bump.PairWaiter and
// bump.FdPoller.
//
// TCP crosses it as super-segments. On receive, GRO on the interface
// ([EnableGRO]) or a sender's TSO hands over up to 64 KiB of one flow in one
// frame; the port checks its virtio_net_hdr (afpacket.CheckTCP; a frame it
// rejects is dropped and counted, never passed on), completes a partial
// checksum (so the engine sees complete checksums) and gives the frame's
// segment size to the worker in bump.Desc.GSO. On transmit, a frame with
// Desc.GSO leaves as one GSO frame that the kernel (or the NIC) cuts at that
// size again; frames the engine built, one segment each, are merged when
// adjacent frames of one flow are exactly what the kernel's segmentation of
// one super-frame gives back (merge.go, [MergeFrames]).
//
// A port has fixed slots of afpacket.MaxFrame bytes, RX and TX, in one
// buffer; a bump.Desc names a slot. One recvmmsg fills free RX slots; Kick
// sends what Transmit queued with sendmmsg, and a TX slot is free again as
// soon as sendmmsg returns.
//
// Everything but this comment, the merge logic and the receive checks is
// Linux-only.
package afpacketport
