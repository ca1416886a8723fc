package afpacket

import (
	"net"
	"testing"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// Test helpers for network namespaces. Every namespace a test creates is
// named with the prefix "afpt-" and removed in t.Cleanup, also on failure.

func requireRoot(t testing.TB) { t.Helper(); netnstest.RequireRoot(t, "network namespaces, AF_PACKET") }

// sh runs a command and fails the test with its output on error.
func sh(t testing.TB, args ...string) string { t.Helper(); return netnstest.Sh(t, args...) }

// newNetns creates namespace name and deletes it when the test ends.
func newNetns(t testing.TB, name string) { t.Helper(); netnstest.New(t, "afpt-", name) }

// inNetns runs fn on an OS thread switched into namespace name.
func inNetns(name string, fn func() error) error { return netns.Do(name, fn) }

// openIn opens a socket on interface dev of namespace ns.
func openIn(t testing.TB, ns, dev string, o Options) *Socket {
	t.Helper()
	var s *Socket
	if err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		s, err = Open(ifi.Index, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// vethPair creates a veth pair a (in namespace nsA) <-> b (in nsB), both up.
func vethPair(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	sh(t, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
	sh(t, "ip", "-n", nsA, "link", "set", a, "up")
	sh(t, "ip", "-n", nsB, "link", "set", b, "up")
}

// quietVeth creates namespace ns with a veth pair x <-> y in it, both up
// and without IPv6, so that only the test's own frames cross.
func quietVeth(t testing.TB, ns string) {
	t.Helper()
	newNetns(t, ns)
	vethPair(t, ns, "x", ns, "y")
	for _, d := range []string{"x", "y"} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+d+".disable_ipv6=1")
	}
}

// ethtoolK runs `ethtool -K dev feat...` in namespace ns.
func ethtoolK(t testing.TB, ns, dev string, feat ...string) {
	t.Helper()
	sh(t, append([]string{"ip", "netns", "exec", ns, "ethtool", "-K", dev}, feat...)...)
}
