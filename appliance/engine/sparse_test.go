package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// sparseConn is a connection through G_A whose far side R places bytes past
// a hole it never fills.
type sparseConn struct {
	a    netip.AddrPort
	wire segv // a's first frame on the wire: its ACK is R's next expected byte
	f    *flow
}

// openSparse opens the connection from a's port through ga and gb.
func openSparse(t *testing.T, ga, gb *gw, port uint16) sparseConn {
	t.Helper()
	a := netip.AddrPortFrom(addrA.Addr(), port)
	_, wire := connectAddrs(t, ga, gb, a, addrB)
	f := ga.e.flows[flowKey{in: a, out: addrB}]
	if f == nil || f.state != stOpen {
		t.Fatalf("connection from port %d not encrypted", port)
	}
	return sparseConn{a: a, wire: wire, f: f}
}

// byteAt has R send G_A one byte at d bytes past the next one it expects.
func (c sparseConn) byteAt(ga *gw, d int64) {
	ga.push(Outside, tcpFrame(addrB, c.a, c.wire.ack+uint32(d), c.wire.seq, ackF, 1000, nil, []byte{0}))
}

// atEdge has R send G_A one byte at the furthest offset of the window G_A
// gave it: what a TCP receiver accepts too.
func (c sparseConn) atEdge(ga *gw) {
	d := &c.f.rcv
	c.byteAt(ga, d.toldEdge-1-d.rcvW)
}

// A far side's byte far past a hole must not cost the span up to it. G_A
// took R's bytes up to the re-delivery cap (4 MiB) and a frame past what b
// acknowledged, whatever window it had given R, and the reassembly reserved
// the whole span from the next expected byte to the byte's end: a one-byte
// segment 4 MiB ahead held 4 MiB of the budget, and 15 of them in a 64 MiB
// budget left every new connection plain. Now a byte past every edge R was
// told is dropped as TCP drops it (RFC 9293 §3.10.7.4), and one at the edge
// costs at most the window.
func TestSparseByteReservesNoSpan(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	var conns []sparseConn
	for i := range 20 {
		c := openSparse(t, ga, gb, uint16(41000+i))
		conns = append(conns, c)
		used, oow := m.Used(), ga.e.Counters().Drops[DropOutOfWindow].Load()
		c.byteAt(ga, 4<<20-100)
		if m.Used() != used || c.f.rcv.held.n != 0 {
			t.Fatalf("connection %d: a byte 4 MiB ahead took %d bytes of the budget (window %d)", i, m.Used()-used, c.f.rcv.toldEdge-c.f.rcv.rcvW)
		}
		if ga.e.Counters().Drops[DropOutOfWindow].Load() != oow+1 {
			t.Fatalf("connection %d: the byte past the window was not dropped as out of window", i)
		}
		win := c.f.rcv.toldEdge - c.f.rcv.rcvW
		c.atEdge(ga)
		if c.f.rcv.held.n != 1 || m.Used()-used > 2*win {
			t.Fatalf("connection %d: the byte at the window's edge: %d ranges held, %d bytes of the budget for a window of %d", i, c.f.rcv.held.n, m.Used()-used, win)
		}
	}
	if n := ga.e.Counters().Fallbacks[FallbackMemory].Load(); n != 0 {
		t.Fatalf("%d connections left plain for memory", n)
	}
	expireAll(t, m, ga)
}

// R's bytes held past a hole kept the flow's buffers live (bufsLive), so
// the release after bufIdle of silence never came: one byte at the edge of
// each window held the reassembly until the connection's idle timeout
// (2 h 15 min). Now they go after bufIdle of silence, and the reassembly
// with them; R sends them again if they are still wanted.
func TestHeldBytesGoWhenQuiet(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	var conns []sparseConn
	for i := range 20 {
		c := openSparse(t, ga, gb, uint16(41000+i))
		c.atEdge(ga)
		conns = append(conns, c)
	}
	used := m.Used()
	// Quiet for bufIdle: the held bytes go, and the reassembly with them.
	ga.now += int64(bufIdle)
	for range 3 {
		ga.tick(int64(10 * time.Millisecond))
	}
	for i, c := range conns {
		if c.f.rcv.held.n != 0 || c.f.rcv.reasm.b != nil {
			t.Fatalf("connection %d after bufIdle of silence: %d ranges held in %d bytes", i, c.f.rcv.held.n, len(c.f.rcv.reasm.b))
		}
	}
	if m.Used() >= used || ga.e.Counters().HeldPruned.Load() != 20 {
		t.Fatalf("after bufIdle of silence: budget %d -> %d, held_pruned %d", used, m.Used(), ga.e.Counters().HeldPruned.Load())
	}
	expireAll(t, m, ga)
	if len(ga.e.ahead) != 0 {
		t.Fatalf("%d removed flows still listed as holding bytes past a hole", len(ga.e.ahead))
	}
}

