package scenario

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// isData matches segments with payload.
func isData(_ int, s Seg) bool { return len(s.Payload) > 0 }

// nthData returns a Match for the k-th data segment (0-based) sent from
// now on in a direction.
func nthData(k int) func(int, Seg) bool {
	n := -1
	return func(_ int, s Seg) bool {
		if len(s.Payload) == 0 {
			return false
		}
		n++
		return n == k
	}
}

// chunk returns n bytes of recognisable data starting with tag.
func chunk(tag byte, n int) []byte {
	b := bytes.Repeat([]byte{tag}, n)
	copy(b, "MARK")
	return b
}

// wireStream checks that every data segment a direction of the link carried
// is consistent with every other one: the same bytes at the same wire
// sequence numbers, whatever the host's segmentation (TC-45, TC-44).
func wireStream(t *testing.T, w *World, d Dir, isn uint32) *Stream {
	t.Helper()
	st := NewStream(isn)
	for _, s := range w.Link.Sent(d) {
		if s.Has(packettest.SYN) || s.Has(packettest.RST) {
			continue
		}
		if err := st.AddSeg(s); err != nil {
			t.Fatalf("link %v: %v at %v", d, err, s)
		}
	}
	return st
}

// hostStream collects what host s received, checking consistency.
func hostStream(t *testing.T, segs []Seg, isn uint32) *Stream {
	t.Helper()
	st := NewStream(isn)
	for _, s := range segs {
		if s.Has(packettest.SYN) || s.Has(packettest.RST) {
			continue
		}
		if err := st.AddSeg(s); err != nil {
			t.Fatalf("host stream: %v at %v", err, s)
		}
	}
	return st
}

// TestDataLoss: the second of three data segments is lost on the link.
// G_B holds the third (never delivered early) and answers with a duplicate
// ACK carrying a SACK block in wire space; G_A turns it into a duplicate
// ACK with the SACK block in host space, covering the whole third segment
// (docs/architecture.md §2). The host retransmits the lost segment; the link carries
// the stored frame again, same bytes (TC-45); b gets everything in order.
func TestDataLoss(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	segs := [][]byte{chunk('1', 100), chunk('2', 200), chunk('3', 300)}
	// The first segment arrives and b acknowledges it.
	w.Host(SideA, a.Data(0, isnB+1, segs[0]))
	w.Run(latency)
	if g := one(t, "first segment at b", withData(w.Take(SideB))); g.Seq != a.Seq(0) || !bytes.Equal(g.Payload, segs[0]) {
		t.Fatalf("b got %v", g)
	}
	w.Host(SideB, b.ACK(0, a.Seq(100)))
	w.Run(latency)
	w.Take(SideA)
	// The second is lost, the third arrives.
	w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true})
	nB := f.mark(BtoA)
	w.Host(SideA, a.Data(100, isnB+1, segs[1]))
	w.Host(SideA, a.Data(300, isnB+1, segs[2]))
	w.Run(latency)
	if got := withData(w.Take(SideB)); len(got) != 0 {
		t.Fatalf("b got %v before the gap was filled", got)
	}
	// The appliance's own duplicate ACK with SACK, in wire space.
	w1 := isnA + 1 + init1 // first frame
	w2 := w1 + 100 + ovh   // second frame (lost)
	w3 := w2 + 200 + ovh   // third frame
	w4 := w3 + 300 + ovh   // end
	var dup *Seg
	for _, s := range f.sentSince(BtoA, nB) {
		if len(s.SACK()) > 0 {
			dup = &s
		}
	}
	if dup == nil {
		t.Fatalf("G_B sent no duplicate ACK with SACK for the held segment: %v", f.sentSince(BtoA, nB))
	}
	if sk := dup.SACK(); dup.Ack != uint32(w2) || sk[0] != [2]uint32{uint32(w3), uint32(w4)} {
		t.Fatalf("duplicate ACK on the link %v SACK %v, want ack %d SACK [%d,%d) in wire space", dup, sk, w2, w3, w4)
	}
	w.Run(latency)
	var hostDup *Seg
	for _, s := range w.Take(SideA) {
		if len(s.SACK()) > 0 {
			hostDup = &s
		}
	}
	if hostDup == nil {
		t.Fatal("a got no duplicate ACK with SACK")
	}
	if sk := hostDup.SACK(); hostDup.Ack != a.Seq(100) || sk[0] != [2]uint32{a.Seq(300), a.Seq(600)} {
		t.Fatalf("duplicate ACK at a %v SACK %v, want ack %d SACK [%d,%d) in host space", hostDup, sk, a.Seq(100), a.Seq(300), a.Seq(600))
	}
	w.Link.Rules = nil
	// The host retransmits the lost segment.
	n := f.mark(AtoB)
	w.Host(SideA, a.Data(100, isnB+1, segs[1]))
	w.Run(0)
	re := one(t, "retransmission on the link", withData(f.sentSince(AtoB, n)))
	if re.Seq != uint32(w2) || len(re.Payload) != 200+ovh {
		t.Fatalf("retransmission on the link: %v, want seq %d len %d", re, w2, 200+ovh)
	}
	wireStream(t, w, AtoB, isnA) // same bytes as the lost original
	w.Run(latency)
	st := hostStream(t, w.All[SideB], isnA)
	if want := bytes.Join(segs, nil); !bytes.Equal(st.Contiguous(), want) || st.Holes() {
		t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(want))
	}
	n = f.mark(BtoA)
	w.Host(SideB, b.ACK(0, a.Seq(600)))
	w.Run(2 * latency)
	if g := f.sentSince(BtoA, n); len(g) == 0 || g[len(g)-1].Ack != uint32(w4) {
		t.Fatalf("b's ACK on the link %v, want ack %d", g, w4)
	}
}

