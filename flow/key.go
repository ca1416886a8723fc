package flow

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
)

// Key identifies one direction of a TCP connection as seen on the wire:
// Src:SrcPort is the source, Dst:DstPort the destination. It is a fixed-size
// comparable value with no pointers, so it is cheap to hash and compare and
// the garbage collector never scans tables of keys.
//
// IPv4 addresses sit in the first 4 bytes of their [16]byte, the rest zero;
// Family is 4 or 6. Ports are in host byte order, so Key{SrcPort: 443}
// means port 443. The layout is also the key of the XDP fast-path map
// (package xsk), which the classifier fills from the headers.
type Key struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Family           uint8
	_                [3]byte
}

// MakeKey builds a Key from address bytes (4 bytes for IPv4, 16 for IPv6) as
// they appear in the IP header. It returns the zero Key if the lengths are
// not 4 or 16 or differ.
func MakeKey(src, dst []byte, srcPort, dstPort uint16) Key {
	var k Key
	if len(src) != len(dst) || (len(src) != 4 && len(src) != 16) {
		return k
	}
	copy(k.Src[:], src)
	copy(k.Dst[:], dst)
	k.SrcPort, k.DstPort = srcPort, dstPort
	k.Family = 6
	if len(src) == 4 {
		k.Family = 4
	}
	return k
}

// KeyFrom builds a Key from netip values (test and control-plane use).
func KeyFrom(src, dst netip.AddrPort) Key {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() != d.Is4() {
		return Key{}
	}
	if s.Is4() {
		a, b := s.As4(), d.As4()
		return MakeKey(a[:], b[:], src.Port(), dst.Port())
	}
	a, b := s.As16(), d.As16()
	return MakeKey(a[:], b[:], src.Port(), dst.Port())
}

// AddrPorts returns the endpoints as netip values.
func (k Key) AddrPorts() (src, dst netip.AddrPort) {
	return netip.AddrPortFrom(k.addr(&k.Src), k.SrcPort), netip.AddrPortFrom(k.addr(&k.Dst), k.DstPort)
}

func (k Key) addr(a *[16]byte) netip.Addr {
	if k.Family == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

// String formats the key as "src -> dst" (not for the packet path).
func (k Key) String() string {
	src, dst := k.AddrPorts()
	return src.String() + " -> " + dst.String()
}

// Reverse returns the key of the opposite direction.
func (k Key) Reverse() Key {
	r := k
	r.Src, r.Dst = k.Dst, k.Src
	r.SrcPort, r.DstPort = k.DstPort, k.SrcPort
	return r
}

// Canonical returns the direction-independent form of k: the key itself or its
// reverse, whichever has the smaller (address, port) source endpoint. k and
// k.Reverse() have the same canonical form.
func (k Key) Canonical() Key {
	if k.less() {
		return k
	}
	return k.Reverse()
}

// less reports whether endpoint 0 sorts at or before endpoint 1.
func (k Key) less() bool {
	for i := 0; i < 16; i += 8 {
		a := binary.BigEndian.Uint64(k.Src[i:])
		b := binary.BigEndian.Uint64(k.Dst[i:])
		if a != b {
			return a < b
		}
	}
	return k.SrcPort <= k.DstPort
}

// HashKey is a 128-bit SipHash key.
type HashKey [16]byte

// processKey keys SymmetricHash. It is drawn once per process, so that all
// workers of one daemon agree on flow owners while remote hosts cannot
// predict which flows share an owner or a bucket.
var processKey = func() HashKey {
	var k HashKey
	if _, err := rand.Read(k[:]); err != nil {
		panic("flow: no randomness for the hash key: " + err.Error())
	}
	return k
}()

// SymmetricHash returns a hash that is the same for k and k.Reverse(), so both
// directions of a connection choose the same owner worker (see Owner). It is
// SipHash-2-4 (a keyed PRF) of the canonical key under a random per-process
// key: an attacker who picks addresses and ports cannot steer flows onto one
// worker or make them collide, short of breaking SipHash.
func (k Key) SymmetricHash() uint64 { return k.SymmetricHashKeyed(&processKey) }

// SymmetricHashKeyed is SymmetricHash under an explicit key (tests, or several
// processes that must agree).
func (k Key) SymmetricHashKeyed(hk *HashKey) uint64 {
	c := k.Canonical()
	k0 := binary.LittleEndian.Uint64(hk[0:])
	k1 := binary.LittleEndian.Uint64(hk[8:])
	// The 40-byte message: both addresses, both ports (big endian), family, three zero bytes.
	m := [5]uint64{
		binary.LittleEndian.Uint64(c.Src[0:]),
		binary.LittleEndian.Uint64(c.Src[8:]),
		binary.LittleEndian.Uint64(c.Dst[0:]),
		binary.LittleEndian.Uint64(c.Dst[8:]),
		uint64(c.SrcPort>>8) | uint64(c.SrcPort&0xff)<<8 |
			uint64(c.DstPort>>8)<<16 | uint64(c.DstPort&0xff)<<24 | uint64(c.Family)<<32,
	}
	return sipHash24(k0, k1, m[:], 40)
}

// Owner maps the symmetric hash of k onto one of n workers. It uses the high
// bits of the hash (multiply-shift), which is uniform for any n, not only
// powers of two. Both directions of a flow get the same owner.
func (k Key) Owner(n int) int {
	if n <= 1 {
		return 0
	}
	hi, _ := mul64(k.SymmetricHash(), uint64(n))
	return int(hi)
}
