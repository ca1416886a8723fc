package engine

import (
	"net/netip"
	"testing"
	"time"
)

// The set is bounded: when full, the released entry closest to its end goes
// first; held entries (live records) are never evicted; expired entries
// are gone.
func TestNegotiatedSetBound(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 3, Now: func() time.Time { return now }})
	a := func(i uint16) flowKey { return flowKey{in: netip.AddrPortFrom(addrA.Addr(), i), out: addrB} }
	set.hold(a(1))
	set.hold(a(2))
	set.hold(a(3))
	set.release(a(2), time.Minute)
	set.hold(a(4)) // full: a(2), released, goes
	if set.has(a(2)) || !set.has(a(1)) || !set.has(a(3)) || !set.has(a(4)) {
		t.Fatal("eviction took the wrong entry")
	}
	if set.hold(a(5)) {
		t.Fatal("a held entry was evicted")
	}
	if set.Overflows() != 1 {
		t.Fatal("overflow not counted")
	}
	set.release(a(1), time.Second)
	now = now.Add(2 * time.Second)
	if set.has(a(1)) {
		t.Fatal("expired entry still in the set")
	}
	if set.Len() != 2 {
		t.Fatalf("len %d", set.Len())
	}
}

// The set's deadlines run on a monotonic clock. They were wall-clock time
// in memory too: a step of the system clock (NTP) past CloseLinger expired
// the tuple of an aborted connection at once, and the inside host, whose
// RST was lost, retransmitted its plaintext onto the wire unchanged.
func TestNegotiatedSetIgnoresWallClockSteps(t *testing.T) {
	wall, mono := time.Unix(1_000_000, 0), int64(1)
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 4,
		Now: func() time.Time { return wall }, Mono: func() int64 { return mono }})
	k := flowKey{in: addrA, out: addrB}
	set.hold(k)
	set.release(k, CloseLinger)
	wall = wall.Add(time.Hour) // the clock steps; no time passes
	if !set.has(k) {
		t.Fatal("a step of the wall clock expired the tuple")
	}
	mono += int64(CloseLinger)
	if set.has(k) {
		t.Fatal("the tuple outlived CloseLinger")
	}
	// Entries given a wall-clock deadline (Add) are read against it once.
	set.Add(addrA, netip.AddrPortFrom(addrB.Addr(), 1), wall.Add(time.Minute))
	set.Add(addrA, netip.AddrPortFrom(addrB.Addr(), 2), wall.Add(-time.Minute))
	if !set.Contains(addrA, netip.AddrPortFrom(addrB.Addr(), 1)) || set.Contains(addrA, netip.AddrPortFrom(addrB.Addr(), 2)) {
		t.Fatal("loaded deadlines misread")
	}
	mono += int64(time.Minute)
	if set.Contains(addrA, netip.AddrPortFrom(addrB.Addr(), 1)) {
		t.Fatal("a loaded entry outlived its deadline")
	}
}

// The store's deadlines are on the set's clock too (tcpincd: CLOCK_BOOTTIME,
// which lasts as long as its pinned map), so the next daemon reads them as
// this one meant them. They were wall-clock time: a step forward (NTP
// after a boot without a real-time clock) before a restart made the next
// daemon drop the entries this one still kept, and pass their hosts'
// plaintext. The next daemon restores each with the time it has left: a
// held one with IdleLinger, none with more (a larger value is on another
// clock: an older daemon's wall-clock deadline).
func TestNegotiatedStoreIgnoresWallClockSteps(t *testing.T) {
	wall, mono := time.Unix(1_000_000, 0), int64(1)
	store := &recordStore{}
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 4, Store: store,
		Now: func() time.Time { return wall }, Mono: func() int64 { return mono }})
	k := flowKey{in: addrA, out: addrB}
	set.hold(k)
	set.release(k, CloseLinger)
	if want := mono + int64(CloseLinger); store.last != want {
		t.Fatalf("store deadline %d, want %d, on the set's clock", store.last, want)
	}
	wall = wall.Add(time.Hour) // the clock steps; the daemon restarts
	mono += int64(time.Minute)
	next := NewNegotiatedSet(NegotiatedConfig{Capacity: 4, Store: store,
		Now: func() time.Time { return wall }, Mono: func() int64 { return mono }})
	next.Restore(addrA, addrB, time.Duration(store.last-mono))
	if !next.Contains(addrA, addrB) {
		t.Fatal("a step of the wall clock before a restart expired the tuple")
	}
	if want := mono + int64(CloseLinger-time.Minute); store.last != want {
		t.Fatalf("restored with deadline %d, want %d", store.last, want)
	}
	held, older := netip.AddrPortFrom(addrB.Addr(), 1), netip.AddrPortFrom(addrB.Addr(), 2)
	next.Restore(addrA, held, 0)
	if want := mono + int64(IdleLinger); store.last != want {
		t.Fatalf("a held entry restored with deadline %d, want IdleLinger's %d", store.last, want)
	}
	next.Restore(addrA, older, time.Duration(wall.Add(time.Minute).UnixNano()-mono))
	if want := mono + int64(IdleLinger); store.last != want {
		t.Fatalf("an older daemon's wall-clock deadline restored as %d, want IdleLinger's %d", store.last, want)
	}
	next.Restore(addrA, netip.AddrPortFrom(addrB.Addr(), 3), -time.Second)
	if next.Len() != 3 {
		t.Fatalf("%d entries, want 3: an expired one was restored", next.Len())
	}
	mono += int64(CloseLinger)
	if next.Contains(addrA, addrB) || !next.Contains(addrA, held) {
		t.Fatal("restored deadlines misread")
	}
}