// TestReorder: the first of two data segments is held on the link and
// arrives after the second. b gets nothing until the gap is filled, then
// both in order at their host sequence numbers.
func TestReorder(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	hold := w.Link.Add(Rule{Dir: AtoB, Match: nthData(0), Hold: true})
	p1, p2 := chunk('a', 500), chunk('b', 700)
	w.Host(SideA, a.Data(0, isnB+1, p1))
	w.Host(SideA, a.Data(500, isnB+1, p2))
	w.Run(3 * latency)
	if got := withData(w.Take(SideB)); len(got) != 0 {
		t.Fatalf("b got %v before the gap was filled", got)
	}
	w.Link.Release(w.Now, hold)
	w.Run(2 * latency)
	st := hostStream(t, w.All[SideB], isnA)
	if want := append(p1, p2...); !bytes.Equal(st.Contiguous(), want) || st.Holes() {
		t.Fatalf("b has %q..., want %d bytes in order", st.Contiguous(), len(want))
	}
	f.ab = nil
	f.dirs(SideA)
	f.ab.hostOff, f.ab.wireOff = 1200, init1+1200+2*ovh
	f.ack(t, SideB)
}

// TestAckLoss: b's ACK is lost on the link; its next ACK (with data)
// acknowledges everything, and a gets the cumulative ACK in host space.
func TestAckLoss(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w := f.w
	f.send(t, SideA, []byte("first"))
	w.Link.Add(Rule{Dir: BtoA, Match: func(_ int, s Seg) bool { return len(s.Payload) == 0 }, Drop: true})
	w.Host(SideB, f.b.ACK(0, f.a.Seq(5)))
	w.Run(3 * latency)
	for _, s := range w.Take(SideA) {
		if s.Ack == f.a.Seq(5) {
			t.Fatalf("a got the lost ACK: %v", s)
		}
	}
	f.send(t, SideB, []byte("reply"))
	f.ack(t, SideA)
	f.send(t, SideA, []byte("more"))
	f.ack(t, SideB)
}

