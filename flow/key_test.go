package flow

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// refSipHash24 is a byte-oriented SipHash-2-4 written from the paper, for any
// message length. It checks the fixed-length word version used by Key.
func refSipHash24(key []byte, msg []byte) uint64 {
	k0, k1 := binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[8:])
	v := [4]uint64{k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573}
	round := func() {
		v[0] += v[1]
		v[1] = bits.RotateLeft64(v[1], 13) ^ v[0]
		v[0] = bits.RotateLeft64(v[0], 32)
		v[2] += v[3]
		v[3] = bits.RotateLeft64(v[3], 16) ^ v[2]
		v[0] += v[3]
		v[3] = bits.RotateLeft64(v[3], 21) ^ v[0]
		v[2] += v[1]
		v[1] = bits.RotateLeft64(v[1], 17) ^ v[2]
		v[2] = bits.RotateLeft64(v[2], 32)
	}
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v[3] ^= m
		round()
		round()
		v[0] ^= m
		msg = msg[8:]
	}
	var last [8]byte
	copy(last[:], msg)
	last[7] = byte(n)
	m := binary.LittleEndian.Uint64(last[:])
	v[3] ^= m
	round()
	round()
	v[0] ^= m
	v[2] ^= 0xff
	for range 4 {
		round()
	}
	return v[0] ^ v[1] ^ v[2] ^ v[3]
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestSipHashVectors: the reference matches the SipHash paper's test vectors
// (key 00..0f; messages 00..n-1), and the word version matches the reference.
func TestSipHashVectors(t *testing.T) {
	key := seq(16)
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},  // vectors.h, first entry
		{15, 0xa129ca6149be45e5}, // the paper's Appendix A example
	} {
		if got := refSipHash24(key, seq(tc.n)); got != tc.want {
			t.Errorf("reference SipHash of %d bytes = %#x, want %#x", tc.n, got, tc.want)
		}
	}
	for _, n := range []int{0, 8, 16, 40} {
		msg := seq(n)
		words := make([]uint64, n/8)
		for i := range words {
			words[i] = binary.LittleEndian.Uint64(msg[8*i:])
		}
		k0, k1 := binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[8:])
		if got, want := sipHash24(k0, k1, words, n), refSipHash24(key, msg); got != want {
			t.Errorf("word SipHash of %d bytes = %#x, reference %#x", n, got, want)
		}
	}
}

func randKey(r *rand.Rand) Key {
	var k Key
	if r.IntN(2) == 0 {
		k.Family = 4
		binary.BigEndian.PutUint32(k.Src[:], r.Uint32())
		binary.BigEndian.PutUint32(k.Dst[:], r.Uint32())
	} else {
		k.Family = 6
		for _, a := range []*[16]byte{&k.Src, &k.Dst} {
			binary.BigEndian.PutUint64(a[:], r.Uint64())
			binary.BigEndian.PutUint64(a[8:], r.Uint64())
		}
	}
	k.SrcPort, k.DstPort = uint16(r.Uint32()), uint16(r.Uint32())
	return k
}

// TestSymmetricHashMatchesDefinition: the hash is SipHash-2-4 of the canonical
// key's documented 40-byte encoding.
func TestSymmetricHashMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	hk := HashKey(seq(16))
	for range 1000 {
		k := randKey(r)
		c := k.Canonical()
		msg := append(append(append([]byte{}, c.Src[:]...), c.Dst[:]...), byte(c.SrcPort>>8), byte(c.SrcPort), byte(c.DstPort>>8), byte(c.DstPort), c.Family, 0, 0, 0)
		if got, want := k.SymmetricHashKeyed(&hk), refSipHash24(hk[:], msg); got != want {
			t.Fatalf("%v: %#x, want %#x", k, got, want)
		}
	}
}

