package tcpcrypt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tcpinc/tcpinc/cryptopool"
)

// peer is one end of a connection in the rekey tests: its KeyRing and the
// stream offset of its next frame.
type peer struct {
	name   string
	keys   *KeyRing
	offset uint64
}

func newPeers(t testing.TB, mk0 []byte, s cryptopool.Suite) (a, b *peer) {
	t.Helper()
	ka, err := NewKeyRing(mk0, s, true)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := NewKeyRing(mk0, s, false)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{"A", ka, 75}, &peer{"B", kb, 74}
}

// send asks p's KeyRing for the next frame's key and seals data.
func (p *peer) send(t testing.TB, data string, fin bool) (frame []byte, off uint64, k SendKey) {
	t.Helper()
	k, err := p.keys.Send(len(data), fin)
	if err != nil {
		t.Fatalf("%s.Send(%q): %v", p.name, data, err)
	}
	off = p.offset
	frame = sealFrame(t, k.Sealer, FrameHeader{Rekey: k.Rekey, FIN: fin}, []byte(data), off)
	p.offset += uint64(len(frame))
	return frame, off, k
}

// deliver opens a frame at p and checks its data.
func (p *peer) deliver(t testing.TB, frame []byte, off uint64, want string) FrameHeader {
	t.Helper()
	h, data, err := p.keys.Open(bytes.Clone(frame), off)
	if err != nil {
		t.Fatalf("%s.Open at %d: %v", p.name, off, err)
	}
	if string(data) != want {
		t.Fatalf("%s got %q, want %q", p.name, data, want)
	}
	return h
}

func gens(t testing.TB, p *peer, local, remote, sendGen uint64) {
	t.Helper()
	if p.keys.Local() != local || p.keys.Remote() != remote || p.keys.SendGeneration() != sendGen {
		t.Fatalf("%s: local %d remote %d send %d, want %d %d %d", p.name,
			p.keys.Local(), p.keys.Remote(), p.keys.SendGeneration(), local, remote, sendGen)
	}
}

// TestRekeyAnswered: A rekeys, B answers at once with an empty rekey frame
// (TC-53..TC-57). A's rekey frame is sealed with k_ab[1] of docs/protocol.md §16.
func TestRekeyAnswered(t *testing.T) {
	mk0 := MasterKey(workedExampleSS0(t), nil)
	a, b := newPeers(t, mk0, cryptopool.AES128GCM)

	f, off, k := a.send(t, "hello", false)
	if hex.EncodeToString(f) != "0000166794b1565fafcfab8afcab3f0c0960a9627c71abeeaa" || k.Rekey || k.Generation != 0 {
		t.Fatalf("first frame %x gen %d rekey %v", f, k.Generation, k.Rekey)
	}
	b.deliver(t, f, off, "hello")

	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	if !a.keys.RekeyPending() || a.keys.Owed() {
		t.Fatal("A: StartRekey must make a rekey pending, not owed")
	}
	gens(t, a, 1, 0, 0)
	f, off, k = a.send(t, "new key", false)
	if !k.Rekey || k.Generation != 1 || f[0] != 0x01 {
		t.Fatalf("A's first frame under generation 1: rekey %v gen %d control %#x (TC-54)", k.Rekey, k.Generation, f[0])
	}
	// That frame is sealed with k_ab[1] = 1e83…fd | 9356…cc (docs/protocol.md §16).
	kab1 := TrafficKey{Suite: cryptopool.AES128GCM, Key: unhex(t, "1e83b95785c9ef5956a6bbfcc976f8fd")}
	copy(kab1.NR[:], unhex(t, "9356c57b381bfa93745160cc"))
	if _, data, err := mustOpener(t, kab1).Open(bytes.Clone(f), off); err != nil || string(data) != "new key" {
		t.Fatalf("k_ab[1] does not open A's rekey frame: %v", err)
	}
	// Every other frame has rekey = 0 (TC-55).
	f2, off2, k2 := a.send(t, "more", false)
	if k2.Rekey || k2.Generation != 1 || f2[0] != 0 {
		t.Fatalf("second frame of generation 1: rekey %v gen %d", k2.Rekey, k2.Generation)
	}

	// B: remote++, decrypt this frame with generation 1, raise local, owe a frame.
	if h := b.deliver(t, f, off, "new key"); !h.Rekey {
		t.Fatal("rekey bit lost")
	}
	gens(t, b, 1, 1, 0)
	if !b.keys.Owed() {
		t.Fatal("B owes a rekey frame (TC-57)")
	}
	b.deliver(t, f2, off2, "more")
	f, off, k = b.send(t, "", false)
	if !k.Rekey || k.Generation != 1 || b.keys.Owed() {
		t.Fatalf("B's answer: rekey %v gen %d, still owed %v", k.Rekey, k.Generation, b.keys.Owed())
	}
	gens(t, b, 1, 1, 1)
	a.deliver(t, f, off, "")
	gens(t, a, 1, 1, 1)
	if a.keys.Owed() || a.keys.RekeyPending() {
		t.Fatal("A owes nothing after B's answer")
	}
}

