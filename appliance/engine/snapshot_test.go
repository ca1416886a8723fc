package engine

import (
	"maps"
	"net/netip"
	"testing"
)

// plainFlows adds n records of plain connections to g's engine: SYNs from
// far hosts without TCP-ENO, from 198.51.0.0/16 to addrA.
func plainFlows(t testing.TB, g *gw, n int) {
	t.Helper()
	start := g.e.NumFlows()
	for i := start; i < start+n; i++ {
		far := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 14), byte(i >> 6)}), uint16(1024+i&63))
		g.push(Outside, tcpFrame(far, addrA, 7, 0, synF, 1000, nil, nil))
	}
	if g.e.NumFlows() != start+n {
		t.Fatalf("%d flows, want %d", g.e.NumFlows(), start+n)
	}
}

// A flow listing tested its filter on a FlowInfo built for each flow, which
// escaped to the heap through the filter function: one allocation per flow
// on the worker's goroutine, for every listing, even when no flow matched
// (the status page lists flows every second). FlowPage tests a FlowFilter
// on the records themselves: what it allocates does not grow with the
// number of flows.
func TestFlowPageAllocationsFlat(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, MaxFlows: 8192})
	yes := true
	none := []FlowFilter{
		{Encrypted: &yes},
		{State: "encrypted"},
		{Port: 9},
		{Address: netip.MustParsePrefix("203.0.113.0/24")},
	}
	allocs := func() (worst float64) {
		for _, ff := range none {
			worst = max(worst, testing.AllocsPerRun(5, func() {
				if page, n := g.e.FlowPage(ff, 0, 501); len(page) != 0 || n != 0 {
					t.Fatalf("%+v matched %d", ff, n)
				}
			}))
		}
		return worst
	}
	plainFlows(t, g, 1000)
	small := allocs()
	plainFlows(t, g, 3000)
	if large := allocs(); large != small || large > 1 {
		t.Fatalf("a listing that matches nothing allocates %v times at 1000 flows, %v at 4000", small, large)
	}
}

// BenchmarkFlowPage: one listing of a table of 65,536 flows on the worker's
// goroutine: a filter that matches none, and the status page's first page
// of all (limit 500, one more to know there is a next page).
func BenchmarkFlowPage(b *testing.B) {
	g := newGW(b, Config{TEPs: testTEPs, MaxFlows: 65536})
	plainFlows(b, g, 65536)
	yes := true
	for _, c := range []struct {
		name string
		ff   FlowFilter
	}{{"none", FlowFilter{Encrypted: &yes}}, {"all", FlowFilter{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.e.FlowPage(c.ff, 0, 501)
			}
		})
	}
}

// tcpinc_flows{state} reported only the states that had flows, so the
// series of a state vanished when its last flow went, and an alert such as
// tcpinc_flows{state="encrypted"} == 0 never fired. CountStates reports
// every state, 0 included, from an empty table on.
func TestCountStatesEveryState(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs})
	for _, flows := range []int{0, 3} {
		plainFlows(t, g, flows)
		got := map[string]uint64{}
		g.e.CountStates(got)
		want := map[string]uint64{}
		for _, st := range StateNames() {
			want[st] = 0
		}
		want["plain"] = uint64(g.e.NumFlows())
		if !maps.Equal(got, want) {
			t.Fatalf("%d flows: CountStates %v, want %v", g.e.NumFlows(), got, want)
		}
	}
}
