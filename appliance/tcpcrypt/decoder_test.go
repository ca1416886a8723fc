package tcpcrypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// wantFrame is what the decoder must emit for one frame of a test stream.
type wantFrame struct {
	FrameHeader
	Offset  uint64
	WireLen int
	Data    []byte
}

// testStream is a sender's frames back to back, from a fixed master key,
// with what a receiver must decode from them.
type testStream struct {
	mk0    []byte
	suite  cryptopool.Suite
	start  uint64
	wire   []byte
	frames []wantFrame
}

// streamSpec lists frames to send: data length, and whether to start a
// rekey before the frame; the last frame carries FINp if fin.
type streamSpec struct {
	sizes []int
	rekey map[int]bool
	fin   bool
}

func buildStream(tb testing.TB, s cryptopool.Suite, start uint64, spec streamSpec) *testStream {
	tb.Helper()
	ts := &testStream{mk0: seq(0x60, SecretLen), suite: s, start: start}
	keys, err := NewKeyRing(ts.mk0, s, true)
	if err != nil {
		tb.Fatal(err)
	}
	off := start
	for i, n := range spec.sizes {
		if spec.rekey[i] {
			if err := keys.StartRekey(); err != nil {
				tb.Fatal(err)
			}
		}
		fin := spec.fin && i == len(spec.sizes)-1
		k, err := keys.Send(n, fin)
		if err != nil {
			tb.Fatal(err)
		}
		h := FrameHeader{Rekey: k.Rekey, FIN: fin}
		data := seq(i*7, n)
		f := sealFrame(tb, k.Sealer, h, data, off)
		ts.wire = append(ts.wire, f...)
		ts.frames = append(ts.frames, wantFrame{h, off, len(f), data})
		off += uint64(len(f))
	}
	return ts
}

func (ts *testStream) receiver(tb testing.TB) *FrameDecoder {
	tb.Helper()
	keys, err := NewKeyRing(ts.mk0, ts.suite, false)
	if err != nil {
		tb.Fatal(err)
	}
	return NewFrameDecoder(keys, ts.start)
}

// decodeChunks feeds a copy of the stream cut at the given points and
// returns the frames decoded (data copied) and the first error.
func (ts *testStream) decodeChunks(tb testing.TB, cuts []int) ([]wantFrame, error) {
	tb.Helper()
	d := ts.receiver(tb)
	wire := bytes.Clone(ts.wire)
	var got []wantFrame
	prev := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(wire)
		if i < len(cuts) {
			end = cuts[i]
		}
		if err := d.Feed(wire[prev:end]); err != nil {
			return got, err
		}
		prev = end
		for {
			f, ok, err := d.Next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			got = append(got, wantFrame{f.FrameHeader, f.Offset, f.WireLen, bytes.Clone(f.Data)})
		}
		if i%2 == 1 {
			d.Trim() // as an idle flow does: it must not lose a partial frame
		}
	}
	if d.Buffered() != 0 {
		return got, fmt.Errorf("%d bytes left buffered", d.Buffered())
	}
	if d.Trim(); cap(d.part) != 0 {
		return got, fmt.Errorf("Trim kept a buffer of %d bytes with no partial frame", cap(d.part))
	}
	if d.Offset() != ts.start+uint64(len(ts.wire)) {
		return got, fmt.Errorf("decoder offset %d, want %d", d.Offset(), ts.start+uint64(len(ts.wire)))
	}
	return got, nil
}

func (ts *testStream) check(tb testing.TB, cuts []int) {
	tb.Helper()
	got, err := ts.decodeChunks(tb, cuts)
	if err != nil {
		tb.Fatalf("cuts %v: %v", cuts, err)
	}
	if len(got) != len(ts.frames) {
		tb.Fatalf("cuts %v: %d frames, want %d", cuts, len(got), len(ts.frames))
	}
	for i, w := range ts.frames {
		g := got[i]
		if g.FrameHeader != w.FrameHeader || g.Offset != w.Offset || g.WireLen != w.WireLen || !bytes.Equal(g.Data, w.Data) {
			tb.Fatalf("cuts %v: frame %d = %+v (%d bytes), want %+v (%d bytes)", cuts, i,
				g.FrameHeader, len(g.Data), w.FrameHeader, len(w.Data))
		}
	}
}