// TestRetransmitResegmented: the host retransmits with a different
// segmentation than the original. The link must carry the same ciphertext
// bytes at the same wire sequence numbers (TC-45, TC-44, docs/architecture.md §2: the
// stored frames are resent whole, never re-encrypted).
func TestRetransmitResegmented(t *testing.T) {
	t.Run("one segment resent as two", func(t *testing.T) {
		f := full(t)
		f.handshake(t)
		w, a := f.w, f.a
		w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true})
		p := chunk('x', 1000)
		w.Host(SideA, a.Data(0, isnB+1, p))
		w.Run(200 * time.Millisecond)
		w.Host(SideA, a.Data(0, isnB+1, p[:500]))
		w.Host(SideA, a.Data(500, isnB+1, p[500:]))
		w.Run(2 * latency)
		ws := wireStream(t, w, AtoB, isnA)
		if len(ws.Contiguous()) != init1+1000+ovh {
			t.Fatalf("link carried %d contiguous bytes, want Init1 and one frame (%d)", len(ws.Contiguous()), init1+1000+ovh)
		}
		st := hostStream(t, w.All[SideB], isnA)
		if !bytes.Equal(st.Contiguous(), p) {
			t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(p))
		}
	})
	t.Run("two segments resent as one", func(t *testing.T) {
		f := full(t)
		f.handshake(t)
		w, a := f.w, f.a
		w.Link.Add(Rule{Dir: AtoB, Match: isData, Drop: true, Times: 2})
		p := chunk('y', 1000)
		w.Host(SideA, a.Data(0, isnB+1, p[:400]))
		w.Host(SideA, a.Data(400, isnB+1, p[400:]))
		w.Run(200 * time.Millisecond)
		w.Host(SideA, a.Data(0, isnB+1, p))
		w.Run(2 * latency)
		ws := wireStream(t, w, AtoB, isnA)
		if len(ws.Contiguous()) != init1+1000+2*ovh {
			t.Fatalf("link carried %d contiguous bytes, want Init1 and two frames (%d)", len(ws.Contiguous()), init1+1000+2*ovh)
		}
		st := hostStream(t, w.All[SideB], isnA)
		if !bytes.Equal(st.Contiguous(), p) {
			t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(p))
		}
	})
	t.Run("partial overlap after loss", func(t *testing.T) {
		f := full(t)
		f.handshake(t)
		w, a := f.w, f.a
		w.Link.Add(Rule{Dir: AtoB, Match: nthData(1), Drop: true})
		p := chunk('z', 1200)
		for i := 0; i < 1200; i += 300 {
			w.Host(SideA, a.Data(i, isnB+1, p[i:i+300]))
		}
		w.Run(200 * time.Millisecond)
		// The host's retransmission starts inside the lost frame and runs
		// over two frames that did arrive.
		w.Host(SideA, a.Data(300, isnB+1, p[300:1100]))
		w.Host(SideA, a.Data(1100, isnB+1, p[1100:]))
		w.Run(2 * latency)
		wireStream(t, w, AtoB, isnA)
		st := hostStream(t, w.All[SideB], isnA)
		if !bytes.Equal(st.Contiguous(), p) {
			t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(p))
		}
	})
}

// TestDuplicates: every segment is duplicated on the link, both ways, and
// the host also sends one data segment twice. Nothing breaks; b gets each
// byte with the same value wherever it appears; the link carries the same
// bytes for the same wire sequence numbers (TC-45).
func TestDuplicates(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	w.Link.Add(Rule{Dir: AtoB, Dup: 1, Times: -1})
	w.Link.Add(Rule{Dir: BtoA, Dup: 1, Times: -1})
	p := chunk('d', 900)
	w.Host(SideA, a.Data(0, isnB+1, p[:300]))
	w.Host(SideA, a.Data(0, isnB+1, p[:300]))
	w.Host(SideA, a.Data(300, isnB+1, p[300:]))
	w.Run(3 * latency)
	wireStream(t, w, AtoB, isnA)
	st := hostStream(t, w.All[SideB], isnA)
	if !bytes.Equal(st.Contiguous(), p) {
		t.Fatalf("b has %d bytes, want %d", len(st.Contiguous()), len(p))
	}
	w.Host(SideB, b.Data(0, a.Seq(900), []byte("reply from b")))
	w.Run(3 * latency)
	wireStream(t, w, BtoA, isnB)
	st = hostStream(t, w.All[SideA], isnB)
	if string(st.Contiguous()) != "reply from b" {
		t.Fatalf("a has %q", st.Contiguous())
	}
	var acked bool
	for _, s := range w.All[SideA] {
		acked = acked || s.Ack == a.Seq(900)
	}
	if !acked {
		t.Fatal("a never got the ACK of its 900 bytes")
	}
}

