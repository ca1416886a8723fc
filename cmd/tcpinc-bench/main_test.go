package main

import (
	"testing"

	"github.com/tcpinc/tcpinc/bench"
)

// TestWithBaseline: -baseline puts a copy of every tcpincd case, built from
// the baseline tree, just before it, and leaves the other cases and the
// shared case table alone.
func TestWithBaseline(t *testing.T) {
	cases, err := parseCases("a,e")
	if err != nil {
		t.Fatal(err)
	}
	got := withBaseline(cases, "/base")
	if len(got) != 3 || got[0].ID != "a" || got[1].ID != "e0" || got[2].ID != "e" {
		t.Fatalf("cases %v", got)
	}
	if got[1].Tcpincd.Repo != "/base" || !got[1].Tcpincd.Engine || got[2].Tcpincd.Repo != "" || bench.CaseEncrypted.Tcpincd.Repo != "" {
		t.Fatalf("baseline %+v, case %+v", got[1].Tcpincd, got[2].Tcpincd)
	}
}