// TestDecoderEverySplit feeds a stream of several frames (empty, small, a
// rekey, FINp) cut into two chunks at every point, and into three chunks at
// every pair of points.
func TestDecoderEverySplit(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 75, streamSpec{
		sizes: []int{5, 0, 1, 40, 0, 17, 3},
		rekey: map[int]bool{3: true, 4: true},
		fin:   true,
	})
	ts.check(t, nil)
	for i := 0; i <= len(ts.wire); i++ {
		ts.check(t, []int{i})
	}
	for i := 0; i <= len(ts.wire); i++ {
		for j := i; j <= len(ts.wire); j++ {
			ts.check(t, []int{i, j})
		}
	}
}

// TestDecoderLargeFrames: frames of clen 65535 (65538 bytes on the wire, as
// a host-based peer may send) between small ones, fed byte by byte, in
// segment-sized chunks, and cut at every point near the frame edges.
func TestDecoderLargeFrames(t *testing.T) {
	for _, s := range cryptopool.AllSuites {
		t.Run(s.String(), func(t *testing.T) {
			ts := buildStream(t, s, 74, streamSpec{
				sizes: []int{3, MaxData, 0, MaxData, 1400},
				rekey: map[int]bool{3: true},
				fin:   true,
			})
			if ts.frames[1].WireLen != MaxFrameLen {
				t.Fatalf("big frame is %d bytes", ts.frames[1].WireLen)
			}
			for _, chunk := range []int{1, 2, 3, 1448, 9000, 65538, 70000} {
				var cuts []int
				for c := chunk; c < len(ts.wire); c += chunk {
					cuts = append(cuts, c)
				}
				ts.check(t, cuts)
			}
			for _, f := range ts.frames {
				edge := int(f.Offset - ts.start)
				for i := max(0, edge-5); i <= min(len(ts.wire), edge+5); i++ {
					ts.check(t, []int{i})
					ts.check(t, []int{i, min(len(ts.wire), i+MaxFrameLen-1)})
				}
			}
			rng := rand.New(rand.NewPCG(1, uint64(s)))
			for range 50 {
				var cuts []int
				for c := rng.IntN(3000); c < len(ts.wire); c += 1 + rng.IntN(20000) {
					cuts = append(cuts, c)
				}
				ts.check(t, cuts)
			}
		})
	}
}

