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
// the new running sum. b is taken to start at an even offset of the
// checksummed data; an odd final byte is padded with a zero byte.
func Sum(b []byte, acc uint32) uint32 {
	var s, c uint64
	s = uint64(acc)
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), 0)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		s += c // cannot carry again: s <= 2^64-2 after a carry out
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), 0)
		s += c
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), 0)
		s += c
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), 0)
		s += c
		b = b[2:]
	}
	if len(b) == 1 {
		s, c = bits.Add64(s, uint64(b[0])<<8, 0)
		s += c
	}
	return uint32(fold64(s))
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
	acc := Sum(src, 0)
	acc = Sum(dst, acc)
	return acc + uint32(proto) + uint32(length>>16) + uint32(length&0xffff)
}
