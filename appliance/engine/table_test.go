package engine

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"testing"
)

// A table full of finished connections (records of connections left in
// plain TCP stay 5 minutes, closed ones 30 s) refused new connections: their
// SYN went on untracked and their later segments were reset as strays, so a
// busy appliance broke every connection after about 65k (found by the
// connection-rate bench). A full table now gives up a finished record.
func TestFullTableReclaimsFinishedRecords(t *testing.T) {
	g := newGW(t, Config{TEPs: testTEPs, MaxFlows: 2})
	for i := range 2 { // two plain connections from far hosts without TCP-ENO
		far := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(5000+i))
		g.push(Outside, tcpFrame(far, addrA, 7, 0, synF, 1000, nil, nil))
	}
	if g.e.NumFlows() != 2 {
		t.Fatalf("%d flows, want 2 plain records", g.e.NumFlows())
	}
	_, out := g.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	s := one(t, "SYN on the wire", out)
	if option(s.opts, 69) == nil {
		t.Fatalf("new connection at a full table of finished records got no TCP-ENO: %+v", s)
	}
	c := g.e.Counters()
	if c.FlowsReclaimed.Load() != 1 || c.FlowsCapped.Load() != 0 || g.e.NumFlows() != 2 {
		t.Fatalf("reclaimed %d, capped %d, flows %d", c.FlowsReclaimed.Load(), c.FlowsCapped.Load(), g.e.NumFlows())
	}
	// Handshakes are bounded apart (MaxEmbryonic, here MaxFlows/2 = 1):
	// each new SYN evicts the oldest handshake rather than being capped
	// (flood.go).
	g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 40001), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), 40002), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	if c.FlowsCapped.Load() != 0 || c.EmbryonicEvicted.Load() != 2 {
		t.Fatalf("capped %d, evicted %d; want each SYN to evict the older handshake", c.FlowsCapped.Load(), c.EmbryonicEvicted.Load())
	}
}

// The admin API's flows by state and its one-flow detail took a snapshot of
// every flow on the worker's goroutine (transcripts, stream state), for
// every status request and metrics scrape. CountStates counts without
// copying (no allocation) and Flow copies only the flow asked for; both
// agree with the full snapshot.
func TestCountStatesAndFlowByID(t *testing.T) {
	pr := handshake(t) // one encrypted flow
	g := pr.ga
	for i := range 3 { // and handshakes
		g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), uint16(41000+i)), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	}
	want := map[string]uint64{}
	var ids []FlowInfo
	g.e.Flows(func(f FlowInfo) { want[f.State]++; ids = append(ids, f) })
	got := map[string]uint64{}
	g.e.CountStates(got)
	if got["encrypted"] != 1 || got["syn-sent"] != 3 || len(want) != 2 {
		t.Fatalf("CountStates %v, snapshots %v", got, want)
	}
	// Every state, those without flows at 0 (TestCountStatesEveryState).
	if len(got) != len(StateNames()) {
		t.Fatalf("CountStates %v, want the %d states %v", got, len(StateNames()), StateNames())
	}
	for _, st := range StateNames() {
		if got[st] != want[st] {
			t.Fatalf("CountStates %v, snapshots %v", got, want)
		}
	}
	if a := testing.AllocsPerRun(10, func() { g.e.CountStates(got) }); a != 0 {
		t.Fatalf("CountStates allocates %v times", a)
	}
	for _, w := range ids {
		f, ok := g.e.Flow(w.ID)
		if !ok || f.Inside != w.Inside || f.State != w.State {
			t.Fatalf("Flow(%d) = %+v, %v; want %+v", w.ID, f, ok, w)
		}
	}
	if _, ok := g.e.Flow(1 << 40); ok {
		t.Fatal("a flow for an unknown ID")
	}
}

// The flow listing's page is chosen on the worker (the admin API copied
// every flow whole for each listing, and read every one for the status
// page's two counts): FlowPage returns the matching flows with the lowest
// IDs above the cursor, sorted, the same as a filter over every snapshot,
// and CountFlows the totals.
func TestFlowPageAndCounts(t *testing.T) {
	pr := handshake(t) // one encrypted flow
	g := pr.ga
	for i := range 200 {
		g.push(Inside, tcpFrame(netip.AddrPortFrom(addrA.Addr(), uint16(41000+i)), addrB, isnA, 0, synF, 64240, synOpts(1460, 1), nil))
	}
	var all []FlowInfo
	g.e.Flows(func(f FlowInfo) { all = append(all, f) })
	slices.SortFunc(all, func(a, b FlowInfo) int { return cmp.Compare(a.ID, b.ID) })
	yes, no := true, false
	for _, c := range []struct {
		name   string
		filter FlowFilter
		match  func(*FlowInfo) bool // the same filter on the snapshot
		after  uint64
		limit  int
	}{
		{"all, first page", FlowFilter{}, func(*FlowInfo) bool { return true }, 0, 10},
		{"all, past a cursor", FlowFilter{}, func(*FlowInfo) bool { return true }, all[57].ID, 25},
		{"handshakes", FlowFilter{State: "syn-sent"}, func(f *FlowInfo) bool { return f.State == "syn-sent" }, all[20].ID, 30},
		{"a port", FlowFilter{Port: 41007}, func(f *FlowInfo) bool { return f.Inside.Port() == 41007 || f.Outside.Port() == 41007 }, 0, 30},
		{"a prefix and a port", FlowFilter{Address: netip.PrefixFrom(addrB.Addr(), addrB.Addr().BitLen()), Port: addrB.Port()},
			func(f *FlowInfo) bool { return f.Outside == addrB }, 0, 1000},
		{"an inside prefix", FlowFilter{Address: netip.MustParsePrefix("192.0.2.0/24")}, func(*FlowInfo) bool { return true }, 0, 10},
		{"another prefix", FlowFilter{Address: netip.MustParsePrefix("203.0.113.0/24")}, func(*FlowInfo) bool { return false }, 0, 10},
		{"encrypted", FlowFilter{Encrypted: &yes}, func(f *FlowInfo) bool { return f.Encrypted }, 0, 5},
		{"not encrypted", FlowFilter{Encrypted: &no}, func(f *FlowInfo) bool { return !f.Encrypted }, 0, 300},
		{"beyond the last", FlowFilter{}, func(*FlowInfo) bool { return true }, all[len(all)-1].ID, 5},
	} {
		var want []FlowInfo
		matched := 0
		for _, f := range all {
			if c.match(&f) {
				matched++
				if f.ID > c.after && len(want) < c.limit {
					want = append(want, f)
				}
			}
		}
		page, n := g.e.FlowPage(c.filter, c.after, c.limit)
		if n != matched || len(page) != len(want) {
			t.Fatalf("%s: %d flows, %d matched; want %d, %d", c.name, len(page), n, len(want), matched)
		}
		for i := range want {
			if page[i].ID != want[i].ID || page[i].State != want[i].State || page[i].Encrypted != want[i].Encrypted || !bytes.Equal(page[i].Transcript, want[i].Transcript) {
				t.Fatalf("%s: flow %d is %+v, want %+v", c.name, i, page[i], want[i])
			}
		}
	}
	if total, enc := g.e.CountFlows(); total != len(all) || enc != 1 {
		t.Fatalf("CountFlows %d, %d; want %d, 1", total, enc, len(all))
	}
}