// TestRekeyBothAtOnce: both hosts start a rekey at the same moment; each
// ends with local = remote = 1 and neither owes an answer (docs/protocol.md §14).
func TestRekeyBothAtOnce(t *testing.T) {
	a, b := newPeers(t, seq(1, 32), cryptopool.ChaCha20Poly1305)
	for _, p := range []*peer{a, b} {
		if err := p.keys.StartRekey(); err != nil {
			t.Fatal(err)
		}
	}
	fa, offA, _ := a.send(t, "", false)
	fb, offB, _ := b.send(t, "", false)
	a.deliver(t, fb, offB, "")
	b.deliver(t, fa, offA, "")
	for _, p := range []*peer{a, b} {
		gens(t, p, 1, 1, 1)
		if p.keys.Owed() || p.keys.RekeyPending() {
			t.Fatalf("%s owes a frame", p.name)
		}
	}
	// And data still flows under generation 1.
	f, off, k := a.send(t, "after", false)
	if k.Rekey || k.Generation != 1 {
		t.Fatalf("rekey %v gen %d", k.Rekey, k.Generation)
	}
	b.deliver(t, f, off, "after")
}

// TestSecondEmptyRekeyRefused: at most one empty rekey frame while the
// remote generation is below the local one (TC-58); a data frame may still
// start the next rekey, and once the peer answers an empty one is fine again.
func TestSecondEmptyRekeyRefused(t *testing.T) {
	a, b := newPeers(t, seq(2, 32), cryptopool.AES256GCM)
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	if err := a.keys.StartRekey(); !errors.Is(err, ErrRekeyPending) {
		t.Fatalf("StartRekey while one is pending: %v", err)
	}
	if !a.keys.EmptyRekeyAllowed() {
		t.Fatal("EmptyRekeyAllowed before any empty rekey frame: false")
	}
	f1, off1, _ := a.send(t, "", false) // empty rekey frame, generation 1
	if a.keys.EmptyRekeyAllowed() {
		t.Fatal("EmptyRekeyAllowed with an empty rekey frame unanswered: true")
	}
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.keys.Send(0, false); !errors.Is(err, ErrEmptyRekey) {
		t.Fatalf("second empty rekey: err = %v, want ErrEmptyRekey", err)
	}
	gens(t, a, 2, 0, 1) // refused: nothing changed
	f2, off2, k := a.send(t, "data", false)
	if !k.Rekey || k.Generation != 2 {
		t.Fatalf("data frame: rekey %v gen %d", k.Rekey, k.Generation)
	}
	// B answers both, one frame per generation.
	b.deliver(t, f1, off1, "")
	b.deliver(t, f2, off2, "data")
	gens(t, b, 2, 2, 0)
	var answers [][]byte
	var offs []uint64
	for b.keys.Owed() {
		f, off, _ := b.send(t, "", false)
		answers, offs = append(answers, f), append(offs, off)
	}
	if len(answers) != 2 {
		t.Fatalf("B sent %d answers, want 2 (one per raised generation)", len(answers))
	}
	if !b.keys.EmptyRekeyAllowed() {
		t.Fatal("EmptyRekeyAllowed at B, which sent no empty rekey of its own: false")
	}
	for i := range answers {
		a.deliver(t, answers[i], offs[i], "")
	}
	gens(t, a, 2, 2, 2)
	// Answered: a new empty rekey is allowed again.
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	if _, _, k := a.send(t, "", false); !k.Rekey || k.Generation != 3 {
		t.Fatalf("empty rekey after the answer: rekey %v gen %d", k.Rekey, k.Generation)
	}
}

