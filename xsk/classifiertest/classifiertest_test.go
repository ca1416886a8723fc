package classifiertest

import "testing"

// TestTableCoversEveryReason: every verdict counter of the program is the
// expected outcome of some case with the fast path on, on each port, so no
// rule of the program goes untested by the implementations that run the
// table; and each case's verdict is its reason's.
func TestTableCoversEveryReason(t *testing.T) {
	seen := map[Reason]map[Port]bool{}
	delivered := map[Delivery]map[Reason]bool{}
	for _, c := range Cases() {
		if delivered[c.Delivery] == nil {
			delivered[c.Delivery] = map[Reason]bool{}
		}
		delivered[c.Delivery][c.Reason] = true
		if c.Want != c.Reason.Verdict() {
			t.Errorf("%s: verdict %s, but reason %s means %s", c, c.Want, c.Reason, c.Reason.Verdict())
		}
		if c.FastPath[c.Port] == (c.Reason == AllToXSK) {
			t.Errorf("%s: reason %s with the arrival port's fast path %v", c, c.Reason, c.FastPath[c.Port])
		}
		if seen[c.Reason] == nil {
			seen[c.Reason] = map[Port]bool{}
		}
		seen[c.Reason][c.Port] = true
	}
	for _, r := range []Reason{FastPath, NonTCP, SYN, FINRST, UnknownFlow, Truncated, Fragment, IPv6Ext, Unparsed, ICMPError, AllToXSK, Oversize} {
		if !seen[r][Inside] || !seen[r][Outside] {
			t.Errorf("no case of %s on both ports", r)
		}
		for _, d := range Deliveries {
			if !delivered[d][r] {
				t.Errorf("no case of %s with delivery %s", r, d)
			}
		}
	}
}

// TestClassifyMatchesTable: the Go reference gives every case its reason.
func TestClassifyMatchesTable(t *testing.T) {
	for _, c := range Cases() {
		if got := Classify(c.Frame, c.FastPath[c.Port], Lists(c.Listed)); got != c.Reason {
			t.Errorf("%s: Classify says %s, the table %s", c, got, c.Reason)
		}
	}
}
