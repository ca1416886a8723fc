package tcpcrypt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// fuzzOpeners returns independent openers of k_ab[0..n) for the test
// streams' master key, to re-check every frame a decoder lets through.
func fuzzOpeners(tb testing.TB, n int) []*Opener {
	mk := seq(0x60, SecretLen)
	var out []*Opener
	for range n {
		kab, _ := TrafficKeys(mk, cryptopool.AES128GCM)
		out = append(out, mustOpener(tb, kab))
		mk = NextMasterKey(mk)
	}
	return out
}

// FuzzDecoder feeds arbitrary bytes, cut into chunks by a second input, to a
// FrameDecoder. It must never panic, and every frame it emits must be one
// the sender really sealed: it must open, from the original bytes, with an
// independent opener of the generation its rekey bits lead to, and give the
// same header and data (TC-47: no unauthenticated data ever comes out).
func FuzzDecoder(f *testing.F) {
	seeds := []*testStream{
		buildStream(f, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{5, 0, 30}, rekey: map[int]bool{1: true}, fin: true}),
		buildStream(f, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{0, 0, 1}, rekey: map[int]bool{0: true, 2: true}}),
		buildStream(f, cryptopool.AES128GCM, 0, streamSpec{sizes: []int{300}}),
	}
	for _, ts := range seeds {
		f.Add(ts.wire, []byte{})
		f.Add(ts.wire, []byte{1})
		f.Add(ts.wire, []byte{3, 17, 0, 40})
		f.Add(ts.wire, []byte{0x80 | 5, 17, 0, 40})
	}
	f.Add([]byte{0, 0, 16, 0}, []byte{2})
	f.Add([]byte{0, 0xff, 0xff, 1, 2, 3}, []byte{1, 1})
	f.Add([]byte{0x01, 0, 17}, []byte{})
	openers := fuzzOpeners(f, MaxGenerations+2)

	f.Fuzz(func(t *testing.T, wire, cuts []byte) {
		orig := bytes.Clone(wire)
		keys, err := NewKeyRing(seq(0x60, SecretLen), cryptopool.AES128GCM, false)
		if err != nil {
			t.Fatal(err)
		}
		d := NewFrameDecoder(keys, 0)
		// A first cut with its top bit set opens the frames into a
		// buffer of its own (NextInto), too short for some of them.
		var dst []byte
		if len(cuts) > 0 && cuts[0]&0x80 != 0 {
			dst = make([]byte, int(cuts[0]&0x7f)*64)
		}
		gen, next, pos, ci := 0, uint64(0), 0, 0
		for pos < len(wire) && d.Err() == nil {
			n := len(wire) - pos
			if ci < len(cuts) {
				n = min(n, int(cuts[ci])+1)
				ci++
			}
			if err := d.Feed(wire[pos : pos+n]); err != nil {
				break
			}
			pos += n
			for {
				fr, ok, err := d.NextInto(dst)
				if err != nil || !ok {
					break
				}
				if fr.Offset != next || fr.WireLen < Overhead || int(fr.Offset)+fr.WireLen > len(orig) {
					t.Fatalf("frame at %d, %d bytes; expected offset %d", fr.Offset, fr.WireLen, next)
				}
				next += uint64(fr.WireLen)
				if fr.Rekey {
					gen++
				}
				if gen >= len(openers) {
					t.Fatalf("generation %d accepted", gen)
				}
				raw := bytes.Clone(orig[fr.Offset : fr.Offset+uint64(fr.WireLen)])
				h, data, err := openers[gen].Open(raw, fr.Offset)
				if err != nil || h != fr.FrameHeader || !bytes.Equal(data, fr.Data) {
					t.Fatalf("decoder emitted a frame at %d that the sender did not seal: %v", fr.Offset, err)
				}
			}
		}
		if d.Offset() != next {
			t.Fatalf("decoder offset %d, frames end at %d", d.Offset(), next)
		}
		if keys.Remote() != uint64(gen) {
			t.Fatalf("remote generation %d after %d rekey frames", keys.Remote(), gen)
		}
	})
}

// rekeySide is one host in FuzzRekey with the frames it has in flight.
type rekeySide struct {
	*peer
	inflight []rekeyFrame // sent, not yet delivered to the other side
	rekeys   uint64       // rekey frames received
	emptyGen uint64       // highest generation announced by an empty rekey frame
	fin      bool
}

type rekeyFrame struct {
	frame []byte
	off   uint64
	gen   uint64
	h     FrameHeader
	data  string
}