// TestForgedRekeyBit: the rekey bit is in the AD, so a flipped bit fails
// authentication and leaves the generations alone.
func TestForgedRekeyBit(t *testing.T) {
	a, b := newPeers(t, seq(3, 32), cryptopool.AES128GCM)
	f, off, _ := a.send(t, "x", false)
	f[0] |= controlRekey
	if _, _, err := b.keys.Open(f, off); !errors.Is(err, ErrFrameAuth) {
		t.Fatalf("forged rekey bit: %v", err)
	}
	gens(t, b, 0, 0, 0)
	if b.keys.Owed() {
		t.Fatal("a forged rekey frame made B owe an answer")
	}
	// A frame with rekey = 1 sealed under the old generation fails too.
	k, _ := a.keys.Send(1, false)
	bad := sealFrame(t, k.Sealer, FrameHeader{Rekey: true}, []byte("y"), a.offset)
	if _, _, err := b.keys.Open(bad, a.offset); !errors.Is(err, ErrFrameAuth) {
		t.Fatalf("rekey = 1 under generation 0: %v", err)
	}
	gens(t, b, 0, 0, 0)
}

// TestRetransmitOldGeneration: a retransmission goes out under the key of
// its first transmission (TC-59), giving the same bytes (TC-45); Forget
// drops old keys (TC-60).
func TestRetransmitOldGeneration(t *testing.T) {
	a, b := newPeers(t, seq(4, 32), cryptopool.AES128GCM)
	orig, off, k := a.send(t, "first", false)
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	a.send(t, "second", false)
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	a.send(t, "third", false)
	gens(t, a, 2, 0, 2)

	s, err := a.keys.Sealer(k.Generation)
	if err != nil {
		t.Fatal(err)
	}
	again := sealFrame(t, s, FrameHeader{}, []byte("first"), off)
	if !bytes.Equal(again, orig) {
		t.Fatalf("retransmission differs:\n%x\n%x", again, orig)
	}
	b.deliver(t, again, off, "first")
	if _, err := a.keys.Sealer(3); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Sealer(3) before generation 3 was used: %v", err)
	}

	a.keys.Forget(2)
	for g := uint64(0); g < 2; g++ {
		if _, err := a.keys.Sealer(g); !errors.Is(err, ErrNoKey) {
			t.Fatalf("Sealer(%d) after Forget(2): %v", g, err)
		}
	}
	if k.Sealer.aead != nil || k.Sealer.nr != ([12]byte{}) {
		t.Fatal("forgotten key material is not cleared")
	}
	if _, err := a.keys.Sealer(2); err != nil {
		t.Fatalf("current generation forgotten: %v", err)
	}
	a.keys.Forget(100) // never drops the current generation
	if _, err := a.keys.Sealer(2); err != nil {
		t.Fatalf("Forget(100) dropped the current generation: %v", err)
	}
	a.send(t, "still sending", false)
}