// recordStore is a TupleStore that keeps the last deadline written.
type recordStore struct{ last int64 }

func (r *recordStore) Put(_, _ netip.AddrPort, deadline int64) error { r.last = deadline; return nil }
func (r *recordStore) Delete(_, _ netip.AddrPort) error              { return nil }

// A connection whose tuple finds the negotiated set full of live entries
// (caps.flows raised at run time past what the set was sized for) went on
// encrypted without being held: after a restart its tuple was unknown and
// its segments passed unchanged, a's plaintext onto the wire. Now the
// appliance whose set is full leaves the connection in plain TCP before
// the key exchange (fallback negotiated_set_full), as either TCP-ENO role.
func TestNegotiatedSetFullStaysPlain(t *testing.T) {
	for _, role := range []string{"A", "B"} {
		t.Run(role, func(t *testing.T) {
			set := NewNegotiatedSet(NegotiatedConfig{Capacity: 2})
			for port := range uint16(2) {
				set.Add(netip.AddrPortFrom(addrA.Addr(), 1+port), addrB, time.Time{}) // held
			}
			ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
			full := &ga
			if role == "B" {
				full = &gb
			}
			*full = newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
			o := toThirdSegment(ga, gb)
			third := one(t, "a's third segment, and no Init1", o)
			if option(third.opts, 69) != nil || len(third.payload) != 0 {
				t.Fatalf("third segment on the wire: %+v", third)
			}
			gb.push(Outside, o[0])
			for _, g := range []*gw{ga, gb} {
				g.e.Flows(func(f FlowInfo) {
					if f.Encrypted || f.State != "plain" {
						t.Fatalf("flow %s, encrypted %v, want plain", f.State, f.Encrypted)
					}
				})
			}
			if n := (*full).e.Counters().Fallbacks[FallbackNegotiatedFull].Load(); n != 1 || set.Overflows() != 1 {
				t.Fatalf("negotiated_set_full fallbacks %d, set overflows %d; want 1 and 1", n, set.Overflows())
			}
			if set.Contains(addrA, addrB) {
				t.Fatal("the plain tuple is in the set")
			}
		})
	}
}

