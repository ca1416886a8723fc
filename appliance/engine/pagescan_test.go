package engine

import (
	"net/netip"
	"slices"
	"testing"
)

// TestFlowPageStepsUnderChurn: a paged listing (FlowPageStep) visits at
// most FlowScanStep flows per step, and while flows come and go between
// its steps it lists each flow it began with once, exactly: every one
// still there at the end, and every one removed after its slice was
// visited; none removed before, none made meanwhile (a record put back,
// as reinstate does, included). Matched counts the same flows, and with
// no filter is the table's size at the end.
func TestFlowPageStepsUnderChurn(t *testing.T) {
	for _, filtered := range []bool{true, false} {
		n := 3*FlowScanStep + 100
		g := openClones(t, n)
		g.undrained = true // the clones share one connection's buffers and keys
		e := g.e
		var ff FlowFilter
		if filtered {
			ff.Port = e.list[0].key.out.Port() // every flow's, but tested on each
		}
		s := FlowScan{Filter: ff, Limit: 1 << 20}
		want := map[uint64]bool{}
		for _, f := range e.list {
			want[f.id] = true
		}
		nextID := uint64(n + 1)
		var gone *flow // a visited flow removed, put back
		steps := 0
		for {
			before := e.scanAt
			done := e.FlowPageStep(&s)
			steps++
			if !done && e.scanAt-before > FlowScanStep {
				t.Fatalf("a step visited %d flows, want at most %d", e.scanAt-before, FlowScanStep)
			}
			if done {
				break
			}
			// Remove a visited flow (the last flow, not visited, would move
			// into its hole), then one not visited yet.
			for _, i := range []int{e.scanAt / 2, e.scanAt + (len(e.list)-e.scanAt)/2} {
				f := e.list[i]
				if i >= e.scanAt {
					delete(want, f.id)
				} else {
					gone = f
				}
				e.detach(f)
			}
			// A new flow, and a visited one put back: neither is visited.
			src := e.list[0]
			f := new(flow)
			*f = *src
			f.id, f.key.in = nextID, netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, byte(nextID >> 8), byte(nextID)}), 1)
			nextID++
			e.flows[f.key] = f
			e.listAdd(f)
			e.flows[gone.key] = gone
			e.listAdd(gone)
			checkCounts(t, e)
		}
		if steps < n/FlowScanStep+1 {
			t.Errorf("%d steps for %d flows", steps, n)
		}
		got := make([]uint64, len(s.Page))
		for i, fi := range s.Page {
			got[i] = fi.ID
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("page not in ascending ID order, or an ID twice")
		}
		var wantIDs []uint64
		for id := range want {
			wantIDs = append(wantIDs, id)
		}
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("filtered %v: listed %d flows, want %d (first difference at %d)", filtered, len(got), len(wantIDs), firstDiff(got, wantIDs))
		}
		switch {
		case filtered && s.Matched != len(wantIDs):
			t.Errorf("filtered: matched %d, want %d (the flows listed)", s.Matched, len(wantIDs))
		case !filtered && s.Matched != len(e.list):
			t.Errorf("unfiltered: matched %d, want %d (the table at the end)", s.Matched, len(e.list))
		}
		if e.scan != nil {
			t.Errorf("the engine keeps a finished scan")
		}
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFlowScanAbandoned: a listing whose caller stops stepping is
// forgotten after scanAbandoned sweeps, and starts over if stepped again.
func TestFlowScanAbandoned(t *testing.T) {
	g := openClones(t, FlowScanStep+10)
	g.undrained = true
	s := FlowScan{Limit: 10}
	if g.e.FlowPageStep(&s) {
		t.Fatal("one step did all")
	}
	for range scanAbandoned + 1 {
		g.now += sweepEvery
		g.e.Tick(g.now, g.tx)
	}
	if g.e.scan != nil {
		t.Fatal("an abandoned scan is kept")
	}
	for !g.e.FlowPageStep(&s) {
	}
	if len(s.Page) != 10 || s.Matched != FlowScanStep+10 || s.Page[0].ID != 1 {
		t.Errorf("after a restart: %d flows from ID %d, matched %d", len(s.Page), s.Page[0].ID, s.Matched)
	}
}
