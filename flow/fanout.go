package flow

import "encoding/binary"

// FanoutHash is the symmetric flow hash of a TCP segment of k that the
// AF_PACKET backend's fanout program computes in the kernel for every
// frame (afpacket.FanoutProgram); the kernel gives the frame to member
// FanoutHash % n of the port's fanout group. Workers compute the same here
// for flows they own, so both directions of a connection land on the
// worker that owns it, and a super-segment is never handed between workers.
//
// The input is the XOR of the addresses' 32-bit big-endian words (one each
// for IPv4, four each for IPv6) and of the two ports; the XOR makes it the
// same for k and k.Reverse(). A multiply-xorshift mixes it, so that ports
// which differ in a few bits still spread over the members.
func FanoutHash(k Key) uint32 {
	return FanoutMix(fanoutInput(k))
}

func fanoutInput(k Key) uint32 {
	words := 1
	if k.Family == 6 {
		words = 4
	}
	var a uint32
	for i := range words {
		a ^= binary.BigEndian.Uint32(k.Src[4*i:]) ^ binary.BigEndian.Uint32(k.Dst[4*i:])
	}
	return a ^ uint32(k.SrcPort^k.DstPort)
}

// FanoutMix is the mixing step of FanoutHash, exported so that the
// kernel-side program (afpacket.FanoutProgram) and its tests share the
// constants.
func FanoutMix(h uint32) uint32 {
	h ^= h >> 16
	h *= FanoutMul
	h ^= h >> 16
	h *= FanoutMul
	h ^= h >> 16
	return h
}

// FanoutMul is FanoutMix's multiplier.
const FanoutMul = 0x45d9f3b

// Fanout is the flow-to-worker map of an AF_PACKET fanout group of n
// members, joined in worker order: flow k belongs to worker
// FanoutHash(k) % n, as the kernel's PACKET_FANOUT_EBPF demux computes it.
type Fanout struct{ n uint32 }

// NewFanout returns the map for n members (at least 1).
func NewFanout(n int) Fanout { return Fanout{n: uint32(max(n, 1))} }

// Queue is the member (worker) that receives both directions of k's flow.
func (f Fanout) Queue(k Key) int { return int(FanoutHash(k) % f.n) }