// A set kept full by new connections frees roomBatch entries at a time,
// the released entries nearest their deadlines first, taken from a heap:
// one makeRoom per roomBatch new connections, and none scans the set (with
// 2 x MaxFlows entries and a scan per connection, the connection rate
// collapsed once the set was full; with a scan per capacity/16, every
// worker stalled about 100 ms per scan at 500,000 entries).
func TestNegotiatedSetFullFreesNearestFirst(t *testing.T) {
	const n = 16 * roomBatch
	now := time.Unix(1_000_000, 0)
	a := func(i uint16) flowKey { return flowKey{in: netip.AddrPortFrom(addrA.Addr(), i), out: addrB} }
	full := func() *NegotiatedSet {
		set := NewNegotiatedSet(NegotiatedConfig{Capacity: n, Now: func() time.Time { return now }})
		for i := range uint16(n) {
			set.hold(a(i))
			set.release(a(i), time.Duration(n-i)*time.Minute) // a(n-1) nearest its deadline
		}
		return set
	}
	set := full()
	for i := range uint16(n) {
		if !set.hold(a(10000 + i)) {
			t.Fatalf("hold %d found no room", i)
		}
	}
	if set.scans != n/roomBatch {
		t.Errorf("%d makeRooms for %d new entries in a full set of %d, want %d", set.scans, n, n, n/roomBatch)
	}
	for i := range uint16(n) {
		if set.has(a(i)) {
			t.Errorf("released entry %d still in the set", i)
		}
	}
	// The first makeRoom took the roomBatch nearest deadlines.
	set = full()
	set.hold(a(10000))
	for i := range uint16(n) {
		if set.has(a(i)) != (i < n-roomBatch) {
			t.Fatalf("after one makeRoom: entry %d in the set: %v", i, set.has(a(i)))
		}
	}
	// Entries forgotten, held again or released anew leave stale heap
	// items behind: skipped, and bounded.
	set = full()
	for i := range uint16(n) {
		set.forget(a(i))
		set.hold(a(i))
		set.release(a(i), time.Duration(i+1)*time.Minute) // now a(0) is nearest
	}
	if set.dl.len() > 2*n+roomBatch {
		t.Fatalf("%d heap items for %d entries", set.dl.len(), n)
	}
	set.hold(a(10000))
	for i := range uint16(n) {
		if set.has(a(i)) != (i >= roomBatch) {
			t.Fatalf("after releases anew: entry %d in the set: %v", i, set.has(a(i)))
		}
	}
}

// Clients that reuse a tuple within CloseLinger (a port used again after
// TIME-WAIT) leave a stale heap item per reuse, also in a set that is never
// full: the heap stays bounded (swept a little at each push, never scanned
// whole under the lock: that stalled every worker about 250 ms at 500,000
// entries), and every live entry keeps its item, so a full set still gives
// up the nearest deadlines first.
func TestNegotiatedSetReuseChurnBounded(t *testing.T) {
	const n = 1024
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: n})
	k := func(i int) flowKey { return flowKey{in: netip.AddrPortFrom(addrA.Addr(), uint16(i)), out: addrB} }
	for round := range 50 {
		for i := range n / 2 {
			set.forget(k(i)) // a new connection on the tuple
			set.hold(k(i))
			set.release(k(i), time.Duration(round*n+i+1)*time.Second)
		}
		if l := set.dl.len(); l > n+n/2+sweepBatch {
			t.Fatalf("round %d: %d heap items for %d entries", round, l, set.Len())
		}
	}
	live := 0
	for _, it := range set.dl.items {
		if d, ok := set.m[it.k]; ok && d == it.d {
			live++
		}
	}
	if live != set.Len() {
		t.Fatalf("%d live heap items for %d released entries", live, set.Len())
	}
}

// Tuples reused oldest first in a full set leave their stale items at the
// heap's top, where makeRoom would pop them all at once under the lock
// (about 170 ms at 524,288 entries, a review found): each push pops the
// stale items off the top, so the next makeRoom finds a live one at once.
func TestNegotiatedSetReuseKeepsTopLive(t *testing.T) {
	const n = 4096
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: n})
	k := func(i int) flowKey { return flowKey{in: netip.AddrPortFrom(addrA.Addr(), uint16(i)), out: addrB} }
	for i := range n {
		set.hold(k(i))
		set.release(k(i), time.Duration(i+1)*time.Second)
	}
	for i := range n / 2 { // reused in the order first used: oldest deadlines first
		set.forget(k(i))
		set.hold(k(i))
		set.release(k(i), CloseLinger+time.Duration(i)*time.Second)
	}
	if top := set.dl.items[0]; !set.liveItem(top.k, top.d) {
		t.Fatal("a stale item at the heap's top after the reuses")
	}
	before := set.dl.len()
	if !set.hold(flowKey{in: addrA, out: netip.MustParseAddrPort("192.0.2.7:443")}) {
		t.Fatal("no room in a full set of released entries")
	}
	if popped := before - set.dl.len(); popped > roomBatch+sweepBatch {
		t.Fatalf("one makeRoom popped %d items", popped)
	}
}

// BenchmarkNegotiatedSetFullHold: a hold in a set kept full by new
// connections (the released entries given up as it goes), at a daemon's
// size (2 queues x 65,536 flows x 2).
func BenchmarkNegotiatedSetFullHold(b *testing.B) {
	const n = 2 * 2 * 65536
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: n})
	k := func(i int) flowKey {
		return flowKey{in: netip.AddrPortFrom(addrA.Addr(), uint16(i)), out: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 24), byte(i >> 16)}), 443)}
	}
	for i := range n {
		set.hold(k(i))
		set.release(k(i), CloseLinger)
	}
	b.ResetTimer()
	for i := range b.N {
		set.hold(k(n + i))
		set.release(k(n+i), CloseLinger)
	}
}