// TestDecoderAuthFailure: a changed byte anywhere in the stream stops the
// decoder at the frame that holds it, with ErrFrameAuth (TC-47), and none
// of that frame's data comes out. The error is sticky and not EOF (TC-78).
func TestDecoderAuthFailure(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{10, 0, 30}, rekey: map[int]bool{1: true}})
	for i := range ts.wire {
		bad := &testStream{mk0: ts.mk0, suite: ts.suite, start: ts.start, wire: bytes.Clone(ts.wire)}
		bad.wire[i] ^= 0x40
		got, err := bad.decodeChunks(t, []int{i / 2, i + 1})
		// The frame holding byte i.
		k := 0
		for int(ts.frames[k].Offset)+ts.frames[k].WireLen <= i {
			k++
		}
		if len(got) > k {
			t.Fatalf("byte %d: frame %d came out of a tampered stream", i, k)
		}
		if i-int(ts.frames[k].Offset) < HeaderLen {
			// A changed clen may also ask for more bytes than follow, or a
			// length below an empty frame's.
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("byte %d (header): err = %v", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrFrameAuth) {
			t.Fatalf("byte %d: err = %v, want ErrFrameAuth", i, err)
		}
	}

	d := ts.receiver(t)
	wire := bytes.Clone(ts.wire)
	wire[len(wire)-1] ^= 1
	d.Feed(wire)
	var n int
	for {
		_, ok, err := d.Next()
		if err != nil {
			if !errors.Is(err, ErrFrameAuth) || d.Offset() != ts.frames[2].Offset {
				t.Fatalf("err %v at offset %d, want ErrFrameAuth at %d", err, d.Offset(), ts.frames[2].Offset)
			}
			break
		}
		if !ok {
			t.Fatal("no error")
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d frames before the bad one, want 2", n)
	}
	if _, _, err := d.Next(); !errors.Is(err, ErrFrameAuth) {
		t.Fatalf("error not sticky: %v", err)
	}
	if err := d.Feed([]byte{1}); !errors.Is(err, ErrFrameAuth) {
		t.Fatalf("Feed after the error: %v", err)
	}
}

// TestDecoderAfterFIN: any byte after the FINp frame is a protocol error
// (TC-49), reported after the FINp frame itself has come out (TC-50).
func TestDecoderAfterFIN(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 75, streamSpec{sizes: []int{4, 0}, fin: true})
	more := buildStream(t, cryptopool.AES128GCM, 75, streamSpec{sizes: []int{4, 0, 2}})
	for _, extra := range [][]byte{{0}, more.wire[len(ts.wire):]} {
		d := ts.receiver(t)
		d.Feed(append(bytes.Clone(ts.wire), extra...))
		var fin bool
		var err error
		for {
			var f Frame
			var ok bool
			f, ok, err = d.Next()
			if !ok {
				break
			}
			fin = f.FIN
		}
		if !fin || !d.FIN() {
			t.Fatal("FINp frame not reported")
		}
		if !errors.Is(err, ErrDataAfterFIN) {
			t.Fatalf("extra %d bytes: err = %v", len(extra), err)
		}
	}
	// Split after the FINp frame: the error comes with the next chunk.
	d := ts.receiver(t)
	d.Feed(bytes.Clone(ts.wire))
	for {
		if _, ok, err := d.Next(); err != nil {
			t.Fatal(err)
		} else if !ok {
			break
		}
	}
	if !d.FIN() || d.Err() != nil {
		t.Fatal("clean end of stream not reported")
	}
	d.Feed([]byte{0, 0})
	if _, _, err := d.Next(); !errors.Is(err, ErrDataAfterFIN) {
		t.Fatalf("err = %v", err)
	}
}

func TestDecoderMalformedAndMisuse(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{4}})
	for _, cuts := range [][]int{nil, {1}, {2}, {3}} {
		d := ts.receiver(t)
		wire := []byte{0, 0, 16, 1, 2, 3}
		prev := 0
		var err error
		for _, end := range append(cuts, len(wire)) {
			d.Feed(wire[prev:end])
			prev = end
			if _, _, err = d.Next(); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrFrameMalformed) {
			t.Fatalf("cuts %v: clen 16: err = %v", cuts, err)
		}
	}
	d := ts.receiver(t)
	if err := d.Feed(ts.wire); err != nil {
		t.Fatal(err)
	}
	if err := d.Feed(ts.wire); !errors.Is(err, ErrFeedPending) {
		t.Fatalf("second Feed: %v", err)
	}
}

