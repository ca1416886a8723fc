package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// RSS is a NIC's receive-side scaling function for TCP: the Toeplitz hash
// of a segment's addresses and ports under the NIC's key, whose low bits
// index the indirection table, whose entry is the RX queue. With it the
// appliance computes, for any flow, the queue the NIC puts the flow's
// segments on, so that the worker of that queue can own the flow and the
// NIC, not a hand-off between workers, brings it its frames. It must be the
// same for both directions of every flow ([RSS.Symmetric]): a symmetric key
// (period 16 bits, [SymmetricKey]) or an input transform that makes it so.
//
// The input is the Microsoft RSS specification's ("Verifying the RSS Hash
// Calculation", also the Intel 82599 datasheet §7.1.2.8): source address,
// destination address, source port, destination port, in network byte
// order; the tests hold its vectors.
type RSS struct {
	key   []byte
	xfrm  Transform
	indir []uint32
	// tab[i][v] is the hash contribution of input byte i holding v: the
	// Toeplitz hash is linear over XOR, so a hash is one lookup per input
	// byte instead of 8 shifts (36 lookups for IPv6, 12 for IPv4).
	tab [][256]uint32
}

// Transform is a NIC's RSS input transform (Linux: ethtool's `xfrm`,
// RXH_XFRM_* in the ethtool_rxfh the kernel reports).
type Transform uint8

const (
	// NoTransform hashes the fields as they are.
	NoTransform Transform = 0
	// SymXor hashes (src^dst, src^dst, sport^dport, sport^dport), as Linux
	// documents RXH_XFRM_SYM_XOR (Documentation/networking/scaling.rst).
	SymXor Transform = 1 << 0
	// SymOrXor hashes (src|dst, src^dst, sport|dport, sport^dport)
	// (RXH_XFRM_SYM_OR_XOR).
	SymOrXor Transform = 1 << 1
)

// rssInputMax is the longest hash input: two IPv6 addresses and two ports.
const rssInputMax = 36

// ErrRSS wraps every reason NewRSS refuses a configuration.
var ErrRSS = errors.New("flow: unusable RSS configuration")

// NewRSS prepares the function of a NIC with this Toeplitz key, indirection
// table and input transform. The key must cover the longest input (40
// bytes, the size NICs use); the table must not be empty.
func NewRSS(key []byte, indir []uint32, xfrm Transform) (*RSS, error) {
	if len(key) < rssInputMax+4 {
		return nil, fmt.Errorf("%w: key of %d bytes (at least %d)", ErrRSS, len(key), rssInputMax+4)
	}
	if len(indir) == 0 {
		return nil, fmt.Errorf("%w: empty indirection table", ErrRSS)
	}
	if xfrm&^(SymXor|SymOrXor) != 0 || xfrm == SymXor|SymOrXor {
		return nil, fmt.Errorf("%w: input transform %#x", ErrRSS, uint8(xfrm))
	}
	r := &RSS{key: bytes.Clone(key), xfrm: xfrm, indir: append([]uint32(nil), indir...), tab: make([][256]uint32, rssInputMax)}
	for i := range rssInputMax {
		for b := range 8 {
			w := keyWindow(key, 8*i+b)
			bit := byte(0x80) >> b
			for v := range 256 {
				if byte(v)&bit != 0 {
					r.tab[i][v] ^= w
				}
			}
		}
	}
	return r, nil
}

// keyWindow is the 32 key bits starting at bit off (big endian), the value
// the Toeplitz hash XORs in for an input bit at off.
func keyWindow(key []byte, off int) uint32 {
	w := binary.BigEndian.Uint64(append(key[off/8:off/8+5:off/8+5], 0, 0, 0))
	return uint32(w << (off % 8) >> 32)
}

// Toeplitz is the Toeplitz hash of input under key, bit by bit as the
// specification defines it (NewRSS's tables compute the same faster).
func Toeplitz(key, input []byte) uint32 {
	var h uint32
	for i, v := range input {
		for b := range 8 {
			if v&(0x80>>b) != 0 {
				h ^= keyWindow(key, 8*i+b)
			}
		}
	}
	return h
}

// Input writes the hash input of k after the transform to buf and returns
// its length (12 for IPv4, 36 for IPv6).
func (r *RSS) Input(k Key, buf *[rssInputMax]byte) int {
	alen := 16
	src, dst := k.Src[:], k.Dst[:]
	if k.Family == 4 {
		alen = 4
		src, dst = src[:4], dst[:4] // IPv4 addresses sit in the first 4 bytes
	}
	sp, dp := k.SrcPort, k.DstPort
	a, b := buf[:alen], buf[alen:2*alen]
	switch r.xfrm {
	case SymXor:
		for i := range alen {
			a[i] = src[i] ^ dst[i]
			b[i] = a[i]
		}
		sp, dp = sp^dp, sp^dp
	case SymOrXor:
		for i := range alen {
			a[i] = src[i] | dst[i]
			b[i] = src[i] ^ dst[i]
		}
		sp, dp = sp|dp, sp^dp
	default:
		copy(a, src)
		copy(b, dst)
	}
	binary.BigEndian.PutUint16(buf[2*alen:], sp)
	binary.BigEndian.PutUint16(buf[2*alen+2:], dp)
	return 2*alen + 4
}

// Hash is the NIC's 32-bit RSS hash of a TCP segment of k.
func (r *RSS) Hash(k Key) uint32 {
	var in [rssInputMax]byte
	n := r.Input(k, &in)
	var h uint32
	for i, v := range in[:n] {
		h ^= r.tab[i][v]
	}
	return h
}

// Queue is the RX queue the NIC puts a TCP segment of k on: the
// indirection table's entry at the hash's low bits (modulo the table size,
// a power of two on every NIC that reports one).
func (r *RSS) Queue(k Key) int {
	return int(r.indir[r.Hash(k)%uint32(len(r.indir))])
}

// Same reports whether r and o are one function: same key, table and
// transform (two ports must agree for a flow's directions to meet).
func (r *RSS) Same(o *RSS) bool {
	return r.xfrm == o.xfrm && bytes.Equal(r.key, o.key) && slices.Equal(r.indir, o.indir)
}

// MaxQueue is the highest queue the indirection table names.
func (r *RSS) MaxQueue() int {
	m := uint32(0)
	for _, q := range r.indir {
		m = max(m, q)
	}
	return int(m)
}

// Symmetric reports whether the hash is the same for both directions of
// every flow: an input transform that makes it so, or a key whose bits
// repeat every 16 (then swapping the addresses, which sit a multiple of 16
// bits apart, and the ports does not change any key window they meet).
func (r *RSS) Symmetric() bool {
	if r.xfrm != NoTransform {
		return true
	}
	// Swapping src and dst moves each input bit by ±alen*8, a multiple of
	// 16; the hash is unchanged when the window at every input bit equals
	// the window 16 bits on, over the whole input.
	for i := range rssInputMax - 2 {
		if r.tab[i] != r.tab[i+2] {
			return false
		}
	}
	return true
}

// SymmetricKey is the 40-byte key 0x6d5a repeated: the usual choice for a
// symmetric Toeplitz hash (`ethtool -X PORT hkey 6d:5a:6d:5a:...`).
func SymmetricKey() []byte {
	k := make([]byte, rssInputMax+4)
	for i := range k {
		k[i] = [2]byte{0x6d, 0x5a}[i%2]
	}
	return k
}