// TestNoAnswerAfterFIN: a host that has sent its FINp frame raises its
// local generation on a peer's rekey but owes no frame (TC-57), and sends
// nothing more (TC-49).
func TestNoAnswerAfterFIN(t *testing.T) {
	a, b := newPeers(t, seq(5, 32), cryptopool.AES128GCM)
	fin, finOff, _ := b.send(t, "bye", true)
	if !b.keys.FINSent() {
		t.Fatal("FINSent false after the FINp frame")
	}
	if err := a.keys.StartRekey(); err != nil {
		t.Fatal(err)
	}
	f, off, _ := a.send(t, "", false)
	b.deliver(t, f, off, "")
	gens(t, b, 1, 1, 0)
	if b.keys.Owed() || b.keys.RekeyPending() {
		t.Fatal("B owes a rekey frame after its FIN")
	}
	if _, err := b.keys.Send(0, false); !errors.Is(err, ErrFINSent) {
		t.Fatalf("Send after FINp: %v", err)
	}
	if err := b.keys.StartRekey(); !errors.Is(err, ErrFINSent) {
		t.Fatalf("StartRekey after FINp: %v", err)
	}
	if h := a.deliver(t, fin, finOff, "bye"); !h.FIN {
		t.Fatal("FINp lost")
	}
}

// TestTwoPeerRekeysBeforeAnswer: two rekey frames arrive before this host
// sends anything; it owes one rekey frame per generation, because the peer
// moves its remote generation by one per rekey frame.
func TestTwoPeerRekeysBeforeAnswer(t *testing.T) {
	a, b := newPeers(t, seq(6, 32), cryptopool.AES128GCM)
	var fs [][]byte
	var offs []uint64
	for i := 0; i < 2; i++ {
		if err := a.keys.StartRekey(); err != nil {
			t.Fatal(err)
		}
		f, off, _ := a.send(t, "d", false)
		fs, offs = append(fs, f), append(offs, off)
	}
	for i := range fs {
		b.deliver(t, fs[i], offs[i], "d")
	}
	gens(t, b, 2, 2, 0)
	for want := uint64(1); want <= 2; want++ {
		if !b.keys.Owed() {
			t.Fatalf("B does not owe generation %d", want)
		}
		f, off, k := b.send(t, "", false)
		if !k.Rekey || k.Generation != want {
			t.Fatalf("answer %d: rekey %v gen %d", want, k.Rekey, k.Generation)
		}
		a.deliver(t, f, off, "")
	}
	if b.keys.Owed() {
		t.Fatal("B still owes")
	}
	gens(t, a, 2, 2, 2)
}

// TestDirection: the host that was B sends with k_ba (TC-38).
func TestDirection(t *testing.T) {
	mk0, _, kba := testKeys(t, cryptopool.AES128GCM)
	_, b := newPeers(t, mk0, cryptopool.AES128GCM)
	f, off, _ := b.send(t, "from B", false)
	if _, data, err := mustOpener(t, kba).Open(f, off); err != nil || string(data) != "from B" {
		t.Fatalf("B's frame does not open with k_ba[0]: %v", err)
	}
}

// TestGenerationCap: keys of at most MaxGenerations generations are kept;
// with Forget a connection can rekey without end.
func TestGenerationCap(t *testing.T) {
	a, b := newPeers(t, seq(7, 32), cryptopool.AES128GCM)
	var err error
	for i := 0; i < 2*MaxGenerations && err == nil; i++ {
		if err = a.keys.StartRekey(); err == nil {
			f, off, _ := a.send(t, "x", false)
			b.deliver(t, f, off, "x")
			for b.keys.Owed() {
				f, off, _ := b.send(t, "", false)
				a.deliver(t, f, off, "")
			}
		}
	}
	if !errors.Is(err, ErrTooManyGenerations) {
		t.Fatalf("no cap: err = %v", err)
	}
	a.keys.Forget(a.keys.SendGeneration())
	b.keys.Forget(b.keys.SendGeneration())
	for i := 0; i < 3*MaxGenerations; i++ {
		if err := a.keys.StartRekey(); err != nil {
			t.Fatalf("rekey %d with Forget: %v", i, err)
		}
		f, off, _ := a.send(t, "x", false)
		b.deliver(t, f, off, "x")
		f, off, _ = b.send(t, "", false)
		a.deliver(t, f, off, "")
		a.keys.Forget(a.keys.SendGeneration())
		b.keys.Forget(b.keys.SendGeneration())
	}
	if n := len(a.keys.sealers); n > 2 {
		t.Fatalf("A keeps %d generations", n)
	}
}

