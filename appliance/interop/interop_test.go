package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// The matrix: tcpincd in gwA against hostmode (cmd/tcpinc-host) on hB, with
// gwB a plain bridge, so that rtr's loss rules (side A <-> side B) lie on the
// path. The appliance is A when the plain client on hA connects to the
// hostmode server on hB, and B when the hostmode client on hB connects to
// the plain server on hA. Every case runs two connections one after the
// other (the second must resume), each an echo of Bytes with both sides
// half-closing, the hostmode side framing at the case's size and
// initiating a rekey every 5 frames.
const (
	prefix    = "hmi-"
	adminAddr = "127.0.0.1:9181"
	lossPct   = 3
	rekey     = 5
)

// Bytes echoed per connection (2 MiB; the brief asks for at least 2 MB).
var Bytes = 2 << 20

var (
	teps   = []string{"x25519", "x448", "p256", "p521"}
	aeads  = []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}
	frames = []int{100, 1400, 16384, 65000}
)

type icase struct {
	applianceA bool // the appliance is host A (plain client behind it)
	tep, aead  string
	frame      int
	// endToEnd: hostmode at both ends, the one behind the appliance being
	// the client (applianceA) or the server; the appliance steps aside.
	endToEnd bool
	// staleTicket (appliance as B): the appliance's resumption cache is
	// flushed between the two connections, so the host's resumption offer
	// names nothing and B answers with a fresh key exchange (RFC 8548 §3.5).
	staleTicket bool
	// initTail: the hostmode end's Init message carries bytes in its
	// "ignored" field, split over two segments; the appliance must skip
	// them and count them into the PRK (RFC 8548 §4.1, TC-64, TC-66).
	initTail bool
}

// name is the case's subtest name: the role, then TEP, AEAD and frame size
// in one element, so that -run 'TestInterop/applianceB/p256.*frame16384'
// selects cases.
func (c icase) name() string {
	role := "applianceB"
	if c.applianceA {
		role = "applianceA"
	}
	if c.endToEnd {
		role = "endToEnd-" + map[bool]string{true: "insideClient", false: "insideServer"}[c.applianceA]
	}
	if c.staleTicket {
		role = "staleTicket-applianceB"
	}
	if c.initTail {
		role = "initTail-" + role
	}
	return fmt.Sprintf("%s/%s-%s-frame%d", role, c.tep, c.aead, c.frame)
}

// cases is the whole matrix with INTEROP_FULL=1, otherwise the subset that
// runs in every `go test ./...` (as root): each TEP, AEAD and frame size
// meets each appliance role at least once, and the stale ticket and both
// ENO hosts behind the appliance are in it; every case resumes, rekeys,
// half-closes both ways and crosses the 3 % loss.
func cases() []icase {
	var out []icase
	if os.Getenv("INTEROP_FULL") != "" {
		for _, a := range []bool{true, false} {
			for _, tp := range teps {
				for _, ae := range aeads {
					for _, f := range frames {
						out = append(out, icase{applianceA: a, tep: tp, aead: ae, frame: f})
					}
				}
			}
		}
		return append(out, endToEnd()...)
	}
	for _, a := range []bool{true, false} {
		for i := range 4 {
			j := i
			if !a {
				j = 3 - i // the other role gets the other pairings
			}
			out = append(out, icase{applianceA: a, tep: teps[i], aead: aeads[(i+boolInt(!a))%3], frame: frames[j]})
		}
	}
	return append(out, endToEnd()...)
}

