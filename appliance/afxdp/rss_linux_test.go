package afxdp

import (
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// TestOwnerRSSOnVeth: veth reports no RSS, so owners fall back to the keyed
// hash and the reason says why; with one queue there is nothing to decide.
func TestOwnerRSSOnVeth(t *testing.T) {
	netnstest.RequireRoot(t, "a veth pair in a namespace")
	const ns = "afxdp-rss"
	netnstest.New(t, "afxdp-", ns)
	netnstest.Sh(t, "ip", "-n", ns, "link", "add", "p0", "numrxqueues", "2", "numtxqueues", "2", "type", "veth", "peer", "name", "p1", "numrxqueues", "2", "numtxqueues", "2")
	err := netns.Do(ns, func() error {
		if _, err := ReadRSS("p0"); err == nil {
			t.Error("ReadRSS on a veth succeeded: veth has no RSS")
		}
		if r, why := OwnerRSS("p0", "p1", 2); r != nil || !strings.Contains(why, "keyed hash") {
			t.Errorf("OwnerRSS on veth = %v, %q; want nil and the keyed hash", r, why)
		}
		if r, why := OwnerRSS("p0", "p1", 1); r != nil || !strings.Contains(why, "one queue") {
			t.Errorf("OwnerRSS with one queue = %v, %q", r, why)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
