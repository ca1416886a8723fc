package scenario

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

const (
	isnA    = 1000
	isnB    = 5000
	latency = 5 * time.Millisecond
	init1   = 75 // X25519, one AEAD (docs/protocol.md §8)
	init2   = 74
	ovh     = tcpcrypt.Overhead
)

var (
	enoSYN    = []byte{69, 3, 0x23}    // A offers X25519 (docs/protocol.md §6)
	enoSYNACK = []byte{69, 4, 1, 0x23} // B: b = 1, X25519
	magic1    = []byte{0x15, 0x10, 0x1a, 0x0e}
	magic2    = []byte{0x09, 0x71, 0x05, 0xe0}
)

// fixture is a World with host a (192.0.2.1:40000, ISN 1000) behind G_A and
// host b (198.51.100.2:80, ISN 5000) behind G_B.
type fixture struct {
	w      *World
	a, b   *Host
	ab, ba *flowDir
}

// testConfig offers X25519 with AES-128-GCM only, so that the ENO bytes
// and Init lengths are the ones of docs/protocol.md §6 and docs/protocol.md §16.
func testConfig() engine.Config {
	return engine.Config{
		TEPs:  []tcpcrypt.TEP{tcpcrypt.TEPX25519},
		AEADs: []cryptopool.Suite{cryptopool.AES128GCM},
	}
}

// newFixture builds the world. engines says which sides have an engine;
// mod may change each side's config.
// withPool runs the public-key work on a cryptopool.Pool (World.settle
// waits for it) instead of inline.
func newFixture(t *testing.T, engines [2]bool, withPool bool, mod func(s Side, c *engine.Config)) *fixture {
	t.Helper()
	return newFixtureCache(t, engines, withPool, false, mod)
}

