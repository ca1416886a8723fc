package packet

import (
	"encoding/binary"
	"math/bits"
)

// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// A running sum is kept as a uint32 holding a ones' complement sum of 16-bit
// big-endian words that may still carry above bit 15; Checksum folds it and
// complements it. The sum does not depend on byte order within the machine,
// only on which bytes sit at even and odd offsets of the checksummed data.

// Sum adds the 16-bit big-endian words of b to the running sum acc and returns
// the new running sum, which is acc plus at most 0xffff: acc must stay below
// 2^32 - 2^16 (the sums of a few parts that callers chain are far below).
// b is taken to start at an even offset of the checksummed data; an odd final
// byte is padded with a zero byte.
//
// It adds b as little-endian words, which lets the machine load them as they
// lie, and swaps the folded result: a ones' complement sum does not depend
// on byte order, only swaps with it (RFC 1071 §2(B)).
func Sum(b []byte, acc uint32) uint32 {
	return acc + uint32(bits.ReverseBytes16(fold64(sumLE(b))))
}

// sumLE is the ones' complement sum of b as little-endian 16-bit words, not
// yet folded: in SIMD where the machine has it (checksum_amd64.go).
func sumLE(b []byte) uint64 {
	if haveSIMD {
		return sumSIMD(b, wideSIMD)
	}
	return sumGeneric(b)
}

// sumGeneric is sumLE in plain Go: one chain of 64-bit adds with carry,
// 64 bytes a round.
func sumGeneric(b []byte) uint64 {
	var s, c uint64
	for len(b) >= 64 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), 0)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[32:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[40:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[48:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[56:]), c)
		s += c // cannot carry again: s <= 2^64-2 after a carry out
		b = b[64:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), 0)
		s += c
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.LittleEndian.Uint32(b)), 0)
		s += c
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.LittleEndian.Uint16(b)), 0)
		s += c
		b = b[2:]
	}
	if len(b) == 1 {
		s, c = bits.Add64(s, uint64(b[0]), 0) // the low byte of a little-endian word
		s += c
	}
	return s
}

// fold64 reduces a 64-bit ones' complement sum to 16 bits (end-around carry).
func fold64(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

func fold32(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Checksum returns the Internet checksum of b added to the running sum acc
// (for example a pseudo-header sum): the complement of the folded sum.
func Checksum(b []byte, acc uint32) uint16 {
	return ^fold32(Sum(b, acc))
}

// Finish returns the Internet checksum of a running sum: Checksum(nil,
// acc), for a sum built up from parts computed before.
func Finish(acc uint32) uint16 { return ^fold32(acc) }

// Update16 returns the checksum hc after a 16-bit word at an even offset of the
// checksummed data changes from old to new, by RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m'). For a word at an odd offset, pass both values
// byte-swapped (bits.ReverseBytes16), or use UpdateBytes.
func Update16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	return ^fold32(s)
}

// Update32 is Update16 for a 32-bit field at an even offset (two words), such
// as a TCP sequence or acknowledgement number.
func Update32(hc uint16, old, new uint32) uint16 {
	s := uint32(^hc) + uint32(^uint16(old>>16)) + uint32(^uint16(old)) +
		uint32(uint16(new>>16)) + uint32(uint16(new))
	return ^fold32(s)
}

// UpdateBytes returns the checksum hc after the bytes old, which start at
// an odd offset of the checksummed data if odd is true, are replaced by new
// bytes of the same length. It is RFC 1624 equation 3 applied word by word; at
// an odd offset every byte lands in the other half of its word, which is the
// same as byte-swapping the sum.
func UpdateBytes(hc uint16, odd bool, old, new []byte) uint16 {
	if len(old) != len(new) {
		panic("packet: UpdateBytes with different lengths")
	}
	so, sn := fold32(Sum(old, 0)), fold32(Sum(new, 0))
	if odd {
		so, sn = bits.ReverseBytes16(so), bits.ReverseBytes16(sn)
	}
	return Update16(hc, so, sn)
}

// pseudoSum returns the running sum of the TCP/UDP/ICMPv6 pseudo-header
// (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6).
func pseudoSum(src, dst []byte, proto uint8, length int) uint32 {
	return PseudoHeaderSum(src, dst, proto, length)
}

// PseudoHeaderSum returns the running sum of the pseudo-header of a TCP, UDP
// or ICMPv6 segment of length bytes between the addresses src and dst (4 or
// 16 bytes each; RFC 9293 §3.1, RFC 8200 §8.1), to pass to Checksum as acc.
// It adds 32-bit words, which fold to the same sum as their 16-bit halves.
func PseudoHeaderSum(src, dst []byte, proto uint8, length int) uint32 {
	s := uint64(proto) + uint64(uint32(length))
	if len(src) == 4 && len(dst) == 4 {
		s += uint64(binary.BigEndian.Uint32(src)) + uint64(binary.BigEndian.Uint32(dst))
		return uint32(fold64(s))
	}
	for len(src) >= 4 {
		s += uint64(binary.BigEndian.Uint32(src))
		src = src[4:]
	}
	for len(dst) >= 4 {
		s += uint64(binary.BigEndian.Uint32(dst))
		dst = dst[4:]
	}
	return uint32(fold64(s)) // addresses are 4 or 16 bytes: nothing left over
}