// fillHeld opens n connections through ga and gb, then has each far side
// place a byte at its window's edge until the budget refuses one: what a
// far side that wants the budget sends, one packet per connection.
func fillHeld(t *testing.T, ga, gb *gw, m *Memory, n int) {
	t.Helper()
	var conns []sparseConn
	for i := range n {
		conns = append(conns, openSparse(t, ga, gb, uint16(41000+i)))
	}
	for _, c := range conns {
		c.atEdge(ga)
		if ga.e.Counters().Drops[DropReasmFull].Load() > 0 {
			break
		}
	}
	if ga.e.Counters().Drops[DropReasmFull].Load() == 0 || m.Used() <= m.Limit()*7/8 {
		t.Fatalf("held bytes took %d of %d bytes, none refused", m.Used(), m.Limit())
	}
}

// legitSends has a on the established connection from port 39999 send n
// bytes at host offset off (after connectAddrs's "data") and returns how
// many frames G_A sent R.
func legitSends(ga *gw, off, n int) int {
	_, out := ga.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 39999), addrB, isnA+1+4+uint32(off), isnB+1, ackF|pshF, 502, tsOpt(uint32(10+off), 2), make([]byte, n)))
	return len(out)
}

// A far side fills the budget with bytes past holes, but those are what
// goes first under memory pressure (Linux prunes its out-of-order queue the
// same way; R sends them again): a new connection still gets TCP-ENO, and
// an established flow's host data still goes, all of it, the first time.
// Before, the first left every new connection plain (FallbackMemory) and
// the established flow's segment was dropped as store_full on every
// retransmission, for as long as the far side kept its bytes there.
func TestHeldBytesGoFirst(t *testing.T) {
	const limit = 8 << 20
	m := NewMemory(limit)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	connectAddrs(t, ga, gb, netip.AddrPortFrom(addrA.Addr(), 39999), addrB)
	fillHeld(t, ga, gb, m, 140)
	c := ga.e.Counters()
	for i := range 40 {
		if n := legitSends(ga, i*1400, 1400); n != 1 {
			t.Fatalf("segment %d of the established flow: %d frames out, store_full %d, memory %d of %d", i, n, c.Drops[DropStoreFull].Load(), m.Used(), limit)
		}
	}
	if c.HeldPruned.Load() == 0 || c.Drops[DropStoreFull].Load() != 0 {
		t.Fatalf("held_pruned %d, store_full %d", c.HeldPruned.Load(), c.Drops[DropStoreFull].Load())
	}
	if m.Used() <= limit*7/8 {
		t.Fatalf("used %d: the established flow's store took the budget below the admission limit", m.Used())
	}
	_, o := ga.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 39998), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	if s := one(t, "SYN", o); option(s.opts, 69) == nil || c.Fallbacks[FallbackMemory].Load() != 0 {
		t.Fatalf("a new connection stayed plain with the budget full of held bytes (memory fallbacks %d)", c.Fallbacks[FallbackMemory].Load())
	}
	if m.Used() > limit {
		t.Fatalf("used %d over the limit %d", m.Used(), limit)
	}
	expireAll(t, m, ga)
}

