package afpacket

import (
	"bytes"
	"testing"
	"time"
)

// TestSocketBatch drives the socket directly over one veth pair x <-> y in
// namespace afpt-sock: a batch written on x (a super-segment with a
// PrepareGSO header, plain frames, a frame too long for the MTU without GSO)
// is read on y. veth keeps GSO skbs whole, so the super-segment must come
// back as one frame with the same GSO type and size and a partial checksum
// that completes right; the oversized frame is refused and counted; a frame
// longer than the reader's buffer is dropped and counted; Read and Write
// allocate nothing.
func TestSocketBatch(t *testing.T) {
	requireRoot(t)
	const ns = "afpt-sock"
	quietVeth(t, ns)
	x := openIn(t, ns, "x", Options{VnetHdr: true})
	y := openIn(t, ns, "y", Options{VnetHdr: true})

	if ok, err := y.Wait(10*time.Millisecond, false); ok || err != nil {
		t.Fatalf("Wait on an idle socket: %v, %v", ok, err)
	}
	const off = VnetHdrLen
	frames := [][]byte{
		mkFrame(frameSpec{payload: pattern(40000), seq: 1000, flags: tcpPSH}),
		mkFrame(frameSpec{v6: true, payload: pattern(100), seq: 2000}),
		mkFrame(frameSpec{payload: pattern(3000), seq: 3000}), // no GSO header: longer than the MTU
		mkFrame(frameSpec{seq: 4000}),
	}
	bufs := make([][]byte, len(frames))
	sizes := make([]int, len(frames))
	for i, f := range frames {
		bufs[i] = make([]byte, off+len(f))
		copy(bufs[i][off:], f)
		sizes[i] = len(f)
	}
	h, err := PrepareGSO(bufs[0][off:], 1448)
	if err != nil || !h.IsGSO() {
		t.Fatalf("PrepareGSO: %+v %v", h, err)
	}
	_ = h.Encode(bufs[0])
	if n, err := x.Write(bufs, sizes, off); n != len(frames) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if st := x.Stats(); st.TxFrames != 3 || st.TxErrors != 1 {
		t.Fatalf("x stats %+v: want 3 sent, 1 refused", st)
	}

	rb := make([][]byte, 8)
	for i := range rb {
		rb[i] = make([]byte, off+MaxFrame)
	}
	rs := make([]int, len(rb))
	var got [][]byte
	var hdrs []VnetHdr
	for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		y.Wait(100*time.Millisecond, false)
		n, err := y.Read(rb, rs, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var h VnetHdr
			_ = h.Decode(rb[i])
			hdrs = append(hdrs, h)
			got = append(got, append([]byte{}, rb[i][off:off+rs[i]]...))
		}
	}
	if len(got) != 3 {
		t.Fatalf("read %d frames, want 3", len(got))
	}
	// The super-segment: one frame, GSO TCPv4 at 1448, partial checksum.
	g, h0 := got[0], hdrs[0]
	p, err := CheckTCP(&h0, g)
	if err != nil || h0.GSOType != GSOTCPv4 || h0.GSOSize != 1448 || h0.Flags&FlagNeedsCsum == 0 || len(g) != len(frames[0]) {
		t.Fatalf("super-segment came back as %d bytes, header %+v, %v", len(g), hdrs[0], err)
	}
	if err := h0.CompleteChecksum(g); err != nil || !TCPChecksumOK(g, p) || !bytes.Equal(g, frames[0]) {
		t.Fatal("super-segment: completed checksum or bytes differ from the original")
	}
	for i, want := range [][]byte{frames[1], frames[3]} {
		h := hdrs[i+1]
		if h.IsGSO() || !bytes.Equal(got[i+1], want) {
			t.Errorf("frame %d: header %+v, bytes equal %v", i+1, h, bytes.Equal(got[i+1], want))
		}
	}

	// A buffer too small for the frame: dropped and counted, not returned.
	small := [][]byte{make([]byte, off+100)}
	if n, _ := x.Write(bufs[1:2], sizes[1:2], off); n != 1 {
		t.Fatal("Write of one frame failed")
	}
	y.Wait(time.Second, false)
	if n, err := y.Read(small, rs, off); n != 0 || err != nil || y.Stats().RxTruncated != 1 {
		t.Fatalf("short buffer: %d frames, %v, stats %+v", n, err, y.Stats())
	}

	// No allocation per batch, system calls included.
	if a := testing.AllocsPerRun(100, func() {
		x.Write(bufs[1:2], sizes[1:2], off)
		y.Read(rb, rs, off)
	}); a != 0 {
		t.Errorf("Write+Read: %v allocations per run", a)
	}
	if a := testing.AllocsPerRun(20, func() { y.Wait(0, false) }); a != 0 {
		t.Errorf("Wait: %v allocations per run", a)
	}
	x.Close()
	if _, err := x.Write(bufs, sizes, off); err != ErrClosed {
		t.Errorf("Write after Close: %v", err)
	}
}

