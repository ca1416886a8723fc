package afpacket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// csum16 is the Internet checksum's ones' complement sum of b, folded,
// written apart from the package's own.
func csum16(b []byte, acc uint32) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		acc += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// encapFrame wraps the IP packet of inner (a frame from mkFrame) in an
// outer IPv4 header (protocol proto) and, for GRE, a GRE header with flags
// gre (checksum and key as they say), behind an Ethernet header. Only the
// outer total length is set: SegmentEncap writes everything else.
func encapFrame(inner []byte, proto uint8, gre uint16) []byte {
	f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
	ip := []byte{0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	f = append(f, ip...)
	if proto == 47 {
		et := uint16(0x0800)
		if inner[12] == 0x86 {
			et = 0x86dd
		}
		f = binary.BigEndian.AppendUint16(f, gre)
		f = binary.BigEndian.AppendUint16(f, et)
		if gre&0x8000 != 0 {
			f = append(f, 0xaa, 0xbb, 0, 0) // checksum (garbage), reserved
		}
		if gre&0x2000 != 0 {
			f = append(f, 0, 0, 0, 42) // key
		}
	}
	f = append(f, inner[14:]...)
	binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
	return f
}

// TestSegmentEncap: a TCP super-segment in GRE (with and without a
// checksum and a key) and in IP-in-IP, IPv4 and IPv6 inside, cut as the
// kernel's GSO cuts it: every checksum complete (checked here with a
// checksum of the test's own), every length right, the IPv4 IDs and the
// sequence numbers advancing, PSH on the last segment only, and the
// payloads end to end the original one.
func TestSegmentEncap(t *testing.T) {
	payload := make([]byte, 5000)
	for i := range payload {
		payload[i] = byte(i*13 + 5)
	}
	for _, c := range []struct {
		proto  uint8
		gre    uint16
		inner6 bool
	}{
		{47, 0, false}, {47, 0xa000, false}, {47, 0x8000, true}, {47, 0x2000, true},
		{4, 0, false}, {41, 0, true},
	} {
		t.Run(fmt.Sprintf("proto %d gre %#x inner6 %v", c.proto, c.gre, c.inner6), func(t *testing.T) {
			inner := mkFrame(frameSpec{v6: c.inner6, seq: 7000, flags: tcpPSH | 0x10, id: 100, opts: 12, payload: payload})
			f := encapFrame(inner, c.proto, c.gre)
			il3 := len(f) - (len(inner) - 14)
			tcp := il3 + 20
			if c.inner6 {
				tcp = il3 + 40
			}
			gso := GSOTCPv4
			if c.inner6 {
				gso = GSOTCPv6
			}
			h := VnetHdr{Flags: FlagNeedsCsum, GSOType: uint8(gso), GSOSize: 1400, CsumStart: uint16(tcp), CsumOffset: 16}
			orig := bytes.Clone(f)
			out := make([][]byte, 8)
			for i := range out {
				out[i] = make([]byte, 2000)
			}
			sizes := make([]int, len(out))
			k, err := SegmentEncap(f, h, out, sizes)
			if err != nil || k != 4 {
				t.Fatalf("SegmentEncap: %d segments, %v; want 4", k, err)
			}
			if !bytes.Equal(f, orig) {
				t.Fatal("the super-segment changed")
			}
			var got []byte
			for i := range k {
				s := out[i][:sizes[i]]
				if binary.BigEndian.Uint16(s[16:]) != uint16(len(s)-14) || csum16(s[14:34], 0) != 0xffff ||
					binary.BigEndian.Uint16(s[18:]) != 0x1234+uint16(i) {
					t.Fatalf("segment %d: outer IPv4 header wrong: % x", i, s[14:34])
				}
				if c.gre&0x8000 != 0 && csum16(s[34:], 0) != 0xffff {
					t.Fatalf("segment %d: GRE checksum wrong", i)
				}
				var ps uint32
				if c.inner6 {
					if binary.BigEndian.Uint16(s[il3+4:]) != uint16(len(s)-il3-40) {
						t.Fatalf("segment %d: inner IPv6 payload length wrong", i)
					}
					ps = uint32(csum16(s[il3+8:il3+40], 0))
				} else {
					if binary.BigEndian.Uint16(s[il3+2:]) != uint16(len(s)-il3) || csum16(s[il3:il3+20], 0) != 0xffff ||
						binary.BigEndian.Uint16(s[il3+4:]) != 100+uint16(i) {
						t.Fatalf("segment %d: inner IPv4 header wrong: % x", i, s[il3:il3+20])
					}
					ps = uint32(csum16(s[il3+12:il3+20], 0))
				}
				if csum16(s[tcp:], ps+6+uint32(len(s)-tcp)) != 0xffff {
					t.Fatalf("segment %d: TCP checksum wrong", i)
				}
				if seq := binary.BigEndian.Uint32(s[tcp+4:]); seq != 7000+uint32(i*1400) {
					t.Fatalf("segment %d: seq %d", i, seq)
				}
				if psh := s[tcp+13]&tcpPSH != 0; psh != (i == k-1) {
					t.Fatalf("segment %d: PSH %v", i, psh)
				}
				got = append(got, s[tcp+32:]...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("payloads end to end: %d bytes, not the %d sent", len(got), len(payload))
			}
		})
	}
}

// SegmentEncap refuses what it does not know how to cut, or cannot fit.
func TestSegmentEncapRefuses(t *testing.T) {
	inner := mkFrame(frameSpec{seq: 1, payload: make([]byte, 3000)})
	h := VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 14 + 20 + 4 + 20, CsumOffset: 16}
	out := [][]byte{make([]byte, 2000), make([]byte, 2000), make([]byte, 2000)}
	sizes := make([]int, 3)
	for _, c := range []struct {
		name string
		f    []byte
		h    VnetHdr
		want error
	}{
		{"GRE with sequence numbers", encapFrame(inner, 47, 0x1000), h, ErrNotTCP},
		{"GRE version 1", encapFrame(inner, 47, 0x0001), h, ErrNotTCP},
		{"UDP", encapFrame(inner, 17, 0), h, ErrNotTCP},
		{"checksum start elsewhere", encapFrame(inner, 47, 0), VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 40, CsumOffset: 16}, ErrNotTCP},
		{"not GSO", encapFrame(inner, 47, 0), VnetHdr{Flags: FlagNeedsCsum, CsumStart: h.CsumStart, CsumOffset: 16}, ErrNotTCP},
		{"plain TCP", inner, VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}, ErrNotTCP},
		{"too few buffers", encapFrame(inner, 47, 0), VnetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 500, CsumStart: h.CsumStart, CsumOffset: 16}, ErrNoRoom},
		{"truncated", encapFrame(inner, 47, 0)[:60], h, ErrMalformed},
	} {
		if _, err := SegmentEncap(c.f, c.h, out, sizes); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// FuzzSegmentEncap: arbitrary frames and headers never make SegmentEncap
// panic or write past its buffers, and what it accepts it cuts into
// segments no longer than the frame.
func FuzzSegmentEncap(f *testing.F) {
	inner := mkFrame(frameSpec{seq: 1, opts: 12, payload: make([]byte, 3000)})
	f.Add(encapFrame(inner, 47, 0xa000), uint16(14+20+12+20), uint16(1000), uint8(GSOTCPv4))
	f.Add(encapFrame(mkFrame(frameSpec{v6: true, payload: make([]byte, 2000)}), 41, 0), uint16(14+20+40), uint16(700), uint8(GSOTCPv6))
	f.Fuzz(func(t *testing.T, frame []byte, start, size uint16, typ uint8) {
		h := VnetHdr{Flags: FlagNeedsCsum, GSOType: typ, GSOSize: size, CsumStart: start, CsumOffset: 16}
		out := make([][]byte, 8)
		for i := range out {
			out[i] = make([]byte, 1600)
		}
		sizes := make([]int, len(out))
		k, err := SegmentEncap(frame, h, out, sizes)
		if err != nil {
			return
		}
		for i := range k {
			if sizes[i] > len(frame) || sizes[i] > len(out[i]) {
				t.Fatalf("segment %d of %d bytes from a frame of %d", i, sizes[i], len(frame))
			}
		}
	})
}