// TestDecoderNoAllocs: once its buffer has grown, the decoder allocates
// nothing, whether frames lie inside chunks or span them.
func TestDecoderNoAllocs(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{1400, 1400, 1400, 100}})
	d := ts.receiver(t)
	wire := make([]byte, len(ts.wire))
	frames := 0
	allocs := testing.AllocsPerRun(50, func() {
		// The same bytes again: rewind the offset so the nonces match.
		d.offset = ts.start
		copy(wire, ts.wire)
		for _, chunk := range [][]byte{wire[:1000], wire[1000:3000], wire[3000:3001], wire[3001:]} {
			if err := d.Feed(chunk); err != nil {
				t.Fatal(err)
			}
			for {
				_, ok, err := d.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				frames++
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per pass, want 0", allocs)
	}
	if frames != 51*len(ts.frames) {
		t.Fatalf("decoded %d frames, want %d", frames, 51*len(ts.frames))
	}
}

// BenchmarkDecoder measures receive throughput: 1400-byte frames arriving
// in 1448-byte segments, so most frames span two chunks.
func BenchmarkDecoder(b *testing.B) {
	for _, s := range cryptopool.AllSuites {
		b.Run(s.String(), func(b *testing.B) {
			sizes := make([]int, 64)
			for i := range sizes {
				sizes[i] = 1400
			}
			ts := buildStream(b, s, 0, streamSpec{sizes: sizes})
			d := ts.receiver(b)
			wire := make([]byte, len(ts.wire))
			b.SetBytes(int64(len(ts.wire)))
			b.ReportAllocs()
			for b.Loop() {
				d.offset = ts.start
				copy(wire, ts.wire)
				for c := 0; c < len(wire); c += 1448 {
					d.Feed(wire[c:min(c+1448, len(wire))])
					for {
						_, ok, err := d.Next()
						if err != nil {
							b.Fatal(err)
						}
						if !ok {
							break
						}
					}
				}
			}
		})
	}
}

// TestDecoderPartial: Partial reports the wire length of the frame being
// assembled once its 3-byte header is in, and nothing between frames.
func TestDecoderPartial(t *testing.T) {
	ts := buildStream(t, cryptopool.AES128GCM, 75, streamSpec{sizes: []int{MaxData, 10}})
	d := ts.receiver(t)
	big := ts.frames[0].WireLen
	for _, cut := range []struct{ from, to, want int }{{0, 2, -1}, {2, 3, big}, {3, 1400, big}, {1400, big - 1, big}, {big - 1, big + 5, ts.frames[1].WireLen}, {big + 5, len(ts.wire), -1}} {
		if err := d.Feed(ts.wire[cut.from:cut.to]); err != nil {
			t.Fatal(err)
		}
		for {
			_, ok, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
		}
		n, ok := d.Partial()
		if (cut.want < 0) == ok || (ok && n != cut.want) {
			t.Fatalf("after %d bytes Partial() = %d, %v; want %d", cut.to, n, ok, cut.want)
		}
		if ok && uint64(d.Buffered()) != uint64(cut.to)-(d.Offset()-ts.start) {
			t.Fatalf("after %d bytes %d buffered at offset %d", cut.to, d.Buffered(), d.Offset())
		}
	}
}

// Feedable stops a chunk one byte before the end of the first frame that
// does not fit, whatever the cut: a header split between the partial frame
// and the chunk, frames completing in one chunk, a frame not yet whole.
func TestFeedable(t *testing.T) {
	hdr := func(n int) []byte { return []byte{0, byte((n - HeaderLen) >> 8), byte(n - HeaderLen)} }
	frame := func(n int) []byte { return append(hdr(n), make([]byte, n-HeaderLen)...) } // n wire bytes, n-20 data
	stream := append(append(frame(50), frame(120)...), frame(40)...)
	for cut := 0; cut <= 50; cut++ {
		d := &FrameDecoder{part: append([]byte(nil), stream[:cut]...)}
		chunk := stream[cut:]
		var seen []int64
		room := int64(30 + 100) // the first two frames' data
		n := d.Feedable(chunk, func(need int64, k int) bool {
			seen = append(seen, need)
			if int64(k) != int64(len(seen)) {
				t.Fatalf("cut %d: frame count %d after %d calls", cut, k, len(seen))
			}
			return need <= room
		})
		if want := 50 + 120 + 40 - 1 - cut; n != want || len(seen) != 3 || seen[0] != 30 || seen[1] != 130 || seen[2] != 150 {
			t.Fatalf("cut %d: fed %d (want %d), needs %v", cut, n, want, seen)
		}
	}
	// A frame not yet whole, its header in: all of it may be fed.
	d := &FrameDecoder{}
	if n := d.Feedable(frame(100)[:60], func(int64, int) bool { return false }); n != 60 {
		t.Fatalf("an incomplete frame: fed %d of 60", n)
	}
	// The first frame does not fit: all but its last byte.
	if n := d.Feedable(frame(100), func(int64, int) bool { return false }); n != 99 {
		t.Fatalf("a frame without room: fed %d, want 99", n)
	}
}