// TestSACKHostToWire: host b lost a segment on the inside (as if) and
// sends an ACK with a SACK block in host space; the link carries it in wire
// space covering whole frames, and a gets it back in host space.
func TestSACKHostToWire(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	for i := 0; i < 3; i++ {
		w.Host(SideA, a.Data(i*100, isnB+1, chunk(byte('p'+i), 100)))
	}
	w.Run(2 * latency)
	w1 := isnA + 1 + init1
	f2, f3, end := w1+100+ovh, w1+2*(100+ovh), w1+3*(100+ovh)
	n := f.mark(BtoA)
	w.Host(SideB, b.ACK(0, a.Seq(100), SACKOpt([2]uint32{a.Seq(200), a.Seq(300)})))
	w.Run(0)
	g := f.sentSince(BtoA, n)
	if len(g) == 0 {
		t.Fatal("b's ACK with SACK was not forwarded")
	}
	s := g[len(g)-1]
	if s.Ack != uint32(f2) || len(s.SACK()) != 1 || s.SACK()[0] != [2]uint32{uint32(f3), uint32(end)} {
		t.Fatalf("on the link: %v SACK %v, want ack %d SACK [%d,%d)", s, s.SACK(), f2, f3, end)
	}
	w.Run(latency)
	got := w.Take(SideA)
	if len(got) == 0 {
		t.Fatal("a got nothing")
	}
	s = got[len(got)-1]
	if s.Ack != a.Seq(100) || len(s.SACK()) != 1 || s.SACK()[0] != [2]uint32{a.Seq(200), a.Seq(300)} {
		t.Fatalf("at a: %v SACK %v, want ack %d SACK [%d,%d)", s, s.SACK(), a.Seq(100), a.Seq(200), a.Seq(300))
	}
}

// TestFIN closes each way. a's FIN with data becomes the FINp frame with
// TCP FIN on the segment holding its last byte (TC-49, TC-D8); b gets the
// FIN after the data. b's bare FIN becomes an empty FINp frame (20 bytes
// on the wire, docs/architecture.md §2); a gets a bare FIN at the right sequence
// number. The FINs are acknowledged across both spaces.
func TestFIN(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	f.exchange(t)
	d, r := f.dirs(SideA)
	n := f.mark(AtoB)
	w.Host(SideA, a.Seg(packettest.ACK|packettest.FIN|packettest.PSH, a.Seq(d.hostOff), b.Seq(r.hostOff), []byte("bye")))
	w.Run(0)
	s := one(t, "FIN on the link", withData(f.sentSince(AtoB, n)))
	if !s.Has(packettest.FIN) || s.Seq != a.Seq(d.wireOff) || len(s.Payload) != 3+ovh {
		t.Fatalf("FIN on the link: %v, want FIN at %d with %d bytes", s, a.Seq(d.wireOff), 3+ovh)
	}
	w.Run(latency)
	g := one(t, "FIN at b", withData(w.Take(SideB)))
	if !g.Has(packettest.FIN) || g.Seq != a.Seq(d.hostOff) || string(g.Payload) != "bye" {
		t.Fatalf("FIN at b: %v %q", g, g.Payload)
	}
	aFIN := d.hostOff + 3 // a's FIN occupies this host offset
	aWireFIN := d.wireOff + 3 + ovh
	// b acknowledges the FIN and sends its own, bare.
	n = f.mark(BtoA)
	w.Host(SideB, b.ACK(r.hostOff, a.Seq(aFIN+1)))
	w.Host(SideB, b.Seg(packettest.ACK|packettest.FIN, b.Seq(r.hostOff), a.Seq(aFIN+1), nil))
	w.Run(0)
	out := f.sentSince(BtoA, n)
	var finSeg *Seg
	for i := range out {
		if out[i].Has(packettest.FIN) {
			finSeg = &out[i]
		}
		if out[i].Ack != a.Seq(aWireFIN+1) {
			t.Fatalf("ACK of a's FIN on the link: %v, want ack %d", out[i], a.Seq(aWireFIN+1))
		}
	}
	if finSeg == nil || len(finSeg.Payload) != ovh || finSeg.Seq != b.Seq(r.wireOff) {
		t.Fatalf("b's bare FIN on the link: %v, want an empty FINp frame (%d bytes) at %d", finSeg, ovh, b.Seq(r.wireOff))
	}
	w.Run(latency)
	var aGot *Seg
	for _, s := range w.Take(SideA) {
		if s.Has(packettest.FIN) {
			aGot = &s
		}
	}
	if aGot == nil || len(aGot.Payload) != 0 || aGot.Seq != b.Seq(r.hostOff) || aGot.Ack != a.Seq(aFIN+1) {
		t.Fatalf("a got FIN %v, want bare FIN at %d ack %d", aGot, b.Seq(r.hostOff), a.Seq(aFIN+1))
	}
	n = f.mark(AtoB)
	w.Host(SideA, a.ACK(aFIN+1, b.Seq(r.hostOff+1)))
	w.Run(latency)
	if g := f.sentSince(AtoB, n); len(g) == 0 || g[len(g)-1].Ack != b.Seq(r.wireOff+ovh+1) {
		t.Fatalf("a's last ACK on the link: %v, want ack %d", g, b.Seq(r.wireOff+ovh+1))
	}
}

