package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// checkSegments verifies what Segment made of the super-segment f: every
// segment parses, has correct checksums (by the reference), at most mss
// payload bytes, contiguous sequence numbers, the original's headers apart
// from the fields GSO changes, FIN/PSH only last, CWR only first, IPv4 IDs
// advancing by one, and the payloads concatenate to the original's.
func checkSegments(t *testing.T, f []byte, mss int, segs [][]byte) {
	t.Helper()
	p, err := ParseTCP(f)
	if err != nil {
		t.Fatalf("original: %v", err)
	}
	seq0 := binary.BigEndian.Uint32(f[p.L4+4:])
	flags := f[p.L4+13]
	var joined []byte
	for i, s := range segs {
		q, err := ParseTCP(s)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if q.End != len(s) || q.L3 != p.L3 || q.L4 != p.L4 || q.Payload != p.Payload {
			t.Fatalf("segment %d offsets %+v, original %+v", i, q, p)
		}
		if q.PayloadLen() > mss || (i < len(segs)-1 && q.PayloadLen() != mss) {
			t.Fatalf("segment %d: %d payload bytes at mss %d", i, q.PayloadLen(), mss)
		}
		if !refTCPOK(s, q.L3, q.V6) || !TCPChecksumOK(s, q) {
			t.Fatalf("segment %d: bad checksum", i)
		}
		if got := binary.BigEndian.Uint32(s[q.L4+4:]); got != seq0+uint32(len(joined)) {
			t.Fatalf("segment %d: seq %d, want %d", i, got, seq0+uint32(len(joined)))
		}
		want := flags
		if i < len(segs)-1 {
			want &^= tcpFIN | tcpPSH
		}
		if i > 0 {
			want &^= tcpCWR
		}
		if s[q.L4+13] != want {
			t.Fatalf("segment %d: flags %#x, want %#x", i, s[q.L4+13], want)
		}
		if !p.V6 {
			if got, want := binary.BigEndian.Uint16(s[q.L3+4:]), binary.BigEndian.Uint16(f[p.L3+4:])+uint16(i); got != want {
				t.Fatalf("segment %d: IP ID %d, want %d", i, got, want)
			}
		}
		// Everything else in the headers is the original's.
		a, b := append([]byte{}, s[:q.Payload]...), append([]byte{}, f[:p.Payload]...)
		for _, z := range [][]byte{a, b} {
			if p.V6 {
				copy(z[p.L3+4:p.L3+6], []byte{0, 0})
			} else {
				copy(z[p.L3+2:p.L3+6], []byte{0, 0, 0, 0})
				copy(z[p.L3+10:p.L3+12], []byte{0, 0})
			}
			copy(z[p.L4+4:p.L4+8], []byte{0, 0, 0, 0})
			z[p.L4+13] = 0
			copy(z[p.L4+16:p.L4+18], []byte{0, 0})
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("segment %d: headers differ beyond the GSO fields", i)
		}
		joined = append(joined, s[q.Payload:]...)
	}
	if !bytes.Equal(joined, f[p.Payload:p.End]) {
		t.Fatal("payloads do not concatenate to the original's")
	}
}