// Pruning drops only the bytes past a hole: R's bytes from the next
// expected one on that wait for room in the delivery ring stay, whole, and
// reach b once it acknowledges what it has. The pruned ones come again
// when R resends them.
func TestPruneKeepsBytesWaitingForRoom(t *testing.T) {
	pr := handshakeDeliverCap(t, 4096)
	h := newHosts()
	var want, got []byte
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 1000) }
	for i := range 8 {
		want = append(want, chunk(i)...)
		atB, _ := pr.toB(pr.aSends(&h, chunk(i), pshF))
		for _, s := range atB {
			if s.seq == isnA+1+uint32(len(got)) { // not a nudge (dupack.go)
				got = append(got, s.payload...)
			}
		}
	}
	lost := pr.aSends(&h, chunk(8), pshF)
	past := pr.aSends(&h, chunk(9), pshF)
	pr.toB(past)
	f := pr.gb.onlyFlow()
	d := &f.rcv
	if !d.roomWait || d.held.n != 2 || d.held.rs()[0].s != d.rcvW {
		t.Fatalf("want bytes waiting for room at rcvW and a range past a hole: roomWait %v, ranges %v", d.roomWait, d.held.rs())
	}
	waiting := d.held.rs()[0]
	pr.gb.e.mem.squeeze(1 << 30) // another engine found the budget full
	pr.gb.tick(1)
	if d.held.n != 1 || d.held.rs()[0] != waiting || pr.gb.e.Counters().HeldPruned.Load() != 1 {
		t.Fatalf("after the prune: ranges %v, want only %v; held_pruned %d", d.held.rs(), waiting, pr.gb.e.Counters().HeldPruned.Load())
	}
	for round := 0; len(got) < len(want) && round < 8; round++ {
		got = append(got, pr.bAcksHas(&h, len(got))...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d of %d bytes (or wrong ones) after the prune", len(got), len(want))
	}
	want = append(want, chunk(8)...)
	want = append(want, chunk(9)...)
	for _, w := range [][]segv{lost, past} {
		atB, _ := pr.toB(w) // R resends
		for _, s := range atB {
			if s.seq == isnA+1+uint32(len(got)) { // not a nudge (dupack.go)
				got = append(got, s.payload...)
			}
		}
	}
	for round := 0; len(got) < len(want) && round < 8; round++ {
		got = append(got, pr.bAcksHas(&h, len(got))...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("b got %d of %d bytes (or wrong ones) after R resent what was pruned", len(got), len(want))
	}
}

// The bytes held on another worker's engine go too: the engine whose flow
// the budget refused finds none of its own and asks, and the others prune
// at their next Tick. Until then the flow still gets one frame of its
// host's data out whenever it has none in flight, whatever the budget says
// (here others hold it to the byte): the delivery ring keeps one frame the
// same way. Before, every segment of the flow was refused.
func TestSqueezeReachesOtherEngines(t *testing.T) {
	const limit = 8 << 20
	m := NewMemory(limit)
	cfg := Config{TEPs: testTEPs}
	ga, gb := newGWMem(t, cfg, m), newGW(t, cfg)   // the established flow's worker
	ga2, gb2 := newGWMem(t, cfg, m), newGW(t, cfg) // the far side's connections'
	a := netip.AddrPortFrom(addrA.Addr(), 39999)
	_, wire := connectAddrs(t, ga, gb, a, addrB)
	// b gets a's "data" and acknowledges it: nothing of a's is in flight.
	gb.push(Outside, wire.frame())
	_, back := gb.push(Inside, tcpFrame(addrB, a, isnB+1, isnA+1+4, ackF, 509, tsOpt(5, 3), nil))
	for _, f := range back {
		ga.push(Outside, f)
	}
	if n := ga.e.flows[flowKey{in: a, out: addrB}].enc.frames.n; n != 0 {
		t.Fatalf("%d frames of a's in flight", n)
	}
	fillHeld(t, ga2, gb2, m, 140)
	others := limit - m.Used()
	m.force(others)
	c := ga.e.Counters()
	if n := legitSends(ga, 0, 1400); n != 1 {
		t.Fatalf("the established flow's first segment: %d frames out, store_full %d", n, c.Drops[DropStoreFull].Load())
	}
	if n := legitSends(ga, 1400, 1400); n != 0 || c.Drops[DropStoreFull].Load() != 1 {
		t.Fatalf("a second segment with the first in flight and the budget full: %d frames out, store_full %d", n, c.Drops[DropStoreFull].Load())
	}
	if ga2.e.Counters().HeldPruned.Load() != 0 {
		t.Fatal("the other engine pruned before its Tick")
	}
	ga2.tick(int64(10 * time.Millisecond))
	if ga2.e.Counters().HeldPruned.Load() == 0 {
		t.Fatal("the other engine pruned nothing at its Tick")
	}
	if n := legitSends(ga, 1400, 1400); n != 1 {
		t.Fatalf("the second segment again after the other engine pruned: %d frames out, store_full %d", n, c.Drops[DropStoreFull].Load())
	}
	m.give(others)
	expireAll(t, m, ga, ga2)
}

// A squeeze asks for what the engine that made it lacked, and the others
// drop only that much, oldest first: not every flow's bytes past a hole.
// Before, each squeeze (one per SYN refused at the admission bound, which
// anyone outside can send) made every engine drop everything it held, so
// every flow in SACK recovery on every worker reneged on all it held (a
// review of the merged pruning: 120 of 120 flows for one SYN).
func TestSqueezeTakesWhatWasLacking(t *testing.T) {
	const limit = 8 << 20
	m, ga, ga2 := heldElsewhere(t, limit)
	listed := len(ga2.e.ahead)
	before := m.Used()
	need := int64(100 << 10)
	if ga.e.pruneHeld(need, true) {
		t.Fatal("the engine with nothing held freed something itself")
	}
	ga2.tick(int64(10 * time.Millisecond))
	pruned := ga2.e.Counters().HeldPruned.Load()
	if pruned == 0 || before-m.Used() < need {
		t.Fatalf("the other engine pruned %d flows, %d bytes; want at least %d bytes", pruned, before-m.Used(), need)
	}
	if pruned > uint64(listed)/4 {
		t.Fatalf("one squeeze for %d bytes pruned %d of %d flows", need, pruned, listed)
	}
	ga2.tick(int64(10 * time.Millisecond)) // no new squeeze: nothing more
	if n := ga2.e.Counters().HeldPruned.Load(); n != pruned {
		t.Fatalf("pruned %d more at the next Tick with no squeeze", n-pruned)
	}
	expireAll(t, m, ga, ga2)
}

// A SYN refused at the admission bound prunes this engine's held bytes
// only: it does not squeeze the others, which would prune at their next
// Tick, after the SYN went on plain, and with live flows holding the
// budget past the bound every SYN from outside would have every flow in
// SACK recovery on every worker renege (a review of the squeeze: 5 of 5
// flows pruned for one SYN, which went plain all the same).
func TestAdmissionDoesNotSqueeze(t *testing.T) {
	const limit = 8 << 20
	m, ga, ga2 := heldElsewhere(t, limit)
	others := limit - m.Used()
	m.force(others) // live flows hold the rest
	_, o := ga.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 39990), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	one(t, "SYN", o)
	ga2.tick(int64(10 * time.Millisecond))
	if n := ga2.e.Counters().HeldPruned.Load(); n != 0 {
		t.Fatalf("one SYN at another worker pruned %d flows here", n)
	}
	m.give(others)
	expireAll(t, m, ga, ga2)
}