// TestRST resets each way: the RST crosses the link with its sequence
// number translated to wire space and reaches the other host in host space.
func TestRST(t *testing.T) {
	for _, from := range []Side{SideA, SideB} {
		f := full(t)
		f.handshake(t)
		f.exchange(t)
		w := f.w
		d, r := f.dirs(from)
		dl := d.d
		n := f.mark(dl)
		w.Host(from, d.src.Seg(packettest.RST|packettest.ACK, d.src.Seq(d.hostOff), d.dst.Seq(r.hostOff), nil))
		w.Run(0)
		s := one(t, "RST on the link", f.sentSince(dl, n))
		if !s.Has(packettest.RST) || s.Seq != d.src.Seq(d.wireOff) {
			t.Fatalf("RST on the link: %v, want seq %d", s, d.src.Seq(d.wireOff))
		}
		w.Run(latency)
		g := one(t, "RST at the other host", w.Take(d.to))
		if !g.Has(packettest.RST) || g.Seq != d.src.Seq(d.hostOff) {
			t.Fatalf("RST at the other host: %v, want seq %d", g, d.src.Seq(d.hostOff))
		}
	}
}

// TestInsideLossRedelivered: a segment G_B delivered is lost on the inside
// link (b never sees it). No split TCP: G_B has not acknowledged it to the
// far side, so a's host retransmits; G_A resends the stored frame (same
// bytes) and G_B, which already consumed those wire bytes, delivers the
// plaintext again from its store (engine contract: delivered plaintext kept
// until L acknowledges it).
func TestInsideLossRedelivered(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	p1, p2 := chunk('i', 300), chunk('j', 400)
	w.Host(SideA, a.Data(0, isnB+1, p1))
	w.Host(SideA, a.Data(300, isnB+1, p2))
	w.Run(latency)
	got := withData(w.Take(SideB))
	if len(got) != 2 {
		t.Fatalf("b got %d data segments, want 2", len(got))
	}
	// Pretend the first was lost inside: b acknowledges nothing new, so on
	// the link no ACK passes the first frame.
	w.Host(SideB, b.ACK(0, a.Seq(0)))
	w.Run(latency)
	for _, s := range w.Link.Sent(BtoA) {
		if !s.Has(packettest.SYN) && s.Ack > uint32(isnA+1+init1) {
			t.Fatalf("G_B acknowledged data b never acknowledged: %v", s)
		}
	}
	w.All[SideB] = nil
	w.Run(200 * time.Millisecond)
	w.Host(SideA, a.Data(0, isnB+1, p1))
	w.Run(2 * latency)
	wireStream(t, w, AtoB, isnA)
	re := withData(w.Take(SideB))
	if len(re) == 0 || re[0].Seq != a.Seq(0) || !bytes.HasPrefix(p1, re[0].Payload) {
		t.Fatalf("b got %v, want the first segment again at %d", re, a.Seq(0))
	}
	st := hostStream(t, re, isnA)
	if !bytes.HasPrefix(st.Contiguous(), p1) {
		t.Fatalf("b got %d bytes again, want at least the %d of the lost segment", len(st.Contiguous()), len(p1))
	}
	w.Host(SideB, b.ACK(0, a.Seq(700)))
	w.Run(2 * latency)
	last := w.Link.Sent(BtoA)
	if l := last[len(last)-1]; l.Ack != uint32(isnA+1+init1+700+2*ovh) {
		t.Fatalf("final ACK on the link %v, want %d", l, isnA+1+init1+700+2*ovh)
	}
}