func mkOut(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func TestSegment(t *testing.T) {
	for _, c := range []struct {
		name    string
		spec    frameSpec
		mss     int
		wantSeg int
	}{
		{"v4 45 full segments", frameSpec{payload: pattern(45 * 1448), seq: 0xfffff000, id: 0xfffe, flags: tcpPSH}, 1448, 45},
		{"v4 remainder, FIN PSH CWR", frameSpec{payload: pattern(3000), flags: tcpFIN | tcpPSH | tcpCWR, opts: 12}, 1448, 3},
		{"v6 vlan", frameSpec{v6: true, vlan: true, payload: pattern(10000), flags: tcpPSH}, 1428, 8},
		{"v6 option headers", frameSpec{v6: true, ext: []byte{0, 60}, payload: pattern(10000), flags: tcpPSH}, 1412, 8},
		{"fits in one", frameSpec{payload: pattern(1000), flags: tcpFIN}, 1448, 1},
		{"exactly mss", frameSpec{payload: pattern(1448)}, 1448, 1},
		{"no payload", frameSpec{flags: tcpFIN}, 1448, 1},
		{"odd sizes", frameSpec{payload: pattern(1001)}, 7, 143},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mkFrame(c.spec)
			orig := append([]byte{}, f...)
			out, sizes := mkOut(200, 1600)
			n, err := Segment(f, c.mss, out, sizes)
			if err != nil || n != c.wantSeg {
				t.Fatalf("Segment: %d, %v; want %d segments", n, err, c.wantSeg)
			}
			if !bytes.Equal(f, orig) {
				t.Fatal("Segment changed its input")
			}
			segs := make([][]byte, n)
			for i := range segs {
				segs[i] = out[i][:sizes[i]]
			}
			checkSegments(t, f, c.mss, segs)
		})
	}
}

func TestSegmentNoRoom(t *testing.T) {
	f := mkFrame(frameSpec{payload: pattern(3000)})
	out, sizes := mkOut(2, 1600)
	if n, err := Segment(f, 1448, out, sizes); err != ErrNoRoom || n != 0 {
		t.Fatalf("2 buffers for 3 segments: %d, %v", n, err)
	}
	out, sizes = mkOut(3, 1500) // the 1448-byte segments need 1502 bytes
	if _, err := Segment(f, 1448, out, sizes); err != ErrNoRoom {
		t.Fatalf("short buffers: %v", err)
	}
	for _, b := range out {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatal("Segment wrote into the output before failing")
		}
	}
	if _, err := Segment(f, 0, out, sizes); err != ErrMalformed {
		t.Fatalf("mss 0: %v", err)
	}
}

// TestPrepareGSOThenComplete: what PrepareGSO leaves in the frame is what the
// kernel completes; completing it in software must give the correct checksum
// of the whole packet, and the header must describe the frame as CheckTCP
// expects it on the receiving side.
func TestPrepareGSOThenComplete(t *testing.T) {
	for _, c := range []struct {
		name    string
		spec    frameSpec
		mss     int
		gsoType uint8
	}{
		{"v4 super", frameSpec{payload: pattern(20000)}, 1448, GSOTCPv4},
		{"v4 super CWR", frameSpec{payload: pattern(20000), flags: tcpCWR}, 1448, GSOTCPv4 | GSOECN},
		{"v6 super vlan", frameSpec{v6: true, vlan: true, payload: pattern(64000)}, 1428, GSOTCPv6},
		{"v6 super option headers", frameSpec{v6: true, ext: []byte{60}, payload: pattern(64000)}, 1420, GSOTCPv6},
		{"v4 one segment", frameSpec{payload: pattern(1443)}, 1448, GSONone}, // 1448 after the 5 bytes added below
		{"v6 ack", frameSpec{v6: true}, 1428, GSONone},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mkFrame(c.spec)
			p, _ := ParseTCP(f)
			// Grow the payload by 5 bytes without fixing the IP length:
			// PrepareGSO takes the length from the frame.
			f = append(f, 1, 2, 3, 4, 5)
			h, err := PrepareGSO(f, c.mss)
			if err != nil {
				t.Fatal(err)
			}
			if h.GSOType != c.gsoType || h.Flags != FlagNeedsCsum || int(h.CsumStart) != p.L4 || h.CsumOffset != 16 || int(h.HdrLen) != p.Payload {
				t.Fatalf("header %+v", h)
			}
			if h.IsGSO() && int(h.GSOSize) != c.mss {
				t.Fatalf("gso_size %d", h.GSOSize)
			}
			if refTCPOK(f, p.L3, p.V6) {
				t.Fatal("checksum already complete: PrepareGSO should leave a partial one")
			}
			h2 := h
			if _, err := CheckTCP(&h2, f); err != nil {
				t.Fatalf("CheckTCP of PrepareGSO's output: %v", err)
			}
			if err := h.CompleteChecksum(f); err != nil {
				t.Fatal(err)
			}
			if h.Flags&FlagNeedsCsum != 0 || !refTCPOK(f, p.L3, p.V6) {
				t.Fatal("completed checksum wrong")
			}
		})
	}
	if _, err := PrepareGSO(append(mkFrame(frameSpec{}), pattern(70000)...), 1448); err != ErrTooBig {
		t.Fatalf("70000-byte IPv4 packet: %v", err)
	}
}

