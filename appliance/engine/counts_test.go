package engine

import (
	"maps"
	"net/netip"
	"testing"
)

// scanCounts is the reference the admin API's counts are held to: a scan
// of every listed flow, as CountStates and CountFlows did before recount.
func scanCounts(e *Engine) (byState map[string]uint64, total, encrypted int) {
	var n [len(stateNames)]uint64
	for _, f := range e.list {
		n[f.shownState()]++
		if f.sess != nil {
			encrypted++
		}
	}
	byState = map[string]uint64{}
	for st := 1; st < len(n); st++ {
		byState[stateNames[st]] = n[st]
	}
	return byState, len(e.list), encrypted
}

// checkCounts fails the test unless the counts recount keeps equal a
// scan's, and Flow finds every listed flow by its ID (byID). gw.push and
// gw.tick call it after every step, so every engine test and fuzz run
// (FuzzScript's scripts included) checks it.
func checkCounts(t testing.TB, e *Engine) {
	t.Helper()
	want, wantTotal, wantEnc := scanCounts(e)
	got := map[string]uint64{}
	e.CountStates(got)
	if !maps.Equal(got, want) {
		t.Fatalf("CountStates %v, a scan finds %v", got, want)
	}
	if total, enc := e.CountFlows(); total != wantTotal || enc != wantEnc {
		t.Fatalf("CountFlows %d flows, %d encrypted; a scan finds %d, %d", total, enc, wantTotal, wantEnc)
	}
	if len(e.byID) != len(e.list) {
		t.Fatalf("byID holds %d IDs for %d listed flows", len(e.byID), len(e.list))
	}
	for _, f := range e.list {
		if fi, ok := e.Flow(f.id); !ok || fi.ID != f.id {
			t.Fatalf("Flow(%d) of a listed flow: %v, %v", f.id, fi.ID, ok)
		}
	}
}

// TestFlowByID: Flow finds a live flow by its ID, through every move of
// the list (a removal moves the last flow into the hole), and never one
// that was removed; IDs are never reused.
func TestFlowByID(t *testing.T) {
	ga, gb := newGW(t, Config{TEPs: testTEPs}), newGW(t, Config{TEPs: testTEPs})
	handshakeOn(t, ga, gb)
	e := ga.e
	seen := map[uint64]bool{e.list[0].id: true}
	var removed []uint64
	for i := 0; i < 40; i++ {
		// A SYN from another inside port: a new record at the list's end.
		in := netip.AddrPortFrom(addrA.Addr(), uint16(41000+i))
		ga.push(Inside, tcpFrame(in, addrB, isnA, 0, synF, 65535, synOpts(1460, 1), nil))
		f := e.list[len(e.list)-1]
		if f.key.in != in || seen[f.id] {
			t.Fatalf("ID %d given twice", f.id)
		}
		seen[f.id] = true
		if i%3 == 1 { // from the middle of the list: the last flow moves
			g := e.list[len(e.list)/2]
			removed = append(removed, g.id)
			e.remove(g)
		}
		checkCounts(t, e)
	}
	for _, id := range removed {
		if _, ok := e.Flow(id); ok {
			t.Errorf("Flow(%d) found a removed flow", id)
		}
	}
	for _, f := range e.list {
		if fi, ok := e.Flow(f.id); !ok || fi.Inside != f.key.in {
			t.Errorf("Flow(%d): %v %v, want the flow of %v", f.id, fi.Inside, ok, f.key.in)
		}
	}
	if _, ok := e.Flow(e.list[len(e.list)-1].id + 1000); ok {
		t.Errorf("Flow found an ID never given")
	}
	for len(e.list) > 0 {
		e.remove(e.list[0])
	}
	checkCounts(t, e)
	for id := range seen {
		if _, ok := e.Flow(id); ok {
			t.Errorf("Flow(%d) found a flow of an empty table", id)
		}
	}
}