// TestAckReorder: two ACKs from b cross on the link (the older is held and
// arrives last). a gets the newer one translated; the older one never
// moves a's view backwards past what it has, and the connection goes on.
func TestAckReorder(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a, b := f.w, f.a, f.b
	for i := 0; i < 3; i++ {
		w.Host(SideA, a.Data(i*100, isnB+1, chunk(byte('k'+i), 100)))
	}
	w.Run(latency)
	w.Take(SideB)
	hold := w.Link.Add(Rule{Dir: BtoA, Hold: true})
	w.Host(SideB, b.ACK(0, a.Seq(100)))
	w.Run(0)
	w.Host(SideB, b.ACK(0, a.Seq(300)))
	w.Run(latency)
	w.Link.Release(w.Now, hold)
	w.Run(2 * latency)
	got := w.Take(SideA)
	if len(got) == 0 {
		t.Fatal("a got no ACK")
	}
	var max uint32
	for _, s := range got {
		if s.Ack > max {
			max = s.Ack
		}
		if s.Has(packettest.RST) {
			t.Fatalf("a got RST: %v", s)
		}
	}
	if max != a.Seq(300) {
		t.Fatalf("a's highest ACK %d, want %d", max, a.Seq(300))
	}
	d, _ := f.dirs(SideA)
	d.hostOff, d.wireOff = 300, init1+300+3*ovh
	f.exchange(t)
}

// TestDataBeforeKeys: a sends data right after its third segment, before
// Init2 has come back. G_A queues it (docs/architecture.md §2: never in the clear,
// never dropped silently) and sends it framed, right after Init1, once the
// keys exist; b gets it at its host offset (ENO-37, TC-13).
func TestDataBeforeKeys(t *testing.T) {
	f := full(t)
	w, a := f.w, f.a
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	early := []byte("early MARK data before the keys")
	w.Host(SideA, a.Data(0, isnB+1, early))
	w.Run(0)
	for _, s := range w.Link.Sent(AtoB) {
		if bytes.Contains(s.Payload, []byte("MARK")) {
			t.Fatalf("plaintext on the link before the keys: %v", s)
		}
	}
	w.Run(4 * latency)
	ws := wireStream(t, w, AtoB, isnA)
	if got := len(ws.Contiguous()); got != init1+len(early)+ovh {
		t.Fatalf("link carried %d bytes from A, want Init1 and one frame (%d)", got, init1+len(early)+ovh)
	}
	st := hostStream(t, w.All[SideB], isnA)
	if !bytes.Equal(st.Contiguous(), early) {
		t.Fatalf("b has %q, want %q", st.Contiguous(), early)
	}
	f.established(t)
}