func TestCompleteChecksumBounds(t *testing.T) {
	f := mkFrame(frameSpec{payload: pattern(10)})
	for _, h := range []VnetHdr{
		{Flags: FlagNeedsCsum, CsumStart: uint16(len(f)), CsumOffset: 0},
		{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: uint16(len(f) - 35)},
		{Flags: FlagNeedsCsum, CsumStart: 0xffff, CsumOffset: 0xffff},
	} {
		if err := h.CompleteChecksum(f); err != ErrMalformed {
			t.Errorf("%+v: %v", h, err)
		}
	}
	h := VnetHdr{}
	g := append([]byte{}, f...)
	if err := h.CompleteChecksum(g); err != nil || !bytes.Equal(f, g) {
		t.Fatal("no NEEDS_CSUM: frame changed")
	}
}

// FuzzGSOSegment runs arbitrary frames through CheckTCP, Segment and
// PrepareGSO: no panic, and whatever Segment accepts it must cut correctly.
func FuzzGSOSegment(f *testing.F) {
	f.Add(mkFrame(frameSpec{payload: pattern(3000), flags: tcpFIN | tcpPSH | tcpCWR}), uint16(1448), []byte{1, 1, 0, 0, 0, 0, 34, 0, 16, 0})
	f.Add(mkFrame(frameSpec{v6: true, vlan: true, payload: pattern(500)}), uint16(100), []byte{1, 4, 0, 0, 100, 0, 58, 0, 16, 0})
	f.Add(mkFrame(frameSpec{opts: 40}), uint16(1), make([]byte, 10))
	out, sizes := mkOut(64, 2048)
	f.Fuzz(func(t *testing.T, frame []byte, mss16 uint16, hdr []byte) {
		var h VnetHdr
		if h.Decode(hdr) == nil {
			_, _ = CheckTCP(&h, frame)
			g := append([]byte{}, frame...)
			_ = h.CompleteChecksum(g)
		}
		mss := int(mss16)
		n, err := Segment(frame, mss, out, sizes)
		if err == nil {
			p, _ := ParseTCP(frame)
			if n != Segments(p.PayloadLen(), mss) {
				t.Fatalf("%d segments, Segments says %d", n, Segments(p.PayloadLen(), mss))
			}
			segs := make([][]byte, n)
			for i := range segs {
				segs[i] = out[i][:sizes[i]]
			}
			checkSegments(t, frame[:p.End], mss, segs)
		}
		g := append([]byte{}, frame...)
		if h, err := PrepareGSO(g, mss); err == nil {
			p, _ := ParseTCP(g)
			if err := h.CompleteChecksum(g); err != nil || !TCPChecksumOK(g, p) {
				t.Fatalf("PrepareGSO+CompleteChecksum: %v, checksum ok %v", err, TCPChecksumOK(g, p))
			}
		}
	})
}

// A sum that completes to zero is written 0xffff, as the kernel does
// (CSUM_MANGLED_0): the same in ones' complement, and the only right value
// for UDP, where 0 means no checksum (and IPv6 drops it), whatever headers
// lie before the one at CsumStart.
func TestCompleteChecksumZero(t *testing.T) {
	// Field (0) then 0xffff: the sum folds to 0xffff, its complement is 0.
	f := []byte{9, 9, 0, 0, 0xff, 0xff}
	h := VnetHdr{Flags: FlagNeedsCsum, CsumStart: 2, CsumOffset: 0}
	if err := h.CompleteChecksum(f); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(f[2:]); got != 0xffff {
		t.Fatalf("checksum %#04x, want 0xffff", got)
	}
}