func TestWipe(t *testing.T) {
	a, _ := newPeers(t, seq(8, 32), cryptopool.AES128GCM)
	_, _, k := a.send(t, "x", false)
	a.keys.Wipe()
	if k.Sealer.aead != nil || a.keys.smk != nil || a.keys.rmk != nil || a.keys.open != nil {
		t.Fatal("keys survive Wipe")
	}
	if _, err := a.keys.Send(1, false); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Send after Wipe: %v", err)
	}
	if _, _, err := a.keys.Open(make([]byte, 20), 0); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Open after Wipe: %v", err)
	}
}

func TestNewKeyRingErrors(t *testing.T) {
	if _, err := NewKeyRing(make([]byte, 31), cryptopool.AES128GCM, true); err == nil {
		t.Error("31-byte master key accepted")
	}
	if _, err := NewKeyRing(make([]byte, 32), cryptopool.Suite(0x99), true); err == nil {
		t.Error("unknown suite accepted")
	}
}

// TestRekeysAfterFIN: RFC 8548 §3.8 lets either side go on rekeying while
// the other, having sent FINp, only receives. B sends FINp; A then starts
// many times more rekeys than MaxGenerations, each on a data frame. B
// follows every one (remote and local generation move, nothing owed), and
// A, forgetting what B acknowledged, never runs out of room: neither side's
// memory grows with generations only one of them uses.
func TestRekeysAfterFIN(t *testing.T) {
	a, b := newPeers(t, seq(9, 32), cryptopool.AES128GCM)
	fin, finOff, _ := b.send(t, "bye", true)
	a.deliver(t, fin, finOff, "bye")
	for i := 1; i <= 4*MaxGenerations; i++ {
		if err := a.keys.StartRekey(); err != nil {
			t.Fatalf("A's rekey %d after B's FINp: %v", i, err)
		}
		f, off, k := a.send(t, "data", false)
		if !k.Rekey || k.Generation != uint64(i) {
			t.Fatalf("frame %d: rekey %v generation %d", i, k.Rekey, k.Generation)
		}
		b.deliver(t, f, off, "data")
		gens(t, b, uint64(i), uint64(i), 0)
		if b.keys.Owed() {
			t.Fatalf("B owes a rekey frame after its FINp (rekey %d)", i)
		}
		a.keys.Forget(a.keys.SendGeneration()) // B acknowledged it
		if n := len(a.keys.sealers); n > 2 {
			t.Fatalf("A keeps %d sending keys", n)
		}
	}
	if s, err := b.keys.Sealer(0); err != nil || s == nil {
		t.Fatalf("B lost the key of its FINp frame: %v", err) // still needed to retransmit it
	}
}

// TestFollowRekeysAfterOwnFIN is the receiving half alone, against frames
// sealed straight from the master-key chain (TC-D4), not by a second
// KeyRing: after B's FINp, A rekeys on every frame, many times more often
// than MaxGenerations. B opens each under the next generation, owes no
// answer (RFC 8548 §3.8), and keeps its FINp frame's key for retransmission.
func TestFollowRekeysAfterOwnFIN(t *testing.T) {
	mk := seq(10, 32)
	_, b := newPeers(t, mk, cryptopool.AES128GCM)
	b.send(t, "bye", true)
	off := uint64(75)
	mk = bytes.Clone(mk)
	for i := 1; i <= 4*MaxGenerations; i++ {
		mk = NextMasterKey(mk)
		kab, _ := TrafficKeys(mk, cryptopool.AES128GCM)
		f := sealFrame(t, mustSealer(t, kab), FrameHeader{Rekey: true}, []byte("data"), off)
		b.deliver(t, f, off, "data")
		off += uint64(len(f))
		gens(t, b, uint64(i), uint64(i), 0)
		if b.keys.Owed() {
			t.Fatalf("B owes a rekey frame after its FINp (rekey %d)", i)
		}
	}
	if s, err := b.keys.Sealer(0); err != nil || s == nil {
		t.Fatalf("B lost the key of its FINp frame: %v", err)
	}
}

