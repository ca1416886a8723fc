package xsk

import (
	"net"
	"testing"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
)

// Test helpers for network namespaces. Every namespace a test creates is
// named with the prefix "xskt-" and removed in t.Cleanup, also on failure.

func requireRoot(t testing.TB) {
	t.Helper()
	netnstest.RequireRoot(t, "network namespaces, BPF, AF_XDP")
}

// sh runs a command and fails the test with its output on error.
func sh(t testing.TB, args ...string) string { t.Helper(); return netnstest.Sh(t, args...) }

// newNetns creates namespace name and deletes it when the test ends.
func newNetns(t testing.TB, name string) { t.Helper(); netnstest.New(t, "xskt-", name) }

// inNetns runs fn on an OS thread switched into namespace name.
func inNetns(name string, fn func() error) error { return netns.Do(name, fn) }

// ifindexIn returns the index of dev inside namespace ns.
func ifindexIn(t testing.TB, ns, dev string) int {
	t.Helper()
	var idx int
	if err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// vethPair creates a veth pair a (in namespace nsA) <-> b (in nsB), both up.
func vethPair(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	sh(t, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
	sh(t, "ip", "-n", nsA, "link", "set", a, "up")
	sh(t, "ip", "-n", nsB, "link", "set", b, "up")
}
