package packet_test

import (
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	pt "github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TestChecksumMatchesReference compares the fast 8-bytes-at-a-time sum with the
// textbook 16-bit loop over every length up to 300 and random contents,
// including all-0xff data (the end-around carry case).
func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		for trial := 0; trial < 8; trial++ {
			b := make([]byte, n)
			switch trial {
			case 0:
			case 1:
				for i := range b {
					b[i] = 0xff
				}
			default:
				for i := range b {
					b[i] = byte(r.Uint32())
				}
			}
			if got, want := packet.Checksum(b, 0), pt.RefChecksum(b); got != want {
				t.Fatalf("len %d trial %d: Checksum %#04x, reference %#04x", n, trial, got, want)
			}
			// Chaining sums over an even split equals one sum.
			cut := n &^ 1 / 2 &^ 1
			if got, want := packet.Checksum(b[cut:], packet.Sum(b[:cut], 0)), pt.RefChecksum(b); got != want {
				t.Fatalf("len %d split %d: %#04x, want %#04x", n, cut, got, want)
			}
		}
	}
}

// TestKnownChecksums uses values checked outside this code: the IPv4 header
// example that is printed in many textbooks (checksum 0xb861), and frames whose
// IPv4, TCP and UDP checksums TShark 4.0 reported as "Good"
// (tshark -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE).
func TestKnownChecksums(t *testing.T) {
	hdr, _ := hex.DecodeString("450000730000400040110000c0a80001c0a800c7")
	if got := packet.Checksum(hdr, 0); got != 0xb861 {
		t.Errorf("IPv4 header checksum %#04x, want 0xb861", got)
	}
	for _, tc := range []struct {
		name       string
		hex        string
		ip, l4     uint16
		ipOff, l4C int
	}{
		{"tcp4 psh ack with timestamps",
			"0200000000020200000000010800450000421234000040067c4bc0000201c63364029c4001bb01020304a0b0c0d0801801f6e4e300000101080a000003e8000007d068656c6c6f2c20746370696e630a",
			0x7c4b, 0xe4e3, 14 + 10, 14 + 20 + 16},
		{"tcp6 syn in vlan",
			"0200000000020200000000018100006486dd600000000020064020010db800000000000000000000000a20010db800010000000000000000000b9c410050fffffff0000000008002fd207afb0000020405a00402010303070000",
			0, 0x7afb, 0, 18 + 40 + 16},
		{"udp4",
			"02000000000202000000000108004500001f1234000040117c63c0000201c633640214e90035000b3a20616263",
			0x7c63, 0x3a20, 14 + 10, 14 + 20 + 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := hex.DecodeString(tc.hex)
			var p packet.Packet
			if err := p.Decode(f); err != nil {
				t.Fatal(err)
			}
			if tc.ip != 0 && !p.VerifyIPv4Checksum() {
				t.Error("IPv4 checksum does not verify")
			}
			if !p.VerifyL4Checksum() {
				t.Error("L4 checksum does not verify")
			}
			// Recompute from scratch: the fields must come back identical.
			if tc.ip != 0 {
				f[tc.ipOff], f[tc.ipOff+1] = 0, 0
				p.FixIPv4Checksum()
				if got := binary.BigEndian.Uint16(f[tc.ipOff:]); got != tc.ip {
					t.Errorf("IPv4 checksum recomputed %#04x, want %#04x", got, tc.ip)
				}
			}
			f[tc.l4C], f[tc.l4C+1] = 0xab, 0xcd
			if p.VerifyL4Checksum() {
				t.Error("corrupted checksum verifies")
			}
			p.FixL4Checksum()
			if got := binary.BigEndian.Uint16(f[tc.l4C:]); got != tc.l4 {
				t.Errorf("L4 checksum recomputed %#04x, want %#04x", got, tc.l4)
			}
		})
	}
}

