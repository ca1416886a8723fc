package control

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// flowSource is an AdminSource over one worker's engine, not started
// (Inspect runs on the caller's goroutine), with no flows yet.
func flowSource(t testing.TB) *AdminSource {
	t.Helper()
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	src, err := NewAdminSource(newAppliance(t, 1, eng.NewHandler), eng, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// addFlows gives the engine n more records: plain connections from far
// hosts without TCP-ENO (198.51.0.0/16 to a4:80), and every seventh one a
// handshake from the inside host (syn-sent).
func addFlows(t testing.TB, src *AdminSource, n int) {
	t.Helper()
	var tx [2]engine.TxSink = [2]engine.TxSink{&discard{}, &discard{}}
	before, _ := src.FlowCounts()
	err := src.eachEngine(func(_ int, e *engine.Engine) {
		for i := before; i < before+n; i++ {
			far := netip.AddrFrom4([4]byte{198, 51, byte(i >> 14), byte(i >> 6)})
			port := uint16(1024 + i&63)
			if i%7 == 0 {
				e.Handle(0, engine.Inside, seg(a4, far, port, 443, packettest.SYN, 1, 0, nil), tx)
				continue
			}
			e.Handle(0, engine.Outside, seg(far, a4, port, 80, packettest.SYN, 1, 0, nil), tx)
		}
	})
	if total, _ := src.FlowCounts(); err != nil || total != before+n {
		t.Fatalf("%d flows (%v), want %d", total, err, before+n)
	}
}

// A flow listing built an admin.FlowInfo and an engine.FlowInfo for every
// flow to test the filter on, each escaping to the heap: two allocations
// per flow on the worker's goroutine for every listing, 42 ms at 65,536
// flows, even when nothing matched. The engine now tests the filter on its
// records: what a listing allocates does not grow with the flows.
func TestFlowPageAllocationsFlat(t *testing.T) {
	src := flowSource(t)
	yes := true
	none := []admin.FlowFilter{
		{Encrypted: &yes},
		{State: "encrypted"},
		{Port: 9},
		{Address: netip.MustParsePrefix("203.0.113.0/24")},
	}
	allocs := func() (worst float64) {
		for _, ff := range none {
			worst = max(worst, testing.AllocsPerRun(5, func() {
				if page, n := src.FlowPage(ff, 0, 501); len(page) != 0 || n != 0 {
					t.Fatalf("%+v matched %d", ff, n)
				}
			}))
		}
		return worst
	}
	addFlows(t, src, 1000)
	small := allocs()
	addFlows(t, src, 3000)
	if large := allocs(); large != small {
		t.Fatalf("a listing that matches nothing allocates %v times at 1000 flows, %v at 4000", small, large)
	}
}

// TestFlowFilterAsAdmin: the engine's filter on its records selects what
// admin.FlowFilter.Match selects on the flows' snapshots (the fixture's
// filter, and the one the API documents).
func TestFlowFilterAsAdmin(t *testing.T) {
	src := flowSource(t)
	// 300 flows, then more than an engine visits per step
	// (engine.FlowScanStep): a listing in several steps.
	for _, n := range []int{300, 2 * engine.FlowScanStep} {
		testFlowFilterAsAdmin(t, src, n)
	}
}

func testFlowFilterAsAdmin(t *testing.T, src *AdminSource, n int) {
	addFlows(t, src, n)
	var all []admin.FlowInfo
	_ = src.eachEngine(func(_ int, e *engine.Engine) {
		e.Flows(func(f engine.FlowInfo) { all = append(all, flowInfo(f)) })
	})
	slices.SortFunc(all, func(a, b admin.FlowInfo) int { return cmp.Compare(a.ID, b.ID) })
	yes, no := true, false
	for _, ff := range []admin.FlowFilter{
		{},
		{Encrypted: &yes},
		{Encrypted: &no},
		{State: "plain"},
		{State: "syn-sent"},
		{State: "syn-sent", Port: 443},
		{Port: 80},
		{Port: 1030},
		{Address: netip.MustParsePrefix("198.51.0.2/31")},
		{Address: netip.PrefixFrom(a4, 32), Port: 1025},
		{Address: netip.MustParsePrefix("::ffff:198.51.0.0/112").Masked()},
		{Address: netip.MustParsePrefix("2001:db8::/32")},
	} {
		var want []uint64
		for i := range all {
			if ff.Match(&all[i]) {
				want = append(want, all[i].ID)
			}
		}
		page, n := src.FlowPage(ff, 0, len(all))
		var got []uint64
		for _, f := range page {
			got = append(got, f.ID)
		}
		if n != len(want) || !slices.Equal(got, want) {
			t.Errorf("%+v: engine matched %d, listed %d (first difference at %d); admin matches %d", ff, n, len(got), firstDiff(got, want), len(want))
		}
	}
}

// BenchmarkAdminFlowPage: one listing through the AdminSource of 65,536
// flows on one worker, what the worker stalls for: a filter that matches
// none, and the status page's first page of all (limit 500, plus one).
func BenchmarkAdminFlowPage(b *testing.B) {
	src := flowSource(b)
	addFlows(b, src, 65536)
	yes := true
	for _, c := range []struct {
		name string
		ff   admin.FlowFilter
	}{{"none", admin.FlowFilter{Encrypted: &yes}}, {"all", admin.FlowFilter{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				src.FlowPage(c.ff, 0, 501)
			}
		})
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