// FuzzRekey drives two KeyRings through random sequences of rekeys, sends,
// deliveries, FINs, retransmissions and Forget calls, and checks the rules
// of docs/protocol.md §14 after every step: every frame opens at the peer (both
// sides agree on keys), rekey bits move the sending generation by exactly
// one (TC-54, TC-55), local >= remote (TC-56), owed answers (TC-57), no
// second unanswered empty rekey (TC-58), retransmissions give the same bytes
// (TC-59), nothing after FINp (TC-49). At the end, once everything owed is
// sent and delivered, both hosts agree on the generation.
func FuzzRekey(f *testing.F) {
	f.Add([]byte{0, 2, 6, 13, 7})
	f.Add([]byte{0, 1, 3, 5, 6, 7})
	f.Add([]byte{0, 3, 0, 3, 2, 6, 6, 13, 7, 7})
	f.Add([]byte{9, 0, 2, 6, 13, 7, 8})
	f.Add([]byte{0, 2, 0, 2, 12, 6, 6, 10, 13, 13, 7, 7, 11})
	f.Fuzz(runRekeyOps)
}

// runRekeyOps plays one FuzzRekey input.
func runRekeyOps(t *testing.T, ops []byte) {
	if len(ops) > 512 {
		ops = ops[:512]
	}
	pa, pb := newPeers(t, seq(9, 32), cryptopool.AES128GCM)
	a, b := &rekeySide{peer: pa}, &rekeySide{peer: pb}
	for i, op := range ops {
		x, y := a, b
		if op&1 == 1 {
			x, y = b, a
		}
		switch (op >> 1) % 8 {
		case 0:
			startRekey(t, x)
		case 1:
			sendFrame(t, x, "data", false)
		case 2:
			sendFrame(t, x, "", false)
		case 3:
			deliverOne(t, x, y)
		case 4:
			sendFrame(t, x, "fin", true)
		case 5:
			forgetAcked(x)
		case 6:
			retransmitOldest(t, x)
		case 7:
			for x.keys.Owed() {
				sendFrame(t, x, "", false)
			}
		}
		checkSide(t, x, i)
		checkSide(t, y, i)
	}
	// Drain: deliver everything, answer what is owed, send what is
	// pending, until nothing moves.
	for range 4 * MaxGenerations {
		for len(a.inflight) > 0 || len(b.inflight) > 0 {
			deliverOne(t, a, b)
			deliverOne(t, b, a)
		}
		forgetAcked(a)
		forgetAcked(b)
		moved := false
		for _, x := range []*rekeySide{a, b} {
			if x.keys.RekeyPending() {
				sendFrame(t, x, "", false)
				if len(x.inflight) == 0 {
					sendFrame(t, x, "x", false)
				}
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	for _, x := range []*rekeySide{a, b} {
		checkSide(t, x, len(ops))
	}
	if a.keys.SendGeneration() != b.keys.Remote() || b.keys.SendGeneration() != a.keys.Remote() {
		t.Fatalf("after draining: A sends %d, B saw %d; B sends %d, A saw %d",
			a.keys.SendGeneration(), b.keys.Remote(), b.keys.SendGeneration(), a.keys.Remote())
	}
	if !a.fin && !b.fin && (a.keys.Local() != b.keys.Local() || a.keys.Local() != a.keys.SendGeneration()) {
		t.Fatalf("after draining: local A %d, B %d, A sends %d", a.keys.Local(), b.keys.Local(), a.keys.SendGeneration())
	}
}

func startRekey(t *testing.T, x *rekeySide) {
	local, pending := x.keys.Local(), x.keys.RekeyPending()
	err := x.keys.StartRekey()
	switch {
	case err == nil:
		if pending || x.fin || x.keys.Local() != local+1 || !x.keys.RekeyPending() {
			t.Fatalf("%s: StartRekey accepted (pending %v, fin %v, local %d -> %d)", x.name, pending, x.fin, local, x.keys.Local())
		}
	case errors.Is(err, ErrFINSent) && x.fin, errors.Is(err, ErrRekeyPending) && pending,
		errors.Is(err, ErrTooManyGenerations):
		if x.keys.Local() != local {
			t.Fatalf("%s: refused StartRekey moved local", x.name)
		}
	default:
		t.Fatalf("%s: StartRekey: %v", x.name, err)
	}
}

func sendFrame(t *testing.T, x *rekeySide, data string, fin bool) {
	before := x.keys.SendGeneration()
	pending := x.keys.RekeyPending()
	// TC-58: an empty frame that would start a rekey while an earlier empty
	// rekey frame is unanswered must be refused.
	unanswered := x.emptyGen > x.keys.Remote()
	k, err := x.keys.Send(len(data), fin)
	switch {
	case err == nil:
	case errors.Is(err, ErrFINSent) && x.fin,
		errors.Is(err, ErrTooManyGenerations):
		return
	case errors.Is(err, ErrEmptyRekey) && data == "" && pending && before+1 > x.keys.Remote() && unanswered:
		if x.keys.SendGeneration() != before {
			t.Fatalf("%s: refused Send moved the generation", x.name)
		}
		return
	default:
		t.Fatalf("%s: Send(%q, fin %v): %v (pending %v, unanswered %v)", x.name, data, fin, err, pending, unanswered)
	}
	if x.fin {
		t.Fatalf("%s: frame after FINp", x.name)
	}
	if data == "" && k.Rekey && k.Generation > x.keys.Remote() && unanswered {
		t.Fatalf("%s: second unanswered empty rekey frame (TC-58)", x.name)
	}
	want := before
	if pending {
		want++
	}
	if k.Rekey != pending || k.Generation != want || x.keys.SendGeneration() != want {
		t.Fatalf("%s: rekey %v gen %d, want rekey %v gen %d", x.name, k.Rekey, k.Generation, pending, want)
	}
	h := FrameHeader{Rekey: k.Rekey, FIN: fin}
	f := sealFrame(t, k.Sealer, h, []byte(data), x.offset)
	x.inflight = append(x.inflight, rekeyFrame{f, x.offset, k.Generation, h, data})
	if k.Rekey && data == "" {
		x.emptyGen = max(x.emptyGen, k.Generation)
	}
	x.offset += uint64(len(f))
	x.fin = x.fin || fin
}

func deliverOne(t *testing.T, x, y *rekeySide) {
	if len(x.inflight) == 0 {
		return
	}
	f := x.inflight[0]
	x.inflight = x.inflight[1:]
	localBefore := y.keys.Local()
	h, data, err := y.keys.Open(bytes.Clone(f.frame), f.off)
	if err != nil || h != f.h || string(data) != f.data {
		t.Fatalf("%s could not open %s's frame at %d (gen %d): %v", y.name, x.name, f.off, f.gen, err)
	}
	if h.Rekey {
		y.rekeys++
	}
	if y.keys.Remote() != y.rekeys || y.keys.Remote() != f.gen {
		t.Fatalf("%s: remote %d after %d rekey frames (frame gen %d)", y.name, y.keys.Remote(), y.rekeys, f.gen)
	}
	// TC-57: a raise caused by the peer is owed at once, unless FIN was sent.
	if h.Rekey && y.keys.Remote() > localBefore {
		if y.keys.Local() != y.keys.Remote() {
			t.Fatalf("%s: remote %d > local %d not matched (TC-56)", y.name, y.keys.Remote(), y.keys.Local())
		}
		if !y.fin && !y.keys.Owed() {
			t.Fatalf("%s: peer's rekey raised local but no frame is owed (TC-57)", y.name)
		}
	}
	if y.fin && y.keys.Owed() {
		t.Fatalf("%s owes a frame after its FINp", y.name)
	}
}

// forgetAcked drops the sending keys below the oldest frame still in flight.
func forgetAcked(x *rekeySide) {
	g := x.keys.SendGeneration()
	if len(x.inflight) > 0 {
		g = x.inflight[0].gen
	}
	x.keys.Forget(g)
}

func retransmitOldest(t *testing.T, x *rekeySide) {
	if len(x.inflight) == 0 {
		return
	}
	f := x.inflight[0]
	s, err := x.keys.Sealer(f.gen)
	if err != nil {
		t.Fatalf("%s: no key to retransmit generation %d: %v", x.name, f.gen, err)
	}
	if again := sealFrame(t, s, f.h, []byte(f.data), f.off); !bytes.Equal(again, f.frame) {
		t.Fatalf("%s: retransmission at %d differs (TC-59)", x.name, f.off)
	}
}

func checkSide(t *testing.T, x *rekeySide, step int) {
	k := x.keys
	if k.Local() < k.Remote() || k.SendGeneration() > k.Local() {
		t.Fatalf("step %d %s: local %d remote %d send %d", step, x.name, k.Local(), k.Remote(), k.SendGeneration())
	}
	if k.Owed() && !k.RekeyPending() {
		t.Fatalf("step %d %s: owed without a pending rekey", step, x.name)
	}
	if k.RekeyPending() != (k.SendGeneration() < k.Local() && !x.fin) {
		t.Fatalf("step %d %s: RekeyPending %v", step, x.name, k.RekeyPending())
	}
	if k.FINSent() != x.fin {
		t.Fatalf("step %d %s: FINSent %v", step, x.name, k.FINSent())
	}
	// Bounded memory: at most MaxGenerations generations kept.
	if len(k.sealers) > MaxGenerations {
		t.Fatalf("step %d %s: %d sending generations kept", step, x.name, len(k.sealers))
	}
}