// TestUpdateMatchesRecompute: RFC 1624 equation 3 over random data and a random
// changed 16-bit word, 32-bit field or byte run at any alignment gives the same
// checksum as recomputing from scratch.
func TestUpdateMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		n := 4 + r.IntN(100)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%7 == 0 { // many 0x00 and 0xff: the +0/-0 corner cases
			for j := range b {
				b[j] = []byte{0, 0xff}[r.IntN(2)]
			}
		}
		hc := pt.RefChecksum(b)
		off := r.IntN(n - 3)
		nb := append([]byte(nil), b...)
		var got uint16
		switch i % 3 {
		case 0:
			off &^= 1
			old := binary.BigEndian.Uint16(b[off:])
			nw := uint16(r.Uint32())
			binary.BigEndian.PutUint16(nb[off:], nw)
			got = packet.Update16(hc, old, nw)
		case 1:
			off &^= 1
			old := binary.BigEndian.Uint32(b[off:])
			nw := r.Uint32()
			binary.BigEndian.PutUint32(nb[off:], nw)
			got = packet.Update32(hc, old, nw)
		case 2:
			l := 1 + r.IntN(n-off)
			for j := off; j < off+l; j++ {
				nb[j] = byte(r.Uint32())
			}
			got = packet.UpdateBytes(hc, off&1 == 1, b[off:off+l], nb[off:off+l])
		}
		if want := pt.RefChecksum(nb); got != want {
			t.Fatalf("case %d off %d: incremental %#04x, recomputed %#04x", i%3, off, got, want)
		}
	}
	// Odd-offset words are the byte-swapped form: the Update16 doc's promise.
	b := []byte{1, 2, 3, 4, 5, 6}
	nb := []byte{1, 0xaa, 0xbb, 4, 5, 6}
	got := packet.Update16(pt.RefChecksum(b), bits.ReverseBytes16(0x0203), bits.ReverseBytes16(0xaabb))
	if want := pt.RefChecksum(nb); got != want {
		t.Errorf("odd-offset Update16 %#04x, want %#04x", got, want)
	}
}

// TestPseudoHeaderSum holds the pseudo-header sum to the reference built
// byte by byte (packettest.Pseudo), for both address families and lengths
// up to the largest a jumbogram-free segment has.
func TestPseudoHeaderSum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 2000; trial++ {
		n := 4
		if trial%2 == 1 {
			n = 16
		}
		src, dst := make([]byte, n), make([]byte, n)
		for i := range src {
			src[i], dst[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		if trial < 4 {
			for i := range src {
				src[i], dst[i] = 0xff, 0xff
			}
		}
		length := int(r.Uint32N(65536))
		proto := uint8(r.Uint32())
		seg := make([]byte, 1+trial%61)
		for i := range seg {
			seg[i] = byte(r.Uint32())
		}
		sa, _ := netip.AddrFromSlice(src)
		da, _ := netip.AddrFromSlice(dst)
		want := pt.RefChecksum(pt.Pseudo(sa, da, proto, length), seg)
		if got := packet.Checksum(seg, packet.PseudoHeaderSum(src, dst, proto, length)); got != want {
			t.Fatalf("%x > %x proto %d len %d: %#04x, reference %#04x", src, dst, proto, length, got, want)
		}
	}
}

// TestTrustL4Checksum: a port's word for a TCP checksum (bump.CsumVerified)
// stands in for the sum until the next Decode; it is not taken for other
// protocols, whose checksums the engine forwards, not checks.
func TestTrustL4Checksum(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		l4C       int
		trusted   bool
	}{
		{"tcp4", "0200000000020200000000010800450000421234000040067c4bc0000201c63364029c4001bb01020304a0b0c0d0801801f6e4e300000101080a000003e8000007d068656c6c6f2c20746370696e630a", 14 + 20 + 16, true},
		{"udp4", "02000000000202000000000108004500001f1234000040117c63c0000201c633640214e90035000b3a20616263", 14 + 20 + 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := hex.DecodeString(tc.hex)
			f[tc.l4C] ^= 0x5a // a wrong sum
			var p packet.Packet
			if err := p.Decode(f); err != nil {
				t.Fatal(err)
			}
			p.TrustL4Checksum()
			if got := p.VerifyL4Checksum(); got != tc.trusted {
				t.Fatalf("trusted frame with a wrong sum verifies: %v, want %v", got, tc.trusted)
			}
			if err := p.Decode(f); err != nil {
				t.Fatal(err)
			}
			if p.VerifyL4Checksum() {
				t.Fatal("a new Decode kept the trust: the wrong sum verifies")
			}
		})
	}
}
