package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// This test's namespaces (tda-hA, tda-gwA, ...) and address plan (10.88.x.y).
const (
	netnsPrefix = "tda-"
	netnsNet    = 88
	echoPort    = 7000
)

// echoServer answers one connection's first message and then holds the
// connection open, so the flow stays listed while the test looks at it.
const echoServer = `
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 7000))
s.listen()
print("listening", flush=True)
c, _ = s.accept()
c.sendall(c.recv(100))
time.sleep(120)
`

const echoClient = `
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7000), timeout=10)
c.sendall(b"tcpinc admin hello")
print("echo", c.recv(100).decode(), flush=True)
time.sleep(120)
`

func startIn(t *testing.T, topo *topology.Topology, n topology.Node, name, ready string, args ...string) *netns.Process {
	t.Helper()
	p, err := topo.Start(n, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	if err := p.WaitOutput(ready, 20*time.Second); err != nil {
		t.Fatalf("%s in %s: %v\n%s", name, n, err, p.Output())
	}
	return p
}

// TestAdminAPIInNetns runs the real daemon in both appliances of a netns
// topology (hA - gwA - rtr - gwB - hB), each serving its admin API on a unix
// socket, and opens one TCP connection from hA to hB. Through the API: both
// list the connection encrypted with the same 33-byte session ID (ENO-73),
// /api/v1/sessions finds it from the host's view, /api/v1/status describes
// the ports, /metrics counts the sealed frames, a bad configuration is
// refused and a good one applied; SIGHUP is ignored; SIGTERM stops the API
// with the daemon.
func TestAdminAPIInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP, AF_XDP); CI runs it as root")
	}
	for _, tool := range []string{"ip", "python3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tcpincd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_ = topology.Down(netnsPrefix) // a leftover from a crashed run
	topo, err := topology.Up(topology.Options{Prefix: netnsPrefix, Net: netnsNet, Mode: topology.ModeBare})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Down(); err != nil {
			t.Errorf("topology down: %v", err)
		}
	})

	ctx := context.Background()
	daemons := map[topology.Node]*netns.Process{}
	clients := map[topology.Node]*admin.Client{}
	socks := map[topology.Node]string{}
	// gwA on AF_XDP sockets, gwB on what auto chooses for veth (AF_PACKET).
	backends := map[topology.Node]string{topology.GwA: "afxdp", topology.GwB: "auto"}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		socks[gw] = filepath.Join(dir, string(gw)+".sock")
		daemons[gw] = startIn(t, topo, gw, "tcpincd-"+string(gw), "admin API listening",
			bin, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", "unix:"+socks[gw],
			"--backend", backends[gw], "--state-dir", filepath.Join(dir, string(gw)))
		if clients[gw], err = admin.NewClient("unix:"+socks[gw], ""); err != nil {
			t.Fatal(err)
		}
	}

	startIn(t, topo, topology.HostB, "echo-server", "listening", "python3", "-c", echoServer)
	hB := topo.Addr(topology.HostB).V4
	startIn(t, topo, topology.HostA, "echo-client", "echo tcpinc admin hello", "python3", "-c", echoClient, hB.String())

	flows := map[topology.Node]admin.FlowDoc{}
	for gw, c := range clients {
		all, err := c.AllFlows(ctx, admin.FlowQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range all {
			if strings.HasSuffix(f.Outside, ":7000") || strings.HasSuffix(f.Inside, ":7000") {
				flows[gw] = f
			}
		}
		if f, ok := flows[gw]; !ok || !f.Encrypted || len(f.SessionID) != 66 {
			t.Fatalf("%s lists %+v; want the connection encrypted with a 33-byte session ID\n%s", gw, all, daemons[gw].Output())
		}
	}
	fa, fb := flows[topology.GwA], flows[topology.GwB]
	if fa.SessionID != fb.SessionID || fa.Role == fb.Role {
		t.Fatalf("gwA %+v\ngwB %+v\nwant one session ID, roles A and B", fa, fb)
	}
	src, dst := netip.MustParseAddrPort(fa.Inside), netip.MustParseAddrPort(fa.Outside)
	s, err := clients[topology.GwA].Session(ctx, src, dst)
	if err != nil || s.SessionID != fa.SessionID {
		t.Fatalf("session %v -> %v: %+v, %v", src, dst, s, err)
	}

	st, err := clients[topology.GwA].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ports) != 2 || st.Ports[0].Interface != topology.InsidePort || st.Ports[1].Interface != topology.OutsidePort ||
		st.Ports[0].XDPMode == "" || st.Ports[0].Backend == "" || st.Ports[0].BackendReason == "" ||
		(st.Ports[0].BindMode == "") != (st.Ports[0].Backend == "afpacket") || st.Workers < 1 || st.Version == "" {
		t.Fatalf("status: %+v", st)
	}
	metrics := scrape(t, socks[topology.GwA])
	if !strings.Contains(metrics, `tcpinc_port_backend{backend="`+st.Ports[0].Backend+`",port="inside"`) {
		t.Fatalf("/metrics does not say the inside port's backend (%s):\n%s", st.Ports[0].Backend, metrics)
	}
	if !strings.Contains(metrics, "tcpinc_frames_sealed_total ") || strings.Contains(metrics, "tcpinc_frames_sealed_total 0\n") {
		t.Fatalf("/metrics shows no sealed frames:\n%s", metrics)
	}
	// The AF_XDP rings' levels (tcpincd never gave them to the admin
	// API): each ring of each port's socket, the fill rings holding
	// frames lent to the kernel.
	var missing []string
	for _, port := range []string{"inside", "outside"} {
		for _, ring := range []string{"rx", "tx", "fill", "completion"} {
			series := `{port="` + port + `",queue="0",ring="` + ring + `"} `
			if !strings.Contains(metrics, "tcpinc_ring_used_slots"+series) || !regexp.MustCompile(`tcpinc_ring_size_slots`+regexp.QuoteMeta(series)+`[1-9]`).MatchString(metrics) {
				missing = append(missing, port+" "+ring)
			}
		}
		if regexp.MustCompile(`tcpinc_ring_used_slots\{port="` + port + `",queue="0",ring="fill"\} 0\n`).MatchString(metrics) {
			t.Errorf("the %s port's fill ring is empty", port)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("/metrics has no level of the rings %v:\n%s", missing, metrics)
	}
	// The flows on the kernel fast path (the engine forgets plain ones
	// while they last), counted in its BPF map.
	if !regexp.MustCompile(`(?m)^tcpinc_fastpath_flows [0-9]+$`).MatchString(metrics) || st.Flows.FastPath == nil {
		t.Fatalf("no count of the fast path's flows: status flows %+v\n%s", st.Flows, metrics)
	}

	var ae *admin.APIError
	if _, err := clients[topology.GwA].PutConfig(ctx, []byte(`{"teps": ["x25519", "rsa"]}`)); !errors.As(err, &ae) || ae.Field != "teps[1]" {
		t.Fatalf("bad TEP: %v, want a 400 naming teps[1]", err)
	}
	res, err := clients[topology.GwA].PutConfig(ctx, []byte(`{"resumption": false}`))
	if err != nil || res.Config.Resumption {
		t.Fatalf("resumption off: %+v, %v", res, err)
	}

	// SIGHUP (the usual "reload") is logged and ignored. Its default action
	// ended the daemon at once, with its XDP programs still attached.
	hup := daemons[topology.GwA]
	if err := hup.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := hup.WaitOutput("SIGHUP ignored", 10*time.Second); err != nil {
		t.Fatalf("after SIGHUP: %v\n%s", err, hup.Output())
	}
	if _, err := clients[topology.GwA].Status(ctx); err != nil {
		t.Fatalf("status after SIGHUP: %v\n%s", err, hup.Output())
	}

	for gw, p := range daemons {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: tcpincd did not stop\n%s", gw, p.Output())
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("%s: tcpincd exit: %v\n%s", gw, err, p.Output())
		}
		if _, err := os.Stat(socks[gw]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: admin socket left behind (%v)", gw, err)
		}
	}
}

// scrape reads /metrics over the unix socket.
func scrape(t *testing.T, sock string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://localhost/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