// TestKeyRingReservedControlBits: the receiver ignores the control byte's
// reserved cres bits (RFC 8548 §4.2; TC-67) when it picks the generation
// to open with, not only when it reports the header: 0xfe is rekey = 0
// (generation 0), 0x81 is rekey = 1 (generation 1). Through the KeyRing
// and through a FrameDecoder over the same stream.
func TestKeyRingReservedControlBits(t *testing.T) {
	mk0 := seq(5, SecretLen)
	kab0, _ := TrafficKeys(mk0, cryptopool.AES128GCM)
	kab1, _ := TrafficKeys(NextMasterKey(mk0), cryptopool.AES128GCM)
	const start = 75
	noRekey := sealRaw(kab0, 0xfe, []byte{0xfc, 'x'}, start)
	rekey := sealRaw(kab1, 0x81, []byte{0x00, 'y'}, start+uint64(len(noRekey)))
	stream := append(bytes.Clone(noRekey), rekey...)

	_, b := newPeers(t, mk0, cryptopool.AES128GCM)
	if h := b.deliver(t, noRekey, start, "x"); h != (FrameHeader{}) {
		t.Errorf("control 0xfe flags 0xfc: header %+v, want none set", h)
	}
	gens(t, b, 0, 0, 0)
	if h := b.deliver(t, rekey, start+uint64(len(noRekey)), "y"); h != (FrameHeader{Rekey: true}) {
		t.Errorf("control 0x81: header %+v, want rekey only", h)
	}
	gens(t, b, 1, 1, 0)
	if !b.keys.Owed() {
		t.Error("a rekey frame with reserved bits set owes no answer")
	}

	_, b = newPeers(t, mk0, cryptopool.AES128GCM)
	d := NewFrameDecoder(b.keys, start)
	if err := d.Feed(stream); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"x", "y"} {
		f, ok, err := d.Next()
		if err != nil || !ok || string(f.Data) != want || f.Rekey != (i == 1) {
			t.Fatalf("decoder frame %d: %+v ok %v err %v, want %q", i, f, ok, err, want)
		}
	}
	gens(t, b, 1, 1, 0)
}

// TestKeyRingMasterKey: the key log's mk[g] comes from the master keys the
// KeyRing holds, derived forward from the nearest one at or below g: every
// generation from the older chain's up to Local, none below both chains
// (those keys are gone, TC-60), none above Local, none after Wipe.
func TestKeyRingMasterKey(t *testing.T) {
	mk := [][]byte{MasterKey(workedExampleSS0(t), nil)}
	for len(mk) < 3 {
		mk = append(mk, NextMasterKey(mk[len(mk)-1]))
	}
	a, b := newPeers(t, mk[0], cryptopool.AES128GCM)
	has := func(p *peer, g uint64, want []byte) {
		t.Helper()
		got, err := p.keys.MasterKey(g)
		if want == nil {
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("%s: MasterKey(%d) = %x, %v; want ErrNoKey", p.name, g, got, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: MasterKey(%d) = %x, %v; want mk[%d]", p.name, g, got, err, g)
		}
	}
	// A rekeys twice; B opens both frames and owes two answers. A's
	// sending chain is at mk[2], its receiving one at mk[0]; B's the
	// other way round.
	for range 2 {
		if err := a.keys.StartRekey(); err != nil {
			t.Fatal(err)
		}
		f, off, _ := a.send(t, "x", false)
		b.deliver(t, f, off, "x")
	}
	for _, p := range []*peer{a, b} {
		for g := range uint64(3) {
			has(p, g, mk[g])
		}
		has(p, 3, nil) // above Local
	}
	// B answers both: its sending chain moves to mk[2] too, and nothing
	// it holds gives mk[0] or mk[1] any more.
	for range 2 {
		b.send(t, "", false)
	}
	has(b, 0, nil)
	has(b, 1, nil)
	has(b, 2, mk[2])
	b.keys.Wipe()
	has(b, 2, nil)
}
