package tcpcrypt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// testKeys derives k_ab[0] and k_ba[0] for suite s from a fixed master key.
func testKeys(tb testing.TB, s cryptopool.Suite) (mk0 []byte, kab, kba TrafficKey) {
	tb.Helper()
	mk0 = seq(0x40, SecretLen)
	kab, kba = TrafficKeys(mk0, s)
	return mk0, kab, kba
}

func mustSealer(tb testing.TB, k TrafficKey) *Sealer {
	tb.Helper()
	s, err := NewSealer(k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustOpener(tb testing.TB, k TrafficKey) *Opener {
	tb.Helper()
	o, err := NewOpener(k)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// sealFrame returns a new frame holding data (a test helper; the engine
// places data in its own buffer).
func sealFrame(tb testing.TB, s *Sealer, h FrameHeader, data []byte, offset uint64) []byte {
	tb.Helper()
	buf := make([]byte, h.Overhead()+len(data))
	copy(buf[h.DataStart():], data)
	f, err := s.Seal(buf, h, len(data), offset)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// TestWorkedExampleFrames reproduces docs/protocol.md §16's two frames byte for
// byte: A's "hello" at offset 75 under k_ab[0] and B's empty FINp frame at
// offset 74 under k_ba[0] (TC-D7, TC-42).
func TestWorkedExampleFrames(t *testing.T) {
	mk0 := MasterKey(workedExampleSS0(t), nil)
	kab, kba := TrafficKeys(mk0, cryptopool.AES128GCM)
	if got := FrameNonce(&kab.NR, 75); hex.EncodeToString(got[:]) != "7ac13d921cab49db0b4d087b" {
		t.Errorf("A's nonce = %x", got)
	}
	if got := FrameNonce(&kba.NR, 74); hex.EncodeToString(got[:]) != "57d8dd408b3e77d989ca2c9d" {
		t.Errorf("B's nonce = %x", got)
	}
	cases := []struct {
		name   string
		key    TrafficKey
		h      FrameHeader
		data   string
		offset uint64
		want   string
	}{
		{"A hello", kab, FrameHeader{}, "hello", 75, "0000166794b1565fafcfab8afcab3f0c0960a9627c71abeeaa"},
		{"B FINp", kba, FrameHeader{FIN: true}, "", 74, "00001196ff5826810cf4ddd5a1960111112a8322"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sealFrame(t, mustSealer(t, c.key), c.h, []byte(c.data), c.offset)
			if got := hex.EncodeToString(f); got != c.want {
				t.Fatalf("frame = %s, want %s", got, c.want)
			}
			h, data, err := mustOpener(t, c.key).Open(f, c.offset)
			if err != nil || h != c.h || string(data) != c.data {
				t.Fatalf("Open = %+v %q %v", h, data, err)
			}
		})
	}
}

// TestRoundTrip seals and opens frames of every suite (TC-42) across data
// sizes and headers, and checks the wire layout (TC-43, TC-67, TC-68).
func TestRoundTrip(t *testing.T) {
	headers := []FrameHeader{
		{},
		{Rekey: true},
		{FIN: true},
		{Rekey: true, FIN: true},
		{URG: true, Urgent: 0x1234},
		{Rekey: true, FIN: true, URG: true, Urgent: 0xffff},
	}
	for _, s := range cryptopool.AllSuites {
		_, kab, _ := testKeys(t, s)
		sealer, opener := mustSealer(t, kab), mustOpener(t, kab)
		for _, h := range headers {
			for _, n := range []int{0, 1, 15, 16, 17, 1400, 9000, h.MaxData()} {
				t.Run(fmt.Sprintf("%v/%+v/%d", s, h, n), func(t *testing.T) {
					data := seq(n, n)
					offset := uint64(n)<<32 | 0x75
					f := sealFrame(t, sealer, h, data, offset)
					if len(f) != h.Overhead()+n {
						t.Fatalf("frame is %d bytes, want %d", len(f), h.Overhead()+n)
					}
					if l, _ := FrameLen(f); l != len(f) || l-HeaderLen > MaxClen {
						t.Fatalf("clen gives %d bytes, frame is %d", l, len(f))
					}
					if f[0] != h.control() {
						t.Fatalf("control = %#x, want %#x (cres sent as 0)", f[0], h.control())
					}
					got, pt, err := opener.Open(f, offset)
					if err != nil {
						t.Fatal(err)
					}
					if got != h || !bytes.Equal(pt, data) {
						t.Fatalf("Open = %+v, %d bytes; want %+v, %d bytes", got, len(pt), h, n)
					}
					// The flags byte sits in front of the data: fres sent as 0.
					if flags := f[HeaderLen]; flags != h.flags() {
						t.Fatalf("flags = %#x, want %#x", flags, h.flags())
					}
				})
			}
		}
	}
}

func TestLimits(t *testing.T) {
	if Overhead != 20 || OverheadURG != 22 || MaxFrameLen != 65538 || MaxData != 65518 || MaxDataURG != 65516 {
		t.Fatalf("constants: %d %d %d %d %d", Overhead, OverheadURG, MaxFrameLen, MaxData, MaxDataURG)
	}
	_, kab, _ := testKeys(t, cryptopool.AES128GCM)
	s := mustSealer(t, kab)
	big := make([]byte, MaxFrameLen+8)
	// TC-43: clen < 2^16, so at most MaxData bytes per frame.
	f, err := s.Seal(big, FrameHeader{}, MaxData, 0)
	if err != nil || len(f) != MaxFrameLen || binary.BigEndian.Uint16(f[1:3]) != MaxClen {
		t.Fatalf("largest frame: %d bytes, err %v", len(f), err)
	}
	if _, err := s.Seal(big, FrameHeader{}, MaxData+1, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("MaxData+1: err = %v", err)
	}
	if _, err := s.Seal(big, FrameHeader{URG: true}, MaxDataURG+1, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("MaxDataURG+1: err = %v", err)
	}
	if _, err := s.Seal(big, FrameHeader{}, -1, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("n = -1: err = %v", err)
	}
	if _, err := s.Seal(make([]byte, Overhead+9), FrameHeader{}, 10, 0); !errors.Is(err, ErrFrameBuffer) {
		t.Fatalf("no room for the tag: err = %v", err)
	}
	o := mustOpener(t, kab)
	for _, bad := range [][]byte{nil, {0, 0}, {0, 0, 5, 1}} {
		if _, _, err := o.Open(bad, 0); !errors.Is(err, ErrFrameBuffer) {
			t.Errorf("Open(%x): err = %v, want ErrFrameBuffer", bad, err)
		}
	}
	// clen 16 holds a tag but no flags byte.
	short := make([]byte, HeaderLen+16)
	short[2] = 16
	if _, _, err := o.Open(short, 0); !errors.Is(err, ErrFrameMalformed) {
		t.Errorf("clen 16: err = %v, want ErrFrameMalformed", err)
	}
}

// sealRaw builds a frame with arbitrary control and flags bytes, reserved
// bits included, straight from the AEAD (what another implementation could
// send).
func sealRaw(k TrafficKey, control byte, plaintext []byte, offset uint64) []byte {
	aead, err := cryptopool.NewAEAD(k.Suite, k.Key)
	if err != nil {
		panic(err)
	}
	f := []byte{control, 0, 0}
	binary.BigEndian.PutUint16(f[1:], uint16(len(plaintext)+TagLen))
	nonce := FrameNonce(&k.NR, offset)
	return aead.Seal(f, nonce[:], plaintext, f[:HeaderLen])
}

// TestReservedBitsIgnored: a receiver ignores cres and fres (TC-67, TC-68).
func TestReservedBitsIgnored(t *testing.T) {
	_, kab, _ := testKeys(t, cryptopool.AES128GCM)
	o := mustOpener(t, kab)
	for _, c := range []struct {
		control, flags byte
		want           FrameHeader
	}{
		{0xfe, 0xfc, FrameHeader{}},
		{0xff, 0xfd, FrameHeader{Rekey: true, FIN: true}},
		{0x80, 0x80, FrameHeader{}},
	} {
		f := sealRaw(kab, c.control, []byte{c.flags, 'x'}, 9)
		h, data, err := o.Open(f, 9)
		if err != nil || h != c.want || string(data) != "x" {
			t.Errorf("control %#x flags %#x: %+v %q %v", c.control, c.flags, h, data, err)
		}
	}
	// URGp set without room for the urgent field: authenticated but malformed.
	f := sealRaw(kab, 0, []byte{flagURG, 1}, 0)
	if _, _, err := o.Open(f, 0); !errors.Is(err, ErrFrameMalformed) {
		t.Errorf("URGp with 1 byte: err = %v", err)
	}
}

// TestTamper: a change to any byte of header, ciphertext or tag, a wrong
// offset or the wrong direction's key makes Open fail with ErrFrameAuth, an
// error distinct from EOF (TC-47, TC-78, TC-D7).
func TestTamper(t *testing.T) {
	for _, s := range cryptopool.AllSuites {
		_, kab, kba := testKeys(t, s)
		sealer, opener := mustSealer(t, kab), mustOpener(t, kab)
		orig := sealFrame(t, sealer, FrameHeader{URG: true, Urgent: 3}, []byte("attack at dawn"), 1000)
		expectAuth := func(what string, f []byte, off uint64, o *Opener) {
			t.Helper()
			h, data, err := o.Open(f, off)
			if !errors.Is(err, ErrFrameAuth) || errors.Is(err, io.EOF) || data != nil || h != (FrameHeader{}) {
				t.Errorf("%v %s: %+v %q %v, want ErrFrameAuth", s, what, h, data, err)
			}
		}
		for i := range orig {
			for _, bit := range []byte{0x01, 0x80} {
				f := bytes.Clone(orig)
				f[i] ^= bit
				if i == 1 || i == 2 {
					// A changed clen moves the frame's end: keep the frame
					// consistent with it so that only the AEAD can object.
					n, _ := FrameLen(f)
					f = append(f, make([]byte, max(0, n-len(f)))...)[:n]
					if n-HeaderLen < MinClen {
						continue
					}
				}
				expectAuth(fmt.Sprintf("byte %d ^ %#x", i, bit), f, 1000, opener)
			}
		}
		for _, off := range []uint64{0, 999, 1001, 1000 | 1<<63} {
			expectAuth(fmt.Sprintf("offset %d", off), bytes.Clone(orig), off, opener)
		}
		expectAuth("k_ba", bytes.Clone(orig), 1000, mustOpener(t, kba))
	}
}

// TestSealOpenNoAllocs proves the per-frame paths allocate nothing.
func TestSealOpenNoAllocs(t *testing.T) {
	for _, s := range cryptopool.AllSuites {
		_, kab, _ := testKeys(t, s)
		sealer, opener := mustSealer(t, kab), mustOpener(t, kab)
		buf := make([]byte, Overhead+1400)
		var off uint64
		allocs := testing.AllocsPerRun(100, func() {
			off += uint64(len(buf))
			f, err := sealer.Seal(buf, FrameHeader{FIN: off&1 == 0}, 1400, off)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := opener.Open(f, off); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: Seal+Open: %.1f allocs per frame, want 0", s, allocs)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, s := range cryptopool.AllSuites {
		for _, n := range []int{64, 1400, 9000, 16384} {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				_, kab, _ := testKeys(b, s)
				sealer := mustSealer(b, kab)
				buf := make([]byte, Overhead+n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				var off uint64
				for b.Loop() {
					if _, err := sealer.Seal(buf, FrameHeader{}, n, off); err != nil {
						b.Fatal(err)
					}
					off += uint64(len(buf))
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, s := range cryptopool.AllSuites {
		for _, n := range []int{64, 1400, 9000, 16384} {
			b.Run(fmt.Sprintf("%v/%d", s, n), func(b *testing.B) {
				_, kab, _ := testKeys(b, s)
				frame := sealFrame(b, mustSealer(b, kab), FrameHeader{}, make([]byte, n), 7)
				opener := mustOpener(b, kab)
				buf := make([]byte, len(frame))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, frame) // Open decrypts in place
					if _, _, err := opener.Open(buf, 7); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestPeerErrorsAbort: every framing failure the peer can cause matches
// ErrAbort, like the handshake's, and none is EOF (TC-47, TC-78); the
// caller's own mistakes do not match ErrAbort.
func TestPeerErrorsAbort(t *testing.T) {
	for _, err := range []error{ErrFrameAuth, ErrFrameMalformed, ErrDataAfterFIN, ErrTooManyGenerations} {
		if !errors.Is(err, ErrAbort) || errors.Is(err, io.EOF) {
			t.Errorf("%v: Is(ErrAbort) %v", err, errors.Is(err, ErrAbort))
		}
	}
	for _, err := range []error{ErrFrameTooLarge, ErrFrameBuffer, ErrFeedPending, ErrRekeyPending, ErrEmptyRekey, ErrFINSent, ErrNoKey} {
		if errors.Is(err, ErrAbort) {
			t.Errorf("%v matches ErrAbort", err)
		}
	}
}

// TestSealToMatchesSeal: SealTo makes the same frame as Seal for every suite,
// with and without URGp and FINp, empty to full-size data; it writes only
// its room bytes in src and dst's frame bytes; Open takes the frame back.
func TestSealToMatchesSeal(t *testing.T) {
	for _, s := range cryptopool.AllSuites {
		_, kab, _ := testKeys(t, s)
		sealer, opener := mustSealer(t, kab), mustOpener(t, kab)
		for _, h := range []FrameHeader{{}, {FIN: true}, {Rekey: true}, {URG: true, Urgent: 9}} {
			for _, n := range []int{0, 1, 17, 1400, h.MaxData()} {
				data := seq(n%251, n)
				want := sealFrame(t, sealer, h, data, uint64(n)*3)
				room := h.DataStart() - HeaderLen
				src := append(append(make([]byte, 0, 2+room+n), 0xee, 0xee), make([]byte, room)...)
				src = append(src, data...)
				dst := bytes.Repeat([]byte{0xdd}, len(want)+5)
				got, err := sealer.SealTo(dst, h, src[2:], uint64(n)*3)
				if err != nil {
					t.Fatalf("%v %+v %d: %v", s, h, n, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%v %+v %d: SealTo differs from Seal", s, h, n)
				}
				if !bytes.Equal(src[:2], []byte{0xee, 0xee}) || !bytes.Equal(src[2+room:], data) {
					t.Fatalf("%v %+v %d: SealTo wrote outside its room in src", s, h, n)
				}
				if !bytes.Equal(dst[len(want):], bytes.Repeat([]byte{0xdd}, 5)) {
					t.Fatalf("%v %+v %d: SealTo wrote past the frame in dst", s, h, n)
				}
				gh, gd, err := opener.Open(got, uint64(n)*3)
				if err != nil || gh != h || !bytes.Equal(gd, data) {
					t.Fatalf("%v %+v %d: Open: %+v %v", s, h, n, gh, err)
				}
			}
		}
		if _, err := sealer.SealTo(make([]byte, Overhead+9), FrameHeader{}, make([]byte, 11), 0); err != ErrFrameBuffer {
			t.Fatalf("short dst: %v", err)
		}
		if _, err := sealer.SealTo(make([]byte, Overhead), FrameHeader{URG: true}, make([]byte, 2), 0); err != ErrFrameTooLarge {
			t.Fatalf("src shorter than its room: %v", err)
		}
	}
}

// OpenTo gives what Open gives, with the plaintext in dst: the flags byte
// first and the data at DataStart() - HeaderLen, nothing written past the
// plaintext, the frame left as it came, no allocation. A dst too short
// for the plaintext opens the frame in place, and a tampered frame fails
// in either mode.
func TestOpenToMatchesOpen(t *testing.T) {
	for _, s := range cryptopool.AllSuites {
		_, kab, _ := testKeys(t, s)
		sealer, opener := mustSealer(t, kab), mustOpener(t, kab)
		for _, h := range []FrameHeader{{}, {FIN: true}, {URG: true, Urgent: 9}} {
			for _, n := range []int{0, 1, 1400, h.MaxData()} {
				data := seq(n%251, n)
				frame := sealFrame(t, sealer, h, data, 77)
				sent := bytes.Clone(frame)
				pt := PlaintextLen(frame)
				dst := bytes.Repeat([]byte{0xdd}, pt+5)
				gh, gd, err := opener.OpenTo(dst, frame, 77)
				if err != nil || gh != h || !bytes.Equal(gd, data) {
					t.Fatalf("%v %+v %d: OpenTo: %+v %v", s, h, n, gh, err)
				}
				if len(gd) > 0 && &gd[0] != &dst[h.DataStart()-HeaderLen] {
					t.Fatalf("%v %+v %d: the data is not in dst where it belongs", s, h, n)
				}
				if !bytes.Equal(dst[pt:], bytes.Repeat([]byte{0xdd}, 5)) || !bytes.Equal(frame, sent) {
					t.Fatalf("%v %+v %d: OpenTo wrote past the plaintext or into the frame", s, h, n)
				}
				if a := testing.AllocsPerRun(10, func() { opener.OpenTo(dst, frame, 77) }); a != 0 {
					t.Fatalf("%v %+v %d: %.0f allocations", s, h, n, a)
				}
				gh, gd, err = opener.OpenTo(dst[:pt-1], frame, 77)
				if err != nil || gh != h || !bytes.Equal(gd, data) || (len(gd) > 0 && &gd[0] != &frame[h.DataStart()]) {
					t.Fatalf("%v %+v %d: short dst did not open in place: %v", s, h, n, err)
				}
				bad := bytes.Clone(sent)
				bad[len(bad)-1] ^= 1
				if _, _, err := opener.OpenTo(dst, bad, 77); err != ErrFrameAuth {
					t.Fatalf("%v %+v %d: tampered frame into dst: %v", s, h, n, err)
				}
			}
		}
	}
}