// TestKeepAlive: after its data is acknowledged, a sends a keep-alive
// (seq = next-1, no data). It crosses the link at the wire offset next-1,
// never as a frame (docs/protocol.md §15), and reaches b in host space; b's
// answer reaches a.
func TestKeepAlive(t *testing.T) {
	f := full(t)
	f.handshake(t)
	f.exchange(t)
	w, a, b := f.w, f.a, f.b
	d, r := f.dirs(SideA)
	n := f.mark(AtoB)
	w.Host(SideA, a.ACK(d.hostOff-1, b.Seq(r.hostOff)))
	w.Run(0)
	s := one(t, "keep-alive on the link", f.sentSince(AtoB, n))
	if s.Seq != a.Seq(d.wireOff-1) || len(s.Payload) != 0 {
		t.Fatalf("keep-alive on the link: %v, want seq %d", s, a.Seq(d.wireOff-1))
	}
	w.Run(latency)
	g := one(t, "keep-alive at b", w.Take(SideB))
	if g.Seq != a.Seq(d.hostOff-1) || len(g.Payload) != 0 {
		t.Fatalf("keep-alive at b: %v, want seq %d", g, a.Seq(d.hostOff-1))
	}
	n = f.mark(BtoA)
	w.Host(SideB, b.ACK(r.hostOff, a.Seq(d.hostOff)))
	w.Run(latency)
	if len(f.sentSince(BtoA, n)) == 0 {
		t.Fatal("b's answer to the keep-alive was suppressed: a's keep-alive gets no answer")
	}
	if got := w.Take(SideA); len(got) == 0 || got[len(got)-1].Ack != a.Seq(d.hostOff) {
		t.Fatalf("a got %v, want the keep-alive answer acking %d", got, a.Seq(d.hostOff))
	}
}

// TestURGStripped: the engine does not generate URGp (docs/protocol.md §13
// recommendation): a's urgent data goes on as normal data, the URG flag
// does not cross the link, b gets the bytes, and the engine counts it.
func TestURGStripped(t *testing.T) {
	f := full(t)
	f.handshake(t)
	w, a := f.w, f.a
	seg := a.Seg(packettest.ACK|packettest.PSH|0x20, a.Seq(0), isnB+1, []byte("urgent!"))
	seg[14+20+18], seg[14+20+19] = 0, 7 // urgent pointer
	FixChecksums(seg)
	n := f.mark(AtoB)
	w.Host(SideA, seg)
	w.Run(latency)
	for _, s := range f.sentSince(AtoB, n) {
		if s.Flags&0x20 != 0 {
			t.Fatalf("URG crossed the link: %v", s)
		}
	}
	if st := hostStream(t, w.All[SideB], isnA); string(st.Contiguous()) != "urgent!" {
		t.Fatalf("b has %q", st.Contiguous())
	}
	if w.G[SideA].Counters().URGStripped.Load() != 1 {
		t.Fatal("URG not counted")
	}
}

// TestServerFirst: b speaks first (an SMTP banner) the moment it gets the
// third segment, before G_B has even read Init1 (and, with a pool, before
// the key exchange is done), so G_B has no keys yet and must queue it. The banner is never on the link in the clear; it follows Init2 as
// B's first frame (TC-13) and reaches a at host offset 0.
func TestServerFirst(t *testing.T) {
	for _, pool := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "pool"}[pool], func(t *testing.T) {
			f := newFixture(t, [2]bool{true, true}, pool, nil)
			w, b := f.w, f.b
			f.stepSYN(t)
			f.stepSYNACK(t)
			banner := []byte("220 MARK banner")
			sent := false
			w.React = func(s Side, g Seg) {
				if s == SideB && !sent && !g.Has(packettest.SYN) {
					sent = true
					w.Host(SideB, b.Data(0, isnA+1, banner))
				}
			}
			f.stepACK(t)
			w.Run(4 * latency)
			if !sent {
				t.Fatal("b never got the third segment")
			}
			if w.G[SideB].Counters().PreKeyQueued.Load() == 0 {
				t.Fatal("the banner was not queued for the keys")
			}
			for _, s := range w.Link.Sent(BtoA) {
				if bytes.Contains(s.Payload, []byte("MARK")) {
					t.Fatalf("plaintext on the link: %v", s)
				}
			}
			ws := wireStream(t, w, BtoA, isnB)
			if got := len(ws.Contiguous()); got != init2+len(banner)+ovh {
				t.Fatalf("link carried %d bytes from B, want Init2 and one frame (%d)", got, init2+len(banner)+ovh)
			}
			if st := hostStream(t, w.All[SideA], isnB); !bytes.Equal(st.Contiguous(), banner) {
				t.Fatalf("a has %q", st.Contiguous())
			}
			f.established(t)
		})
	}
}