// An aborted encrypted connection's tuple stays in the set for CloseLinger
// (late segments are reset), then goes (the tuple is plain to whoever
// reuses it without a SYN the engine saw).
func TestAbortedTupleLingers(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 16, Now: func() time.Time { return now }})
	pr := handshakeOn(t, newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set}), newGW(t, Config{TEPs: testTEPs}))
	h := newHosts()
	pr.toB(pr.aSends(&h, []byte("x"), pshF))
	// a resets its connection: the record goes, the tuple lingers.
	pr.ga.push(Inside, tcpFrame(addrA, addrB, h.aNext, h.bNext, rstF|ackF, 0, nil, nil))
	if pr.ga.e.NumFlows() != 0 || !set.Contains(addrA, addrB) {
		t.Fatalf("after the RST: %d flows, in set %v", pr.ga.e.NumFlows(), set.Contains(addrA, addrB))
	}
	now = now.Add(CloseLinger + time.Second)
	if set.Contains(addrA, addrB) {
		t.Fatal("the tuple outlived CloseLinger")
	}
}

// The set is shared by the workers' engines: concurrent use is safe (run
// with -race).
func TestNegotiatedSetConcurrent(t *testing.T) {
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 64})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				k := flowKey{in: netip.AddrPortFrom(addrA.Addr(), uint16(i%100)), out: netip.AddrPortFrom(addrB.Addr(), uint16(w))}
				switch i % 4 {
				case 0:
					set.hold(k)
				case 1:
					set.release(k, time.Millisecond)
				case 2:
					set.has(k)
				case 3:
					set.forget(k)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if n := set.Len(); n > 64 {
		t.Fatalf("%d entries in a set of 64", n)
	}
}

// Expired entries were removed only when their tuple was looked up again
// or the set filled: 30 days after the last connection a soak's set still
// counted hundreds of them (the negotiated_set_entries gauge, the pinned
// map). The engines' sweep now takes them out, nearest first, a batch at
// a time, and the store with them; held and unexpired entries stay.
func TestNegotiatedSetExpiresWhileIdle(t *testing.T) {
	mono := int64(1)
	store := &countStore{}
	set := NewNegotiatedSet(NegotiatedConfig{Capacity: 4096, Store: store, Mono: func() int64 { return mono }})
	g := newGWDeps(t, Config{TEPs: testTEPs}, Deps{Negotiated: set})
	const n = 3 * roomBatch
	for i := range uint16(n) {
		k := flowKey{in: netip.AddrPortFrom(addrA.Addr(), 1000+i), out: addrB}
		set.hold(k)
		set.release(k, CloseLinger)
	}
	late := flowKey{in: netip.AddrPortFrom(addrA.Addr(), 9), out: addrB}
	held := flowKey{in: netip.AddrPortFrom(addrA.Addr(), 10), out: addrB}
	set.hold(late)
	set.release(late, IdleLinger)
	set.hold(held)
	g.tick(int64(time.Second))
	if set.Len() != n+2 {
		t.Fatalf("%d entries before any deadline, want %d", set.Len(), n+2)
	}
	mono += int64(CloseLinger)
	g.tick(sweepEvery)
	if set.Len() != n+2-roomBatch {
		t.Fatalf("after one sweep: %d entries, want %d (a sweep takes out at most %d, under the lock every worker waits for)", set.Len(), n+2-roomBatch, roomBatch)
	}
	for range 2 {
		g.tick(sweepEvery)
	}
	if set.Len() != 2 || store.deletes != n {
		t.Fatalf("after CloseLinger and three sweeps: %d entries (want 2: one lingering, one held), %d deleted from the store (want %d)", set.Len(), store.deletes, n)
	}
	if !set.has(late) || !set.has(held) {
		t.Fatal("an unexpired or held entry went")
	}
	set.release(held, CloseLinger) // its record went (drained checks no set given)
}

type countStore struct{ deletes int }

func (c *countStore) Put(_, _ netip.AddrPort, _ int64) error { return nil }
func (c *countStore) Delete(_, _ netip.AddrPort) error       { c.deletes++; return nil }