func TestKeyReverseAndSymmetry(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for range 10000 {
		k := randKey(r)
		rk := k.Reverse()
		if rk.Reverse() != k {
			t.Fatalf("Reverse is not an involution: %v", k)
		}
		if k.SymmetricHash() != rk.SymmetricHash() || k.Canonical() != rk.Canonical() {
			t.Fatalf("%v: hash differs between directions", k)
		}
		if k.Owner(6) != rk.Owner(6) {
			t.Fatalf("%v: owner differs between directions", k)
		}
	}
	// Same addresses and ports but different order are different flows.
	a := KeyFrom(netip.MustParseAddrPort("192.0.2.1:1000"), netip.MustParseAddrPort("192.0.2.2:2000"))
	b := KeyFrom(netip.MustParseAddrPort("192.0.2.1:2000"), netip.MustParseAddrPort("192.0.2.2:1000"))
	if a.SymmetricHash() == b.SymmetricHash() {
		t.Error("port swap on one side collides")
	}
	// A key equal to its own reverse (same endpoint twice) still hashes.
	self := KeyFrom(netip.MustParseAddrPort("[::1]:7"), netip.MustParseAddrPort("[::1]:7"))
	if self.Reverse() != self || self.Canonical() != self {
		t.Error("self-connection key")
	}
}

func TestKeyConversions(t *testing.T) {
	src, dst := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.2:443")
	k := KeyFrom(src, dst)
	if s, d := k.AddrPorts(); k.Family != 4 || s != src || d != dst || k.Src[4] != 0 || k.Src[0] != 192 {
		t.Errorf("IPv4 key %+v", k)
	}
	if m := MakeKey([]byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}, 40000, 443); m != k {
		t.Errorf("MakeKey %v != KeyFrom %v", m, k)
	}
	s6, d6 := netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2")
	if k6 := KeyFrom(s6, d6); k6.Family != 6 || k6.String() != "[2001:db8::1]:1 -> [2001:db8::2]:2" {
		t.Errorf("IPv6 key %v", k6)
	}
	if (MakeKey([]byte{1, 2, 3}, []byte{1, 2, 3}, 1, 2) != Key{}) || (KeyFrom(src, d6) != Key{}) {
		t.Error("mismatched address lengths give a non-zero key")
	}
	if got := k.String(); got != "192.0.2.1:40000 -> 198.51.100.2:443" {
		t.Errorf("String %q", got)
	}
}

// chiSquare returns the chi-square statistic of counts against a uniform spread.
func chiSquare(counts []int, total int) float64 {
	exp := float64(total) / float64(len(counts))
	var x float64
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

// TestHashSpread: flows spread evenly over buckets and owners, both for random
// flows and for the adversarial-looking pattern of one client pair walking its
// source port (which a naive XOR-of-fields hash maps onto few buckets). With
// 63 degrees of freedom the 0.1% critical value is 103.4; the key is fixed so
// the test is deterministic.
func TestHashSpread(t *testing.T) {
	hk := HashKey(seq(16))
	const buckets, n = 64, 64000
	r := rand.New(rand.NewPCG(3, 3))
	patterns := map[string]func(i int) Key{
		"random": func(int) Key { return randKey(r) },
		"one host pair, walking port": func(i int) Key {
			return KeyFrom(netip.MustParseAddrPort("10.0.0.1:443"), netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(i)))
		},
		"walking address, fixed ports": func(i int) Key {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
			return KeyFrom(netip.AddrPortFrom(netip.AddrFrom4(a), 5000), netip.MustParseAddrPort("10.255.0.1:80"))
		},
	}
	for name, gen := range patterns {
		counts := make([]int, buckets)
		for i := range n {
			counts[gen(i).SymmetricHashKeyed(&hk)%buckets]++
		}
		if x := chiSquare(counts, n); x > 103.4 {
			t.Errorf("%s: chi-square %.1f over %d buckets, want <= 103.4", name, x, buckets)
		}
	}
	// Owner over a non-power-of-two worker count.
	counts := make([]int, 6)
	for range n {
		counts[randKey(r).Owner(6)]++
	}
	if x := chiSquare(counts, n); x > 20.5 { // 5 degrees of freedom, 0.1%
		t.Errorf("Owner(6) chi-square %.1f: %v", x, counts)
	}
	if (Key{}).Owner(1) != 0 || (Key{}).Owner(0) != 0 {
		t.Error("Owner with one worker")
	}
}

// TestHashIsKeyed: another key gives other hashes (no fixed collision set).
func TestHashIsKeyed(t *testing.T) {
	a, b := HashKey(seq(16)), HashKey{}
	r := rand.New(rand.NewPCG(4, 4))
	same := 0
	for range 1000 {
		k := randKey(r)
		if k.SymmetricHashKeyed(&a) == k.SymmetricHashKeyed(&b) {
			same++
		}
	}
	if same != 0 {
		t.Errorf("%d of 1000 hashes independent of the key", same)
	}
}