// heldElsewhere is two workers' engines sharing a budget of limit bytes:
// ga holds nothing, ga2 far sides' bytes past holes up to the admission
// bound (fillHeld).
func heldElsewhere(t *testing.T, limit int64) (m *Memory, ga, ga2 *gw) {
	t.Helper()
	m = NewMemory(limit)
	cfg := Config{TEPs: testTEPs}
	ga = newGWMem(t, cfg, m)
	ga2, gb2 := newGWMem(t, cfg, m), newGW(t, cfg)
	fillHeld(t, ga2, gb2, m, 140)
	return m, ga, ga2
}

// A far side that leaves more than 16 ranges past holes on every
// connection (one byte past each of 20 holes) gets each flow a block of
// ranges out of its record (spans.go), charged to the budget, and no more
// blocks than the budget holds: past it a flow's 17th range is dropped as
// reassembly_full, as every 17th was before. After bufIdle of silence the
// held bytes go (prune.go), the blocks with them, back to the budget and
// to the engine's list, from which the next flow that needs one takes it.
func TestHeldRangeBlocksWithinBudget(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	t.Cleanup(ga.noPanics)
	const conns, ranges, fit = 10, 20, 3
	var cs []sparseConn
	for i := range conns {
		c := openSparse(t, ga, gb, uint16(41000+i))
		for k := range inlineSpans {
			c.byteAt(ga, int64(2*k+1))
		}
		cs = append(cs, c)
	}
	base := m.Used()
	m.SetLimit(base + fit*spanBlockSize) // room for fit blocks
	for _, c := range cs {
		for k := inlineSpans; k < ranges; k++ {
			c.byteAt(ga, int64(2*k+1))
		}
	}
	cnt := ga.e.Counters()
	widened := 0
	for i, c := range cs {
		want := inlineSpans
		if c.f.rcv.held.big != nil {
			widened++
			want = ranges
		}
		if n := c.f.rcv.held.len(); n != want {
			t.Fatalf("connection %d: %d ranges held, want %d", i, n, want)
		}
	}
	full := cnt.Drops[DropReasmFull].Load()
	if widened != fit || cnt.HeldWidened.Load() != fit || m.Used() != base+fit*spanBlockSize || full != (conns-fit)*(ranges-inlineSpans) {
		t.Fatalf("%d flows with a block (held_widened %d), budget %d above the rest, want %d; reassembly_full %d",
			widened, cnt.HeldWidened.Load(), m.Used()-base, fit*spanBlockSize, full)
	}
	m.SetLimit(64 << 20)
	ga.now += int64(bufIdle)
	for range 3 {
		ga.tick(int64(10 * time.Millisecond))
	}
	for i, c := range cs {
		if c.f.rcv.held.len() != 0 || c.f.rcv.held.big != nil {
			t.Fatalf("connection %d after bufIdle of silence: %d ranges, block kept %v", i, c.f.rcv.held.len(), c.f.rcv.held.big != nil)
		}
	}
	if ga.e.spanFreeN != fit || m.Used() >= base {
		t.Fatalf("after bufIdle of silence: %d blocks for reuse, want %d; budget %d, before the blocks %d", ga.e.spanFreeN, fit, m.Used(), base)
	}
	for k := range ranges {
		cs[0].byteAt(ga, int64(2*k+1))
	}
	if cs[0].f.rcv.held.len() != ranges || ga.e.spanFreeN != fit-1 || cnt.HeldWidened.Load() != fit+1 {
		t.Fatalf("%d ranges held again, %d blocks left for reuse, held_widened %d", cs[0].f.rcv.held.len(), ga.e.spanFreeN, cnt.HeldWidened.Load())
	}
	// Memory pressure: the held bytes go first (prune.go), the block with
	// them, and it counts toward what the prune gave back.
	used := m.Used()
	freed := ga.e.dropListed(1)
	if cs[0].f.rcv.held.big != nil || freed < spanBlockSize || m.Used() != used-freed || ga.e.spanFreeN != fit {
		t.Fatalf("pruned: block kept %v, %d bytes freed (budget %d -> %d), %d blocks for reuse",
			cs[0].f.rcv.held.big != nil, freed, used, m.Used(), ga.e.spanFreeN)
	}
	expireAll(t, m, ga)
}