func endToEnd() []icase {
	return []icase{
		{tep: "x25519", aead: "aes128gcm", frame: 16384, staleTicket: true},
		{applianceA: true, tep: "x448", aead: "chacha20poly1305", frame: 65000, endToEnd: true},
		{applianceA: false, tep: "p256", aead: "aes256gcm", frame: 1400, endToEnd: true},
		{applianceA: true, tep: "x25519", aead: "aes128gcm", frame: 1400, initTail: true},
		{applianceA: false, tep: "x448", aead: "chacha20poly1305", frame: 16384, initTail: true},
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type env struct {
	topo            *topology.Topology
	host, daemon    string
	hA, hB          netip.Addr
	port            atomic.Int32
	plainServerPort int
	plainServer     *netns.Process
	tcpincd         *netns.Process
}

// farAddr is case k's own address on hB: the appliance keeps resumption
// state per far-side address, so cases running side by side must not share
// one.
func (e *env) farAddr(k int) netip.Addr {
	b := e.hB.As4()
	b[3] = byte(100 + k)
	return netip.AddrFrom4(b)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interop tests need root (namespaces, XDP, BPF, cgroups); CI runs them as root")
	}
	for _, tool := range []string{"ip", "nft", "ethtool", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

func build(t *testing.T, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// lock serialises runs on this machine that use the prefix.
func lock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tcpinc-netns-"+prefix+"lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

const daemonConfig = `engine:
  teps: [x25519, x448, p256, p521]
  aeads: [aes128gcm, aes256gcm, chacha20poly1305]
  resumption: true
`

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	e := &env{
		daemon: os.Getenv("INTEROP_TCPINCD"),
		host:   build(t, "github.com/tcpinc/tcpinc/cmd/tcpinc-host", "tcpinc-host"),
	}
	if e.daemon == "" {
		e.daemon = build(t, "github.com/tcpinc/tcpinc/cmd/tcpincd", "tcpincd")
	}
	cfg := filepath.Join(t.TempDir(), "tcpincd.yaml")
	if err := os.WriteFile(cfg, []byte(daemonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	lock(t)
	_ = topology.Down(prefix)
	var err error
	e.topo, err = topology.Up(topology.Options{Prefix: prefix, Net: 91, Mode: topology.ModeBare})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.topo.Down(); err != nil {
			t.Errorf("topology down: %v", err)
		}
	})
	// gwB is a plain bridge: hB is a far host with no appliance in front.
	if err := e.topo.Env().AddBridge(e.topo.NS(topology.GwB), topology.BridgeName, topology.InsidePort, topology.OutsidePort); err != nil {
		t.Fatal(err)
	}
	p, err := e.topo.Start(topology.GwA, "tcpincd", e.daemon, "--config", cfg,
		"--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", adminAddr, "--state-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("admin API listening", 20*time.Second); err != nil {
		t.Fatalf("tcpincd: %v", err)
	}
	e.tcpincd = p
	e.hA, e.hB = e.topo.Addr(topology.HostA).V4, e.topo.Addr(topology.HostB).V4
	for k := range 120 {
		if out, err := e.topo.Run(topology.HostB, "ip", "addr", "add", e.farAddr(k).String()+"/24", "dev", topology.HostIface); err != nil {
			t.Fatalf("address on hB: %v %s", err, out)
		}
	}
	e.port.Store(7000)
	// The plain echo server behind the appliance, for the appliance-as-B
	// cases.
	e.plainServerPort = 6000
	if e.plainServer, err = e.server(topology.HostA, e.plainServerPort, "-plain"); err != nil {
		t.Fatal(err)
	}
	e.waitPing(t)
	if err := e.topo.SetLoss(lossPct, topology.LossBoth); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) waitPing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := e.topo.Run(topology.HostA, "ping", "-n", "-c", "1", "-W", "1", e.hB.String())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping hB through the appliance: %v\n%s", err, out)
		}
	}
}

// server starts an echo listener on node n and waits until it listens.
func (e *env) server(n topology.Node, port int, args ...string) (*netns.Process, error) {
	return e.serverAt(n, e.topo.Addr(n).V4, port, args...)
}

