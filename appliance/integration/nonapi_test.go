package integration

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// nonapiAdmin is where gwA's tcpincd serves its admin API in
// TestNeighboursWithoutNAPI (inside the gateway namespace).
const nonapiAdmin = "127.0.0.1:9181"

// portPaths reads each port's forwarding path from gwA's /api/v1/status.
func portPaths(t *testing.T, topo *topology.Topology) map[string][2]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := topo.Command(ctx, topology.GwA, "curl", "-sS", "--fail-with-body", "--max-time", "5", "http://"+nonapiAdmin+"/api/v1/status").Output()
	if err != nil {
		t.Fatalf("admin status: %v: %s", err, out)
	}
	var st struct {
		Ports []struct {
			Name       string `json:"name"`
			Path       string `json:"path"`
			PathReason string `json:"path_reason"`
		} `json:"ports"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("admin status: %v: %s", err, out)
	}
	m := map[string][2]string{}
	for _, p := range st.Ports {
		m[p.Name] = [2]string{p.Path, p.PathReason}
	}
	return m
}

// waitPaths waits up to 5 s for gwA to report the given paths.
func waitPaths(t *testing.T, topo *topology.Topology, inside, outside string) {
	t.Helper()
	var m map[string][2]string
	for deadline := time.Now().Add(5 * time.Second); ; {
		m = portPaths(t, topo)
		if m["inside"][0] == inside && m["outside"][0] == outside {
			t.Logf("gwA paths: inside %v, outside %v", m["inside"], m["outside"])
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gwA paths %v, want inside %s, outside %s", m, inside, outside)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestNeighboursWithoutNAPI: a veth neighbour of gwA with neither GRO nor an
// XDP program cannot receive what gwA's XDP program redirects to it (the
// kernel drops such frames after the program returned). tcpincd must see
// that, at start and while it runs, and forward through user space instead:
// ping, UDP and a 20 MB HTTP download from hF (no appliance) through gwA
// work, and /api/v1/status says which path each port uses and why.
func TestNeighboursWithoutNAPI(t *testing.T) {
	requireRoot(t)
	bin := buildDaemon(t)
	topo := up(t, 98)
	f := topo.Addr(topology.HostF)

	want := serveBlobAndEcho(t, topo, topology.HostF)
	gro := func(n topology.Node, iface, on string) {
		t.Helper()
		if out, err := topo.Run(n, "ethtool", "-K", iface, "gro", on); err != nil {
			t.Fatalf("ethtool %s:%s gro %s: %v\n%s", n, iface, on, err, out)
		}
	}
	// hA's interface is gwA:in's peer: what arrives at gwA:out cannot be
	// redirected into gwA:in.
	gro(topology.HostA, topology.HostIface, "off")
	gw, err := topo.Start(topology.GwA, "tcpincd-gwA", bin, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", nonapiAdmin,
		"--state-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.WaitOutput("admin API listening", 15*time.Second); err != nil {
		t.Fatalf("tcpincd in gwA did not start: %v\n%s", err, gw.Output())
	}
	traffic := func() {
		t.Helper()
		ping(t, topo, f.V4)
		ping(t, topo, f.V6)
		udp(t, topo, f.V4)
		curlHash(t, topo, f.V4, want)
	}
	waitPaths(t, topo, "kernel", "user")
	if m := portPaths(t, topo); !strings.Contains(m["outside"][1], "cannot take redirected XDP frames") {
		t.Errorf("outside path reason %q does not say why", m["outside"][1])
	}
	traffic()

	// While it runs: rtr's interface toward gwA (gwA:out's peer) loses
	// GRO too; gwA:in's redirects now fail as well.
	gro(topology.Router, topology.RouterToA, "off")
	waitPaths(t, topo, "user", "user")
	traffic()
	// And back: GRO on again at hA, gwA:out forwards in the kernel again.
	gro(topology.HostA, topology.HostIface, "on")
	waitPaths(t, topo, "user", "kernel")
	traffic()

	out := stopDaemon(t, gw, syscall.SIGTERM)
	if !strings.Contains(out, "forwarding path changed") {
		t.Errorf("the daemon did not log the path changes:\n%s", out)
	}
}