// A flow that ends while its reassembly's ranges are in a block (spans.go)
// gives the block back to the budget with the rest of its memory: here R's
// RST ends one of two such flows, and the other ends at its timeout
// (expireAll checks that nothing is left charged).
func TestHeldRangeBlockGoesWithFlowEnd(t *testing.T) {
	m := NewMemory(64 << 20)
	ga, gb := newGWMem(t, Config{TEPs: testTEPs}, m), newGW(t, Config{TEPs: testTEPs})
	t.Cleanup(ga.noPanics)
	c, c2 := openSparse(t, ga, gb, 41000), openSparse(t, ga, gb, 41001)
	for k := range inlineSpans {
		c.byteAt(ga, int64(2*k+1))
		c2.byteAt(ga, int64(2*k+1))
	}
	// What c is charged before its block, the block being all that the
	// ranges past inlineSpans add.
	before := recordCost + c.f.bufBytes()
	for k := inlineSpans; k < 20; k++ {
		c.byteAt(ga, int64(2*k+1))
		c2.byteAt(ga, int64(2*k+1))
	}
	if c.f.rcv.held.big == nil || c2.f.rcv.held.big == nil || c.f.rcv.held.len() != 20 || c2.f.rcv.held.len() != 20 {
		t.Fatalf("%d and %d ranges held, blocks %v %v", c.f.rcv.held.len(), c2.f.rcv.held.len(), c.f.rcv.held.big != nil, c2.f.rcv.held.big != nil)
	}
	used, cost := m.Used(), recordCost+c.f.bufBytes()
	ga.push(Outside, tcpFrame(addrB, c.a, c.wire.ack, c.wire.seq, rstF|ackF, 0, nil, nil))
	if ga.e.flows[flowKey{in: c.a, out: addrB}] != nil {
		t.Fatal("R's RST did not end the flow")
	}
	if freed := used - m.Used(); freed != cost || cost != before+spanBlockSize {
		t.Fatalf("R's RST gave back %d bytes, want %d (%d before the block, block %d)", freed, before+spanBlockSize, before, spanBlockSize)
	}
	expireAll(t, m, ga) // c2 ends holding its block
}