// TestSocketVLANTagKept: the kernel takes a frame's outer VLAN tag out of the
// data before packet sockets see it (the tag goes to PACKET_AUXDATA), so a
// bump that forwards what it reads would strip tags. Read puts the tag back:
// a tagged frame and a tagged super-segment written on x must be read on y
// byte for byte, the super-segment's csum_start still pointing at its TCP
// header.
func TestSocketVLANTagKept(t *testing.T) {
	requireRoot(t)
	const ns = "afpt-vlan"
	quietVeth(t, ns)
	x := openIn(t, ns, "x", Options{VnetHdr: true})
	y := openIn(t, ns, "y", Options{VnetHdr: true})
	const off = VnetHdrLen
	frames := [][]byte{
		mkFrame(frameSpec{vlan: true, payload: pattern(100), seq: 1}),
		mkFrame(frameSpec{vlan: true, v6: true, payload: pattern(30000), seq: 2}),
		mkFrame(frameSpec{payload: pattern(10), seq: 3}),
	}
	bufs := make([][]byte, len(frames))
	sizes := make([]int, len(frames))
	for i, f := range frames {
		bufs[i] = make([]byte, off+len(f))
		copy(bufs[i][off:], f)
		sizes[i] = len(f)
	}
	h, err := PrepareGSO(bufs[1][off:], 1428)
	if err != nil || !h.IsGSO() {
		t.Fatalf("PrepareGSO: %+v %v", h, err)
	}
	_ = h.Encode(bufs[1])
	if n, err := x.Write(bufs, sizes, off); n != len(frames) || err != nil || x.Stats().TxFrames != 3 {
		t.Fatalf("Write: %d, %v, %+v", n, err, x.Stats())
	}
	rb := make([][]byte, 4)
	for i := range rb {
		rb[i] = make([]byte, off+MaxFrame)
	}
	rs := make([]int, len(rb))
	var got [][]byte
	var hdrs []VnetHdr
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(frames) && time.Now().Before(deadline); {
		y.Wait(100*time.Millisecond, false)
		n, err := y.Read(rb, rs, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var h VnetHdr
			_ = h.Decode(rb[i])
			hdrs = append(hdrs, h)
			got = append(got, append([]byte{}, rb[i][off:off+rs[i]]...))
		}
	}
	if len(got) != len(frames) {
		t.Fatalf("read %d frames, want %d", len(got), len(frames))
	}
	for i, g := range got {
		want := frames[i]
		if hdrs[i].Flags&FlagNeedsCsum != 0 {
			p, err := CheckTCP(&hdrs[i], g)
			if err != nil {
				t.Fatalf("frame %d: %v (header %+v)", i, err, hdrs[i])
			}
			if err := hdrs[i].CompleteChecksum(g[:p.End]); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(g, want) {
			n := min(len(g), len(want), 20)
			t.Errorf("frame %d: read %d bytes starting % x, sent %d starting % x", i, len(g), g[:n], len(want), want[:n])
		}
	}
}

// TestSocketWriteGather: frames written in pieces (WriteGather) arrive
// whole, a super-segment among them, interleaved in order with a frame
// written by Write; empty pieces are refused; a batch allocates nothing.
func TestSocketWriteGather(t *testing.T) {
	requireRoot(t)
	const ns = "afpt-gather"
	quietVeth(t, ns)
	x := openIn(t, ns, "x", Options{VnetHdr: true})
	y := openIn(t, ns, "y", Options{VnetHdr: true})
	const off = VnetHdrLen
	super := mkFrame(frameSpec{payload: pattern(20000), seq: 1})
	hs, err := PrepareGSO(super, 1448)
	if err != nil || !hs.IsGSO() {
		t.Fatal(err)
	}
	plain := mkFrame(frameSpec{v6: true, payload: pattern(300), seq: 2})
	hdr := func(h VnetHdr) []byte { b := make([]byte, off); _ = h.Encode(b); return b }
	// The super-segment in four pieces: header and TCP/IP headers, then
	// its payload cut unevenly.
	first := append(hdr(hs), super[:60]...)
	frames := [][][]byte{
		{first, super[60:1000], super[1000:1001], super[1001:]},
		{append(hdr(VnetHdr{}), plain...)},
	}
	if n, err := x.WriteGather(frames); n != 2 || err != nil {
		t.Fatalf("WriteGather: %d, %v", n, err)
	}
	wb := [][]byte{append(make([]byte, off), plain...)}
	if n, err := x.Write(wb, []int{len(plain)}, off); n != 1 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if st := x.Stats(); st.TxFrames != 3 || st.TxBytes != uint64(len(super)+2*len(plain)) || st.TxErrors != 0 {
		t.Fatalf("x stats %+v", st)
	}
	rb := make([][]byte, 4)
	for i := range rb {
		rb[i] = make([]byte, off+MaxFrame)
	}
	rs := make([]int, len(rb))
	var got [][]byte
	for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		y.Wait(100*time.Millisecond, false)
		n, err := y.Read(rb, rs, off)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var h VnetHdr
			_ = h.Decode(rb[i])
			g := append([]byte{}, rb[i][off:off+rs[i]]...)
			if h.Flags&FlagNeedsCsum != 0 {
				_ = h.CompleteChecksum(g)
			}
			got = append(got, g)
		}
	}
	if len(got) != 3 {
		t.Fatalf("read %d frames, want 3", len(got))
	}
	full := append([]byte{}, super...)
	p, _ := ParseTCP(full)
	h2 := hs
	_ = h2.CompleteChecksum(full[:p.End])
	for i, want := range [][]byte{full, plain, plain} {
		if !bytes.Equal(got[i], want) {
			t.Errorf("frame %d: %d bytes, want %d, equal %v", i, len(got[i]), len(want), bytes.Equal(got[i], want))
		}
	}
	if n, err := x.WriteGather([][][]byte{{first, nil}}); n != 0 || err != ErrNoRoom {
		t.Errorf("an empty piece: %d, %v", n, err)
	}
	if a := testing.AllocsPerRun(50, func() { x.WriteGather(frames[1:]) }); a != 0 {
		t.Errorf("WriteGather: %v allocations per run", a)
	}
}