// newFixtureCache is newFixture with, if withCache, a resumption cache per
// engine (tcpcrypt.Cache keyed by the far side's address).
func newFixtureCache(t *testing.T, engines [2]bool, withPool, withCache bool, mod func(s Side, c *engine.Config)) *fixture {
	t.Helper()
	var pool *cryptopool.Pool
	if withPool {
		var err error
		if pool, err = cryptopool.NewPool(cryptopool.PoolConfig{Workers: 1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
	}
	w := &World{T: t, Step: int64(time.Millisecond), Link: &Link{Latency: int64(latency)}, Pool: pool}
	for s := range 2 {
		if !engines[s] {
			continue
		}
		cfg := testConfig()
		if mod != nil {
			mod(Side(s), &cfg)
		}
		var cache *tcpcrypt.Cache[netip.Addr]
		if withCache {
			cache = tcpcrypt.NewCache[netip.Addr](tcpcrypt.CacheConfig{})
		}
		w.AddEngine(Side(s), newEngine(t, cfg, pool, cache))
	}
	a := &Host{Addr: netip.AddrPortFrom(packettest.HostA4, 40000), Peer: netip.AddrPortFrom(packettest.HostB4, 80), ISN: isnA}
	b := &Host{Addr: a.Peer, Peer: a.Addr, ISN: isnB}
	return &fixture{w: w, a: a, b: b}
}

func full(t *testing.T) *fixture { return newFixture(t, [2]bool{true, true}, false, nil) }

// one returns the only element of segs, or fails.
func one(t *testing.T, what string, segs []Seg) Seg {
	t.Helper()
	if len(segs) != 1 {
		for _, s := range segs {
			t.Logf("  %v", s)
		}
		t.Fatalf("%s: %d segments, want 1", what, len(segs))
	}
	return segs[0]
}

// payload concatenates the payloads of segs.
func payload(segs []Seg) []byte {
	var b []byte
	for _, s := range segs {
		b = append(b, s.Payload...)
	}
	return b
}

// withData returns the segments that carry payload.
func withData(segs []Seg) []Seg {
	var out []Seg
	for _, s := range segs {
		if len(s.Payload) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// plainOpts lists a segment's options without NOP/EOL padding and without
// ENO options: what must survive the engine's repacking unchanged.
func plainOpts(o []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(o); {
		switch o[i] {
		case 0:
			return out
		case 1:
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			return append(out, o[i:])
		}
		if o[i] != 69 {
			out = append(out, o[i:i+int(o[i+1])])
		}
		i += int(o[i+1])
	}
	return out
}

func sameOpts(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// withMSS returns plainOpts(o) with the MSS value replaced.
func withMSS(o []byte, mss uint16) [][]byte {
	out := plainOpts(o)
	for i, x := range out {
		if x[0] == 2 && len(x) == 4 {
			y := append([]byte(nil), x...)
			binary.BigEndian.PutUint16(y[2:], mss)
			out[i] = y
		}
	}
	return out
}

func hasENOAck(s Seg) bool {
	for _, o := range s.ENO() {
		if bytes.Equal(o, ENOAck) {
			return true
		}
	}
	return false
}

// handshake runs the whole negotiation and key exchange of a connection from
// a to b with nothing lost, checking every segment on the way
// (docs/protocol.md §6 success case, §7; docs/protocol.md §8). See the steps.
func (f *fixture) handshake(t *testing.T) {
	t.Helper()
	f.stepSYN(t)
	f.stepSYNACK(t)
	f.stepACK(t)
	f.stepInit(t)
	f.established(t)
}

// sentSince returns the segments offered to the link in direction d after
// the first n.
func (f *fixture) sentSince(d Dir, n int) []Seg { return f.w.Link.Sent(d)[n:] }

func (f *fixture) mark(d Dir) int { return len(f.w.Link.Sent(d)) }

// stepSYN: a's SYN leaves G_A with exactly one ENO option 45 03 23 and its
// other options unchanged (ENO-5, ENO-10, docs/protocol.md §7); b gets the SYN
// with its MSS clamped by the frame overhead. It returns the SYN as sent on
// the link.
func (f *fixture) stepSYN(t *testing.T) Seg {
	t.Helper()
	w := f.w
	n := f.mark(AtoB)
	w.Host(SideA, f.a.SYN(LinuxSYNOpts))
	w.Run(0)
	s := one(t, "SYN on the link", f.sentSince(AtoB, n))
	checkSYN(t, s)
	w.Run(latency)
	g := one(t, "SYN at b", w.Take(SideB))
	if !g.Has(packettest.SYN) || g.Seq != isnA || g.MSS() != 1440 {
		t.Fatalf("SYN at b: %v (want MSS 1440)", g)
	}
	return s
}

func checkSYN(t *testing.T, s Seg) {
	t.Helper()
	if !s.Has(packettest.SYN) || s.Has(packettest.ACK) || s.Seq != isnA || len(s.Payload) != 0 {
		t.Fatalf("SYN on the link: %v", s)
	}
	if e := s.ENO(); len(e) != 1 || !bytes.Equal(e[0], enoSYN) {
		t.Fatalf("SYN on the link carries ENO %x, want one option %x", e, enoSYN)
	}
	if !sameOpts(plainOpts(s.Options), plainOpts(LinuxSYNOpts)) {
		t.Fatalf("SYN options changed: %x, host sent %x", s.Options, LinuxSYNOpts)
	}
}

// stepSYNACK: b's SYN-ACK leaves G_B with 45 04 01 23 (ENO-9, ENO-17,
// ENO-24) and its other options unchanged; a gets it without ENO and with
// its MSS clamped.
func (f *fixture) stepSYNACK(t *testing.T) Seg {
	t.Helper()
	w := f.w
	n := f.mark(BtoA)
	w.Host(SideB, f.b.SYNACK(isnA, LinuxSYNOpts))
	w.Run(0)
	s := one(t, "SYN-ACK on the link", f.sentSince(BtoA, n))
	checkSYNACK(t, s)
	w.Run(latency)
	g := one(t, "SYN-ACK at a", w.Take(SideA))
	if !g.Has(packettest.SYN|packettest.ACK) || g.Seq != isnB || g.Ack != isnA+1 || len(g.ENO()) != 0 {
		t.Fatalf("SYN-ACK at a: %v (want no ENO)", g)
	}
	if !sameOpts(plainOpts(g.Options), withMSS(LinuxSYNOpts, 1440)) {
		t.Fatalf("SYN-ACK at a has options %x, want %x with MSS 1440", g.Options, LinuxSYNOpts)
	}
	return s
}

func checkSYNACK(t *testing.T, s Seg) {
	t.Helper()
	if !s.Has(packettest.SYN|packettest.ACK) || s.Seq != isnB || s.Ack != isnA+1 {
		t.Fatalf("SYN-ACK on the link: %v", s)
	}
	if e := s.ENO(); len(e) != 1 || !bytes.Equal(e[0], enoSYNACK) {
		t.Fatalf("SYN-ACK on the link carries ENO %x, want one option %x", e, enoSYNACK)
	}
	if !sameOpts(plainOpts(s.Options), plainOpts(LinuxSYNOpts)) {
		t.Fatalf("SYN-ACK options changed: %x, host sent %x", s.Options, LinuxSYNOpts)
	}
}

// stepACK: a's third segment leaves G_A with 45 02 (ENO-1, ENO-27), then
// G_A sends Init1 (75 bytes at a's ISN+1, PSH on its last segment, TC-8,
// TC-D2), every segment with 45 02 since nothing non-SYN came back yet
// (ENO-26). It returns the segments sent.
func (f *fixture) stepACK(t *testing.T) []Seg {
	t.Helper()
	w := f.w
	n := f.mark(AtoB)
	w.Host(SideA, f.a.ACK(0, isnB+1))
	w.Run(0)
	out := f.sentSince(AtoB, n)
	if len(out) < 2 {
		t.Fatalf("after the third segment the link got %d segments, want the ACK and Init1", len(out))
	}
	// The pure ACK's sequence number may be a's ISN+1 or its translation
	// past Init1 (host offset 0 is wire offset 75): both are in the
	// receiver's window, and a pure ACK occupies no sequence space.
	if s := out[0]; !s.Has(packettest.ACK) || s.Has(packettest.SYN) || (s.Seq != isnA+1 && s.Seq != isnA+1+init1) || s.Ack != isnB+1 || len(s.Payload) != 0 {
		t.Fatalf("third segment on the link: %v", s)
	}
	checkInit(t, "Init1", out[1:], isnA+1, init1, magic1)
	for _, s := range out {
		if !hasENOAck(s) {
			t.Fatalf("segment sent before any non-SYN segment came back lacks 45 02 (ENO-26, ENO-27): %v", s)
		}
	}
	return out
}

// stepInit: b gets the third ACK and no Init bytes; G_B sends Init2 (74
// bytes at b's ISN+1, PSH on its last segment); a gets no Init bytes.
func (f *fixture) stepInit(t *testing.T) {
	t.Helper()
	w := f.w
	n := f.mark(BtoA)
	w.Run(latency)
	for _, s := range w.Take(SideB) {
		if len(s.Payload) != 0 || s.Seq != isnA+1 || s.Ack != isnB+1 || !s.Has(packettest.ACK) || s.Has(packettest.SYN) {
			t.Fatalf("b got %v, want only the third ACK (no Init bytes)", s)
		}
	}
	checkInit(t, "Init2", f.sentSince(BtoA, n), isnB+1, init2, magic2)
	w.Run(3 * latency)
	for _, s := range w.Take(SideA) {
		if len(s.Payload) != 0 {
			t.Fatalf("a got payload during the key exchange: %v", s)
		}
	}
}

// established checks that both engines report the flow encrypted, in roles
// A and B, with one session ID whose byte 0 is 0x23 (ENO-D7, ENO-71,
// ENO-77).
func (f *fixture) established(t *testing.T) {
	t.Helper()
	fa, fb := one2(t, f.w.Flows(SideA)), one2(t, f.w.Flows(SideB))
	if !fa.Encrypted || !fb.Encrypted {
		t.Fatalf("flows not encrypted: A %+v / B %+v", fa, fb)
	}
	if fa.SessionID != fb.SessionID || fa.SessionID[0] != 0x23 {
		t.Fatalf("session IDs %x and %x, want equal with byte 0 = 0x23", fa.SessionID, fb.SessionID)
	}
	if fa.Role != "A" || fb.Role != "B" {
		t.Fatalf("roles %q %q, want A and B", fa.Role, fb.Role)
	}
}

func one2(t *testing.T, fs []engine.FlowInfo) engine.FlowInfo {
	t.Helper()
	if len(fs) != 1 {
		t.Fatalf("%d flows, want 1: %+v", len(fs), fs)
	}
	return fs[0]
}

// checkInit checks that the data segments of segs carry exactly one Init
// message of n bytes starting at seq with the given magic, its message_len
// right, and PSH on the segment with its last byte (TC-7, TC-8).
func checkInit(t *testing.T, what string, segs []Seg, seq uint32, n int, magic []byte) {
	t.Helper()
	st := NewStream(seq - 1)
	var last Seg
	for _, s := range withData(segs) {
		if err := st.AddSeg(s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s.Seq+uint32(len(s.Payload)) == seq+uint32(n) {
			last = s
		}
	}
	m := st.Contiguous()
	if len(m) != n || st.Holes() || !bytes.HasPrefix(m, magic) || binary.BigEndian.Uint32(m[4:]) != uint32(n) {
		t.Fatalf("%s: %d bytes %x, want %d bytes with magic %x and message_len %d", what, len(m), m, n, magic, n)
	}
	if !last.Has(packettest.PSH) {
		t.Fatalf("%s: segment with the last byte lacks PSH (TC-8): %v", what, last)
	}
}

// newEngine builds one engine. pool may be nil: the engine then does its
// public-key work inline, which keeps a run fully deterministic.
func newEngine(t *testing.T, cfg engine.Config, pool *cryptopool.Pool, cache *tcpcrypt.Cache[netip.Addr]) *engine.Engine {
	t.Helper()
	deps := engine.Deps{Pool: pool, Cache: cache}
	if os.Getenv("SCENARIO_LOG") != "" { // engine debug log on stderr, for diagnosis
		deps.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := engine.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := e.Counters().Panics.Load(); n != 0 {
			t.Errorf("the engine recovered %d panics: a bug the recovery hid (SCENARIO_LOG=1 shows the stacks)", n)
		}
	})
	t.Cleanup(func() { drained(t, e) })
	return e
}

// drained: whatever a test did, once nothing more arrives every flow of e
// expires and the memory budget holds nothing. Checked after every
// scenario test that passed.
func drained(t *testing.T, e *engine.Engine) {
	if t.Failed() {
		return
	}
	discard := [2]engine.TxSink{&sink{buf: make([]byte, 0, txFrameSize)}, &sink{buf: make([]byte, 0, txFrameSize)}}
	now := int64(30 * 24 * time.Hour) // past any test's clock
	for i := 0; i < 6*60 && e.NumFlows() > 0; i++ {
		now += int64(time.Minute)
		e.Tick(now, discard)
		for _, s := range discard {
			s.(*sink).out = nil
		}
	}
	if n := e.NumFlows(); n != 0 {
		e.Flows(func(fi engine.FlowInfo) { t.Logf("left: %+v", fi) })
		t.Errorf("%d flows left 6 h after the test", n)
	}
	if used := e.Memory().Used(); used != 0 {
		t.Errorf("%d bytes still charged with no flows", used)
	}
}

// flowDir is one direction of the fixture's connection after the
// handshake: host offsets (what the hosts see) and wire offsets (what the
// link carries: Init message first, 20 bytes more per frame).
type flowDir struct {
	from, to Side
	src, dst *Host
	d        Dir
	hostOff  int // next host offset the sender will use
	wireOff  int // next wire offset of its appliance
	acked    int // host offset the receiver has acknowledged
}

// dirs returns the direction from side s and the opposite one.
func (f *fixture) dirs(s Side) (*flowDir, *flowDir) {
	if f.ab == nil {
		f.ab = &flowDir{from: SideA, to: SideB, src: f.a, dst: f.b, d: AtoB, wireOff: init1}
		f.ba = &flowDir{from: SideB, to: SideA, src: f.b, dst: f.a, d: BtoA, wireOff: init2}
	}
	if s == SideA {
		return f.ab, f.ba
	}
	return f.ba, f.ab
}

// send makes host s send data as one segment (it must fit one frame in one
// wire segment) and checks both ends exactly: on the link one segment at
// the next wire offset, 20 bytes longer, acknowledging the other side's
// wire offset, with no plaintext (ENO-37, TC-5); at the receiving host the
// same bytes at the same host sequence number, acknowledging its own host
// offset.
func (f *fixture) send(t *testing.T, s Side, data []byte) {
	t.Helper()
	d, r := f.dirs(s)
	n := f.mark(d.d)
	f.w.Host(d.from, d.src.Data(d.hostOff, d.dst.Seq(r.hostOff), data))
	f.w.Run(0)
	g := one(t, "data segment on the link", withData(f.sentSince(d.d, n)))
	if g.Seq != d.src.Seq(d.wireOff) || len(g.Payload) != len(data)+ovh || g.Ack != d.dst.Seq(r.wireOff) {
		t.Fatalf("data on the link: %v, want seq %d len %d ack %d", g, d.src.Seq(d.wireOff), len(data)+ovh, d.dst.Seq(r.wireOff))
	}
	if len(data) >= 4 && bytes.Contains(g.Payload, data) {
		t.Fatalf("plaintext on the link (ENO-37): %v", g)
	}
	f.w.Run(latency)
	h := one(t, "data segment at the receiver", withData(f.w.Take(d.to)))
	if h.Seq != d.src.Seq(d.hostOff) || !bytes.Equal(h.Payload, data) || h.Ack != d.dst.Seq(r.hostOff) {
		t.Fatalf("data at the receiver: %v %q, want seq %d %q ack %d", h, h.Payload, d.src.Seq(d.hostOff), data, d.dst.Seq(r.hostOff))
	}
	d.hostOff += len(data)
	d.wireOff += len(data) + ovh
}

// ack makes host s acknowledge everything the other side sent, and checks
// the ACK on the link (wire offset after the last frame) and at the other
// host (its host offset).
func (f *fixture) ack(t *testing.T, s Side) {
	t.Helper()
	me, other := f.dirs(s)
	n := f.mark(me.d)
	f.w.Host(s, me.src.ACK(me.hostOff, other.src.Seq(other.hostOff)))
	f.w.Run(0)
	sent := f.sentSince(me.d, n)
	if len(sent) == 0 {
		t.Fatalf("ACK of everything was not forwarded")
	}
	if g := sent[len(sent)-1]; g.Ack != other.src.Seq(other.wireOff) || g.Seq != me.src.Seq(me.wireOff) {
		t.Fatalf("ACK on the link: %v, want seq %d ack %d", g, me.src.Seq(me.wireOff), other.src.Seq(other.wireOff))
	}
	f.w.Run(latency)
	got := f.w.Take(other.from)
	if len(got) == 0 || got[len(got)-1].Ack != other.src.Seq(other.hostOff) || got[len(got)-1].Seq != me.src.Seq(me.hostOff) {
		t.Fatalf("ACK at the sender: %v, want seq %d ack %d", got, me.src.Seq(me.hostOff), other.src.Seq(other.hostOff))
	}
	other.acked = other.hostOff
}

// exchange sends a few bytes each way and acknowledges them: the connection
// works.
func (f *fixture) exchange(t *testing.T) {
	t.Helper()
	f.send(t, SideA, []byte("ping from a"))
	f.ack(t, SideB)
	f.send(t, SideB, []byte("pong from b"))
	f.ack(t, SideA)
}
