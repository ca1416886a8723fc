package classifiertest

import "testing"

// TestTableCoversEveryReason: every verdict counter of the program is the
// expected outcome of some case with the fast path on, on each port, so no
// rule of the program goes untested by the implementations that run the
// table; and each case's verdict is its reason's.
func TestTableCoversEveryReason(t *testing.T) {
	seen := map[Reason]map[Port]bool{}
	for _, c := range Cases() {
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
	for _, r := range []Reason{FastPath, NonTCP, SYN, FINRST, UnknownFlow, Truncated, Fragment, IPv6Ext, Unparsed, ICMPError, AllToXSK} {
		if !seen[r][Inside] || !seen[r][Outside] {
			t.Errorf("no case of %s on both ports", r)
		}
	}
}