func (e *env) serverAt(n topology.Node, addr netip.Addr, port int, args ...string) (*netns.Process, error) {
	a := append([]string{e.host, "listen", "-addr", netip.AddrPortFrom(addr, uint16(port)).String(), "-timeout", "90s"}, args...)
	p, err := e.topo.Start(n, fmt.Sprintf("server-%s-%d", n, port), a...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput(`"event":"listening"`, 15*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

// record mirrors cmd/tcpinc-host's JSON line.
type record struct {
	Event      string `json:"event"`
	Local      string `json:"local"`
	Remote     string `json:"remote"`
	Encrypted  bool   `json:"encrypted"`
	Reason     string `json:"fallback_reason"`
	Role       string `json:"role"`
	SessionID  string `json:"session_id"`
	Transcript string `json:"transcript"`
	AEAD       string `json:"aead"`
	Resumed    bool   `json:"resumed"`
	Received   int64  `json:"received"`
	EchoOK     *bool  `json:"echo_ok"`
	Error      string `json:"error"`
}

func records(out string) []record { return recordsOf(out, "conn") }

func recordsOf(out, event string) []record {
	var rs []record
	for _, l := range strings.Split(out, "\n") {
		var r record
		if json.Unmarshal([]byte(l), &r) == nil && r.Event == event {
			rs = append(rs, r)
		}
	}
	return rs
}

// session mirrors the admin API's Session.
type session struct {
	SessionID  string `json:"session_id"`
	Role       string `json:"role"`
	Resumed    bool   `json:"resumed"`
	AEAD       string `json:"aead"`
	TEP        string `json:"tep"`
	Transcript string `json:"transcript"`
	Reason     string `json:"reason"`
	Error      string `json:"error"`
}

// applianceSession asks gwA for the session of the connection whose end
// behind it is inside and whose far end is far.
func (e *env) applianceSession(inside, far string) (session, error) {
	in, err1 := netip.ParseAddrPort(inside)
	fa, err2 := netip.ParseAddrPort(far)
	if err1 != nil || err2 != nil {
		return session{}, fmt.Errorf("bad addresses %q %q", inside, far)
	}
	url := fmt.Sprintf("http://%s/api/v1/sessions?src=%s&sport=%d&dst=%s&dport=%d", adminAddr,
		in.Addr().Unmap(), in.Port(), fa.Addr().Unmap(), fa.Port())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.topo.Command(ctx, topology.GwA, "curl", "-sS", "--max-time", "5", url).Output()
	if err != nil {
		return session{}, fmt.Errorf("admin API: %v: %s", err, out)
	}
	var s session
	if err := json.Unmarshal(out, &s); err != nil {
		return session{}, fmt.Errorf("admin API: %v: %s", err, out)
	}
	if s.SessionID == "" {
		return s, fmt.Errorf("appliance has no session for %s -> %s: %s", inside, far, out)
	}
	return s, nil
}

// run executes one case and returns an error describing every mismatch.
// Every process it starts is added to procs, for the failure report.
func (e *env) run(c icase, k int, procs *[]*netns.Process) error {
	port := int(e.port.Add(1))
	far := e.farAddr(k)
	hm := []string{"-tep", c.tep, "-aead", c.aead, "-frame", fmt.Sprint(c.frame), "-rekey", fmt.Sprint(rekey), "-hold", "1500ms"}
	if c.initTail {
		hm = append(hm, "-init-tail", "300", "-split-init")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var srv *netns.Process
	var client []string
	var clientNode topology.Node
	switch {
	case c.endToEnd:
		// hostmode at both ends; the server sits on the other side.
		if c.applianceA {
			p, err := e.serverAt(topology.HostB, far, port, hm...)
			if err != nil {
				return err
			}
			srv = p
			*procs = append(*procs, p)
			clientNode = topology.HostA
			client = append([]string{e.host, "connect", "-addr", netip.AddrPortFrom(far, uint16(port)).String()}, hm...)
		} else {
			p, err := e.server(topology.HostA, port, hm...)
			if err != nil {
				return err
			}
			srv = p
			*procs = append(*procs, p)
			clientNode = topology.HostB
			client = append([]string{e.host, "connect", "-bind", far.String(), "-addr", netip.AddrPortFrom(e.hA, uint16(port)).String()}, hm...)
		}
		defer srv.Stop()
	case c.applianceA:
		p, err := e.serverAt(topology.HostB, far, port, hm...)
		if err != nil {
			return err
		}
		srv = p
		*procs = append(*procs, p)
		defer p.Stop()
		clientNode = topology.HostA
		client = []string{e.host, "connect", "-plain", "-addr", netip.AddrPortFrom(far, uint16(port)).String()}
	default:
		clientNode = topology.HostB
		client = append([]string{e.host, "connect", "-bind", far.String(), "-addr", netip.AddrPortFrom(e.hA, uint16(e.plainServerPort)).String()}, hm...)
	}
	client = append(client, "-count", "2", "-bytes", fmt.Sprint(Bytes), "-timeout", "90s")
	if c.staleTicket {
		client = append(client, "-between", "2s")
	}
	// Every hostmode end announces each connection and holds it a moment,
	// so the appliance is asked while the flow is open.
	cp, err := e.topo.Start(clientNode, fmt.Sprintf("client-%d", k), client...)
	if err != nil {
		return err
	}
	defer cp.Stop()
	*procs = append(*procs, cp)
	hmProc := cp // the hostmode end whose connections the appliance carries
	if c.applianceA {
		hmProc = srv
	}
	sessions := map[int]session{}
	var sessErr []string
	flushed := false
	for done := false; !done; {
		select {
		case <-cp.Done():
			done = true
		case <-ctx.Done():
			return fmt.Errorf("client still running after 4 min: %s", cp.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if c.staleTicket && !flushed && strings.Contains(cp.Output(), `"event":"pause"`) {
			flushed = true
			body := fmt.Sprintf(`{"address":%q}`, far)
			if out, err := e.topo.Command(ctx, topology.GwA, "curl", "-sS", "--fail-with-body", "--max-time", "5",
				"-H", "Content-Type: application/json", "-d", body, "http://"+adminAddr+"/api/v1/cache/flush").CombinedOutput(); err != nil {
				return fmt.Errorf("cache flush: %v: %s", err, out)
			}
		}
		for i, r := range recordsOf(hmProc.Output(), "established") {
			if _, ok := sessions[i]; ok || i > 1 {
				continue
			}
			// The hostmode end's remote is the end behind the appliance.
			// The hostmode end may finish its handshake first (a lost
			// third ACK, a slow P-521 key): ask again while the
			// appliance is still negotiating.
			s, err := e.applianceSession(r.Remote, r.Local)
			if s.Reason == "negotiating" && !done {
				continue
			}
			if err != nil && !c.endToEnd {
				sessErr = append(sessErr, fmt.Sprintf("conn %d: %v", i+1, err))
			}
			sessions[i] = s
		}
	}
	out := cp.Output()
	cl := records(out)
	if err := cp.Wait(); err != nil || len(cl) != 2 {
		return fmt.Errorf("client: %v: %s", err, out)
	}
	if c.endToEnd {
		return e.checkEndToEnd(c, cl, srv, sessions)
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var hmRecs []record // the hostmode side's two records
	if c.applianceA {
		if hmRecs, err = serverRecords(srv); err != nil {
			return err
		}
	} else {
		hmRecs = cl
	}
	for i := range 2 {
		r := cl[i]
		if r.Error != "" || r.EchoOK == nil || !*r.EchoOK || r.Received != int64(Bytes) {
			bad("conn %d: echo failed: received %d, error %q", i+1, r.Received, r.Error)
		}
		h := hmRecs[i]
		if h.Error != "" {
			bad("conn %d: hostmode: %s", i+1, h.Error)
		}
		if !h.Encrypted {
			bad("conn %d: hostmode not encrypted: %s", i+1, h.Reason)
			continue
		}
		if h.AEAD != c.aead {
			bad("conn %d: hostmode AEAD %s", i+1, h.AEAD)
		}
		if want := i == 1 && !c.staleTicket; h.Resumed != want {
			bad("conn %d: hostmode resumed=%v, want %v", i+1, h.Resumed, want)
		}
		// The appliance's view, asked while the connection was open.
		s, ok := sessions[i]
		if !ok || s.SessionID == "" {
			bad("conn %d: no session from the appliance %v", i+1, sessErr)
			continue
		}
		if s.SessionID != h.SessionID {
			bad("conn %d: session IDs differ: appliance %s, hostmode %s", i+1, s.SessionID, h.SessionID)
		}
		if s.Transcript != h.Transcript {
			bad("conn %d: transcripts differ: appliance %s, hostmode %s", i+1, s.Transcript, h.Transcript)
		}
		if s.Role == h.Role {
			bad("conn %d: both ends role %s", i+1, s.Role)
		}
	}
	if len(problems) > 0 {
		// The other end's view, for the report.
		other := srv
		if !c.applianceA {
			other = e.plainServer
		}
		for _, r := range records(other.Output()) {
			for _, mine := range cl {
				if r.Remote == mine.Local || r.Local == mine.Remote && r.Remote == mine.Local {
					problems = append(problems, fmt.Sprintf("[other end: %+v]", r))
				}
			}
		}
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// serverRecords waits for a server's two connection records.
func serverRecords(srv *netns.Process) ([]record, error) {
	var rs []record
	deadline := time.Now().Add(20 * time.Second)
	for len(rs) < 2 && time.Now().Before(deadline) {
		rs = records(srv.Output())
		time.Sleep(100 * time.Millisecond)
	}
	if len(rs) != 2 {
		return nil, fmt.Errorf("server printed %d records: %s", len(rs), srv.Output())
	}
	return rs, nil
}

// checkEndToEnd: both hosts encrypted with equal session IDs (the second
// resumed), and the appliance has no session of its own for them (it stepped
// aside, RFC 8547 §4.6's negotiation being the hosts').
func (e *env) checkEndToEnd(c icase, cl []record, srv *netns.Process, sessions map[int]session) error {
	sr, err := serverRecords(srv)
	if err != nil {
		return err
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for i := range 2 {
		a, b := cl[i], sr[i]
		if a.Error != "" || a.EchoOK == nil || !*a.EchoOK || a.Received != int64(Bytes) || b.Error != "" {
			bad("conn %d: echo failed: received %d, errors %q %q", i+1, a.Received, a.Error, b.Error)
		}
		if !a.Encrypted || !b.Encrypted || a.SessionID != b.SessionID || a.Transcript != b.Transcript {
			bad("conn %d: hosts disagree: %v/%v %s / %s", i+1, a.Encrypted, b.Encrypted, a.SessionID, b.SessionID)
		}
		if want := i == 1; a.Resumed != want || b.Resumed != want {
			bad("conn %d: resumed %v/%v, want %v", i+1, a.Resumed, b.Resumed, want)
		}
		if s, ok := sessions[i]; !ok || s.SessionID != "" {
			bad("conn %d: the appliance was not asked, or reports a session of its own: %+v", i+1, s)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func TestInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the interop matrix builds a topology and runs tcpincd")
	}
	e := newEnv(t)
	t.Cleanup(func() {
		if t.Failed() {
			out := e.tcpincd.Output()
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("tcpincd log (tail):\n%s", out)
		}
		// The matrix claims loss: a loss rule that dropped nothing (or
		// cannot be read) means the cases ran on a clean link.
		n, err := e.topo.LossDropped()
		switch {
		case err != nil:
			t.Errorf("reading rtr's loss rule: %v", err)
		case n == 0 && !t.Failed():
			t.Errorf("rtr's %d %% loss rule dropped nothing", lossPct)
		default:
			t.Logf("rtr dropped %d packets (%d %% loss rule)", n, lossPct)
		}
	})
	// The cases run side by side, par at a time (t.Parallel alone would
	// follow -parallel, GOMAXPROCS by default).
	par := 4
	if os.Getenv("INTEROP_FULL") != "" {
		par = 6
	}
	sem := make(chan struct{}, par)
	for k, c := range cases() {
		t.Run(c.name(), func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			e.runCase(t, c, k)
		})
	}
}

// runCase runs case c (the k-th: its own far address) with a capture of its
// packets on the untrusted link, and on failure reports what helps: the
// appliance's counters and flows, the host-mode JSON lines, and a summary
// of the capture.
func (e *env) runCase(t *testing.T, c icase, k int) {
	start := time.Now()
	pcap := filepath.Join(t.TempDir(), "link.pcapng")
	capture, capErr := e.startCapture(topology.Router, topology.RouterToA, e.farAddr(k), pcap)
	// And hA's side of the appliance (the plaintext side: headers only).
	inPcap := filepath.Join(t.TempDir(), "inside.pcapng")
	inCapture, inErr := e.startCapture(topology.HostA, topology.HostIface, e.farAddr(k), inPcap)
	before := e.status()
	var procs []*netns.Process
	err := e.run(c, k, &procs)
	for _, cp := range []*netns.Process{capture, inCapture} {
		if cp != nil {
			_ = cp.StopWith(syscall.SIGINT, 10*time.Second)
		}
	}
	if err == nil {
		t.Logf("ok in %v", time.Since(start).Round(100*time.Millisecond))
		return
	}
	t.Errorf("after %v: %v", time.Since(start).Round(100*time.Millisecond), err)
	t.Logf("appliance counters before the case: %s", before)
	t.Logf("appliance counters after: %s", e.status())
	t.Logf("appliance flows of %s: %s", e.farAddr(k), e.adminGet("/api/v1/flows?address="+e.farAddr(k).String()))
	for _, p := range procs {
		t.Logf("%s output:\n%s", p.Name, tailOf(p.Output(), 6000))
	}
	if capErr != nil {
		t.Logf("no capture: %v", capErr)
	} else {
		t.Logf("untrusted link, packets of %s:\n%s", e.farAddr(k), linkSummary(pcap, e.farAddr(k)))
	}
	if inErr == nil {
		t.Logf("inside link (hA), packets of %s:\n%s", e.farAddr(k), linkSummary(inPcap, e.farAddr(k)))
	}
	// INTEROP_KEEP=DIR keeps failed cases' captures.
	if dir := os.Getenv("INTEROP_KEEP"); dir != "" {
		for side, path := range map[string]string{"link": pcap, "inside": inPcap} {
			keep := filepath.Join(dir, strings.ReplaceAll(c.name(), "/", "_")+time.Now().Format("-150405-")+side+".pcapng")
			if b, err := os.ReadFile(path); err == nil && os.WriteFile(keep, b, 0o644) == nil {
				t.Logf("capture kept: %s", keep)
			}
		}
	}
}

// startCapture records the headers of far's packets on interface iface of
// node n (rtr's link to gwA is the untrusted link), filtered in the kernel
// so that side-by-side cases stay apart.
func (e *env) startCapture(n topology.Node, iface string, far netip.Addr, path string) (*netns.Process, error) {
	p, err := e.topo.Start(n, "dumpcap-"+far.String(), "dumpcap", "-n", "-i", iface,
		"-s", "128", "-f", "host "+far.String(), "-w", path)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput("Capturing on", 20*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// status returns the appliance's counters that tell a stall or reset apart:
// drops, stray resets, fallbacks, handshakes, authentication failures.
func (e *env) status() string {
	var st struct {
		Counters struct {
			Handshakes     map[string]uint64 `json:"handshakes"`
			Fallbacks      map[string]uint64 `json:"fallbacks"`
			Drops          map[string]uint64 `json:"drops"`
			AuthFailures   uint64            `json:"auth_failures"`
			Rekeys         uint64            `json:"rekeys"`
			Resumptions    uint64            `json:"resumptions"`
			InitRetransmit uint64            `json:"init_retransmissions"`
			StrayResets    uint64            `json:"stray_resets"`
			DupACKs        uint64            `json:"dup_acks_originated"`
		} `json:"counters"`
	}
	out := e.adminGet("/api/v1/status")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return out
	}
	b, _ := json.Marshal(st.Counters)
	return string(b)
}

func (e *env) adminGet(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.topo.Command(ctx, topology.GwA, "curl", "-sS", "--max-time", "5", "http://"+adminAddr+path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("admin API %s: %v: %s", path, err, out)
	}
	return string(out)
}

// linkSummary is tshark's view of a case's capture, per connection (the
// far end's port): its first 20 and last 40 packets, where a lost handshake,
// a stall or a reset shows.
func linkSummary(path string, far netip.Addr) string {
	fields := []string{"-T", "fields", "-E", "separator= ", "-e", "frame.time_relative", "-e", "ip.src", "-e", "tcp.srcport",
		"-e", "ip.dst", "-e", "tcp.dstport", "-e", "tcp.flags.str", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw",
		"-e", "tcp.window_size_value", "-e", "tcp.len", "-e", "tcp.options.sack_le", "-e", "tcp.options.sack_re"}
	all, err := exec.Command("tshark", append([]string{"-r", path, "-n"}, fields...)...).Output()
	if err != nil {
		return fmt.Sprintf("tshark: %v", err)
	}
	conns := map[string][]string{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(string(all)), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		port := f[2]
		if f[3] == far.String() {
			port = f[4]
		}
		if _, ok := conns[port]; !ok {
			order = append(order, port)
		}
		conns[port] = append(conns[port], l)
	}
	var sb strings.Builder
	sb.WriteString("time src sport dst dport flags seq ack win len sack-left sack-right\n")
	for _, port := range order {
		ls := conns[port]
		fmt.Fprintf(&sb, "-- connection from port %s: %d packets\n", port, len(ls))
		if len(ls) > 60 {
			ls = append(append(ls[:20:20], "..."), ls[len(ls)-40:]...)
		}
		sb.WriteString(strings.Join(ls, "\n") + "\n")
	}
	return sb.String()
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
