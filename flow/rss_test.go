package flow

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// The Microsoft RSS verification suite (also the Intel 82599 datasheet
// §7.1.2.8.3): key, then per row destination and source address and port
// and the hash with ports ("IPv4 with TCP", "IPv6 with TCP").
const rssSpecKey = "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"

var rssSpecVectors = []struct {
	dst, src string
	want     uint32
}{
	{"161.142.100.80:1766", "66.9.149.187:2794", 0x51ccc178},
	{"65.69.140.83:4739", "199.92.111.2:14230", 0xc626b0ea},
	{"12.22.207.184:38024", "24.19.198.95:12898", 0x5c2b394a},
	{"209.142.163.6:2217", "38.27.205.30:48228", 0xafc7327f},
	{"202.188.127.2:1303", "153.39.163.191:44251", 0x10e828a2},
	{"[3ffe:2501:200:3::1]:1766", "[3ffe:2501:200:1fff::7]:2794", 0x40207d3d},
	{"[ff02::1]:4739", "[3ffe:501:8::260:97ff:fe40:efab]:14230", 0xdde51bbf},
	{"[fe80::200:f8ff:fe21:67cf]:38024", "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251", 0x02d1feef},
}

func specRSS(t testing.TB, xfrm Transform) *RSS {
	key, err := hex.DecodeString(rssSpecKey)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRSS(key, []uint32{0, 1, 2, 3, 4, 5, 6, 7}, xfrm)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRSSSpecVectors(t *testing.T) {
	r := specRSS(t, NoTransform)
	key, _ := hex.DecodeString(rssSpecKey)
	for _, v := range rssSpecVectors {
		k := KeyFrom(netip.MustParseAddrPort(v.src), netip.MustParseAddrPort(v.dst))
		if got := r.Hash(k); got != v.want {
			t.Errorf("%s -> %s: table hash %#08x, want %#08x", v.src, v.dst, got, v.want)
		}
		var in [rssInputMax]byte
		n := r.Input(k, &in)
		if got := Toeplitz(key, in[:n]); got != v.want {
			t.Errorf("%s -> %s: bitwise hash %#08x, want %#08x", v.src, v.dst, got, v.want)
		}
		if q := r.Queue(k); q != int(v.want%8) {
			t.Errorf("%s -> %s: queue %d, want %d", v.src, v.dst, q, v.want%8)
		}
	}
	if r.Symmetric() {
		t.Error("the specification's key reported symmetric")
	}
}

// TestRSSSymmetric: with a symmetric key or a symmetric transform both
// directions of every flow land on one queue; Symmetric says so, and says
// no where a flow and its reverse can differ.
func TestRSSSymmetric(t *testing.T) {
	indir := make([]uint32, 128)
	for i := range indir {
		indir[i] = uint32(i % 6)
	}
	spec, _ := hex.DecodeString(rssSpecKey)
	cases := []struct {
		name string
		key  []byte
		xfrm Transform
		sym  bool
	}{
		{"symmetric key", SymmetricKey(), NoTransform, true},
		{"spec key, sym-xor", spec, SymXor, true},
		{"spec key, sym-or-xor", spec, SymOrXor, true},
		{"spec key", spec, NoTransform, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewRSS(c.key, indir, c.xfrm)
			if err != nil {
				t.Fatal(err)
			}
			if r.Symmetric() != c.sym {
				t.Fatalf("Symmetric() = %v, want %v", r.Symmetric(), c.sym)
			}
			differ := 0
			for _, v := range rssSpecVectors {
				k := KeyFrom(netip.MustParseAddrPort(v.src), netip.MustParseAddrPort(v.dst))
				if r.Hash(k) != r.Hash(k.Reverse()) {
					differ++
				}
			}
			if c.sym && differ > 0 {
				t.Fatalf("%d flows hash apart from their reverse", differ)
			}
			if !c.sym && differ == 0 {
				t.Fatal("no flow hashes apart from its reverse: the check cannot fail")
			}
		})
	}
}

func TestNewRSSRefuses(t *testing.T) {
	for _, c := range []struct {
		key   []byte
		indir []uint32
		xfrm  Transform
	}{
		{make([]byte, 39), []uint32{0}, 0},
		{make([]byte, 40), nil, 0},
		{make([]byte, 40), []uint32{0}, SymXor | SymOrXor},
		{make([]byte, 40), []uint32{0}, 1 << 5},
	} {
		if _, err := NewRSS(c.key, c.indir, c.xfrm); err == nil || !strings.Contains(err.Error(), "RSS") {
			t.Errorf("NewRSS(%d-byte key, %d entries, xfrm %#x) = %v, want an error", len(c.key), len(c.indir), uint8(c.xfrm), err)
		}
	}
}

// FuzzRSSTable: the per-byte tables agree with the bitwise definition for
// any key and tuple.
func FuzzRSSTable(f *testing.F) {
	spec, _ := hex.DecodeString(rssSpecKey)
	f.Add(spec, []byte{66, 9, 149, 187, 161, 142, 100, 80}, uint16(2794), uint16(1766), false, uint8(0))
	f.Add(SymmetricKey(), make([]byte, 32), uint16(1), uint16(2), true, uint8(1))
	f.Fuzz(func(t *testing.T, key, addrs []byte, sp, dp uint16, v6 bool, x uint8) {
		if len(key) < 40 {
			return
		}
		key = key[:40]
		n := 8
		if v6 {
			n = 32
		}
		if len(addrs) < n {
			return
		}
		xfrm := []Transform{NoTransform, SymXor, SymOrXor}[int(x)%3]
		r, err := NewRSS(key, []uint32{0}, xfrm)
		if err != nil {
			t.Fatal(err)
		}
		k := MakeKey(addrs[:n/2], addrs[n/2:n], sp, dp)
		var in [rssInputMax]byte
		l := r.Input(k, &in)
		if got, want := r.Hash(k), Toeplitz(key, in[:l]); got != want {
			t.Fatalf("table %#x, bitwise %#x", got, want)
		}
		if xfrm != NoTransform && r.Hash(k) != r.Hash(k.Reverse()) {
			t.Fatal("a symmetric transform hashed a flow and its reverse apart")
		}
	})
}

func BenchmarkRSSQueue(b *testing.B) {
	r := specRSS(b, NoTransform)
	k := KeyFrom(netip.MustParseAddrPort("66.9.149.187:2794"), netip.MustParseAddrPort("161.142.100.80:1766"))
	b.ReportAllocs()
	s := 0
	for b.Loop() {
		s += r.Queue(k)
	}
	_ = s
}

func TestRSSSame(t *testing.T) {
	a, _ := NewRSS(SymmetricKey(), []uint32{0, 1}, NoTransform)
	b, _ := NewRSS(SymmetricKey(), []uint32{0, 1}, NoTransform)
	c, _ := NewRSS(SymmetricKey(), []uint32{1, 0}, NoTransform)
	d, _ := NewRSS(SymmetricKey(), []uint32{0, 1}, SymXor)
	other := SymmetricKey()
	other[39] ^= 1
	e, _ := NewRSS(other, []uint32{0, 1}, NoTransform)
	if !a.Same(b) || a.Same(c) || a.Same(d) || a.Same(e) {
		t.Fatal("Same disagrees with the key, table and transform")
	}
}
