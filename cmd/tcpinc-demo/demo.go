package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// Options configure Run.
type Options struct {
	CI           bool
	Prefix       string // namespace prefix (default topology.DefaultPrefix)
	Net          int    // address plan N (default 77)
	BinDir       string // tcpincd and tcpincctl; empty: go build them
	DaemonConfig string // tcpincd --config for both appliances; empty: defaults
	FileSize     int    // bytes served over HTTP
	IperfSeconds int
	Out          io.Writer
	// Pause, when set, is called before cleanup (interactive demo).
	Pause func()
}

// ErrEngineMissing is returned when the daemon forwards but does not
// encrypt (no encrypting engine or no admin API in this build).
var ErrEngineMissing = errors.New("engine not available")

// Ports and names used inside the topology.
const (
	adminAddr = "127.0.0.1:9470" // inside each gateway namespace
	httpPort  = 8080
	echoPort  = 9000
	iperfPort = 5201
	blobName  = "blob.bin"
	// marker is sent by the hosts in every stream; it must never appear on
	// the untrusted link in an encrypted connection.
	marker = "TCPINC-DEMO-PLAINTEXT-MARKER"
)

// Tools the demo runs; scripts/demo.sh installs them (scripts/deps.sh).
var tools = []string{"ip", "nft", "ethtool", "python3", "curl", "iperf3", "tshark"}

type demo struct {
	opt                Options
	ctx                context.Context
	out                io.Writer
	topo               *topology.Topology
	work               string // temporary directory
	tcpincd, tcpincctl string
	checks             []check
	// engineMissing is the reason the demo concluded the daemon does not
	// encrypt, empty when it does.
	engineMissing string
}

type check struct {
	name string
	err  error
}

// Run runs the demo. It returns nil only when every check passed.
func Run(ctx context.Context, opt Options) (err error) {
	if opt.Prefix == "" {
		opt.Prefix = topology.DefaultPrefix
	}
	if opt.Net == 0 {
		opt.Net = 77
	}
	if opt.FileSize == 0 {
		opt.FileSize = 32 << 20
		if opt.CI {
			opt.FileSize = 4 << 20
		}
	}
	if opt.IperfSeconds == 0 {
		opt.IperfSeconds = 5
		if opt.CI {
			opt.IperfSeconds = 2
		}
	}
	if opt.Out == nil {
		opt.Out = os.Stdout
	}
	d := &demo{opt: opt, ctx: ctx, out: opt.Out}
	if err := netns.RequireRoot(); err != nil {
		return err
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed (the demo needs %s; scripts/demo.sh installs them): %w", t, strings.Join(tools, ", "), err)
		}
	}
	d.work, err = os.MkdirTemp("", "tcpinc-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d.work)
	// python's http.server and tshark drop privileges or run as other
	// users in some setups: let them read and write here.
	if err := os.Chmod(d.work, 0o755); err != nil {
		return err
	}

	if err := d.binaries(); err != nil {
		return err
	}
	d.section("Topology: hA —[gwA in|out]— rtr (untrusted) —[gwB out|in]— hB, and hF behind rtr with no appliance")
	d.topo, err = topology.Up(topology.Options{Prefix: opt.Prefix, Net: opt.Net, Mode: topology.ModeBare})
	if err != nil {
		return err
	}
	defer func() {
		if d.opt.Pause != nil && ctx.Err() == nil {
			d.explore()
		}
		d.section("Cleanup")
		if derr := d.topo.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", derr))
		} else {
			d.say("namespaces %s* removed", opt.Prefix)
		}
	}()
	d.showAddresses()

	err = d.scenario()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return d.summary(err)
}

// ---- output ----

func (d *demo) section(s string) { fmt.Fprintf(d.out, "\n==> %s\n", s) }

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "    "+format+"\n", args...) }

func (d *demo) block(s string) {
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(d.out, "    | %s\n", l)
	}
}

// expect records a check and prints its outcome.
func (d *demo) expect(name string, err error) bool {
	d.checks = append(d.checks, check{name, err})
	if err != nil {
		fmt.Fprintf(d.out, "    FAIL %s: %v\n", name, err)
		return false
	}
	fmt.Fprintf(d.out, "    ok   %s\n", name)
	return true
}

func (d *demo) summary(runErr error) error {
	d.section("Result")
	failed := 0
	for _, c := range d.checks {
		if c.err != nil {
			failed++
		}
	}
	d.say("%d checks, %d failed", len(d.checks), failed)
	if d.engineMissing != "" {
		d.say("engine not available: %s", d.engineMissing)
	}
	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	if d.engineMissing != "" {
		errs = append(errs, fmt.Errorf("%w: %s", ErrEngineMissing, d.engineMissing))
	}
	if failed > 0 {
		var names []string
		for _, c := range d.checks {
			if c.err != nil {
				names = append(names, c.name)
			}
		}
		errs = append(errs, fmt.Errorf("failed: %s", strings.Join(names, "; ")))
	}
	if len(errs) == 0 {
		d.say("the encrypted transfer succeeded and both appliances report the same session ID")
	}
	return errors.Join(errs...)
}

// ---- steps ----

// binaries builds tcpincd and tcpincctl from this module unless --bin names
// a directory that has them.
func (d *demo) binaries() error {
	d.section("Binaries")
	dir := d.opt.BinDir
	if dir == "" {
		dir = filepath.Join(d.work, "bin")
		gobin, err := goTool()
		if err != nil {
			return err
		}
		for _, cmd := range []string{"tcpincd", "tcpincctl"} {
			out, err := exec.CommandContext(d.ctx, gobin, "build", "-o", filepath.Join(dir, cmd),
				"github.com/tcpinc/tcpinc/cmd/"+cmd).CombinedOutput()
			if err != nil {
				if cmd == "tcpincctl" {
					d.engineMissing = "cmd/tcpincctl does not build: " + firstLine(string(out))
					d.say("tcpincctl: not available (%s)", firstLine(string(out)))
					continue
				}
				return fmt.Errorf("go build %s (run the demo inside the repository, as scripts/demo.sh does, or pass --bin DIR): %w\n%s", cmd, err, out)
			}
			d.say("built %s", cmd)
		}
	}
	d.tcpincd = filepath.Join(dir, "tcpincd")
	d.tcpincctl = filepath.Join(dir, "tcpincctl")
	if _, err := os.Stat(d.tcpincd); err != nil {
		return fmt.Errorf("tcpincd: %w", err)
	}
	if _, err := os.Stat(d.tcpincctl); err != nil && d.engineMissing == "" {
		d.engineMissing = "no tcpincctl in " + dir
	}
	return nil
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("no go toolchain in PATH or /usr/local/go/bin to build tcpincd (or pass --bin DIR)")
}

func (d *demo) showAddresses() {
	for _, h := range []topology.Node{topology.HostA, topology.HostB, topology.HostF} {
		a := d.topo.Addr(h)
		d.say("%-3s %-12s %s   (namespace %s)", h, a.V4, a.V6, d.topo.NS(h))
	}
	d.say("gwA, gwB: ports \"in\" and \"out\", no addresses (layer-2 bumps); rtr routes and is the untrusted network")
}

func (d *demo) scenario() error {
	a, b, f := d.topo.Addr(topology.HostA), d.topo.Addr(topology.HostB), d.topo.Addr(topology.HostF)

	blob, sum, err := d.makeBlob()
	if err != nil {
		return err
	}

	d.section("Capture of the untrusted link (tshark on rtr:" + topology.RouterToA + ", between gwA and rtr)")
	capPath := filepath.Join(d.work, "untrusted.pcapng")
	capture, err := d.startCapture(capPath)
	if err != nil {
		return err
	}
	d.say("capturing to %s (iperf3 data left out, its SYNs kept)", capPath)

	d.section("Appliances: tcpincd in gwA and gwB, admin API on " + adminAddr + " inside each")
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		if err := d.startDaemon(gw); err != nil {
			return err
		}
	}

	d.section("Servers: HTTP and echo on hB, iperf3 on hB, HTTP on hF")
	httpArgs := []string{"python3", "-u", "-m", "http.server", strconv.Itoa(httpPort), "--bind", "::", "--directory", blob}
	for _, s := range []struct {
		node       topology.Node
		name, desc string
		args       []string
		wait       string
	}{
		{topology.HostB, "http-hB", "python3 -m http.server " + strconv.Itoa(httpPort), httpArgs, "Serving HTTP"},
		{topology.HostF, "http-hF", "python3 -m http.server " + strconv.Itoa(httpPort), httpArgs, "Serving HTTP"},
		{topology.HostB, "echo-hB", "a line echo server on port " + strconv.Itoa(echoPort),
			[]string{"python3", "-u", "-c", echoServer, strconv.Itoa(echoPort)}, "echo ready"},
		{topology.HostB, "iperf3-hB", "iperf3 -s -p " + strconv.Itoa(iperfPort),
			[]string{"iperf3", "-s", "-p", strconv.Itoa(iperfPort), "--forceflush"}, "Server listening"},
	} {
		p, err := d.topo.Start(s.node, s.name, s.args...)
		if err != nil {
			return err
		}
		if err := p.WaitOutput(s.wait, 15*time.Second); err != nil {
			return err
		}
		d.say("%s: %s", s.node, s.desc)
	}

	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section(fmt.Sprintf("HTTP: hA fetches a %d-byte file from hB (encrypted between gwA and gwB)", d.opt.FileSize))
	httpPortA := d.fetch(b.V4, sum, "encrypted transfer hA→hB: sha256 matches")

	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section("Held connection: hA keeps an echo connection to hB open (its session ID is compared below)")
	held, heldTuple, err := d.holdEcho(b.V4)
	if err != nil {
		d.expect("echo connection hA→hB", err)
	} else {
		d.expect("echo connection hA→hB: marker lines echoed intact", nil)
		defer held.Stop()
	}

	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section(fmt.Sprintf("iperf3 hA→hB for %d s", d.opt.IperfSeconds))
	d.iperf(b.V4)

	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section("Far host: hA fetches the same file from hF, which has no appliance (stays plain TCP)")
	farPort := d.fetch(f.V4, sum, "plain transfer hA→hF: sha256 matches")

	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section("What the appliances report")
	viewsA, viewsB := d.showFlows()
	if heldTuple.IsValid() {
		d.compareSessions(viewsA, viewsB, heldTuple, a.V4)
	}
	if httpPortA != 0 {
		d.reportFlow(viewsA, netip.AddrPortFrom(a.V4, httpPortA), netip.AddrPortFrom(b.V4, httpPort), true, "HTTP hA→hB")
	}
	if farPort != 0 {
		d.reportFlow(viewsA, netip.AddrPortFrom(a.V4, farPort), netip.AddrPortFrom(f.V4, httpPort), false, "HTTP hA→hF")
	}
	if heldTuple.IsValid() {
		d.statusPage(viewsA, heldTuple)
	}

	if held != nil {
		held.Stop()
	}
	time.Sleep(300 * time.Millisecond) // let the last segments reach the capture
	if err := d.ctx.Err(); err != nil {
		return err
	}
	d.section("The untrusted link")
	if _, err := capture.Stop(); err != nil {
		d.expect("capture", err)
		return nil
	}
	d.analyseCapture(capPath, a.V4, b.V4, f.V4, httpPortA, farPort)
	return nil
}

// makeBlob writes the HTTP file: random bytes with the marker every 512
// bytes, so any plaintext segment of it carries the marker.
func (d *demo) makeBlob() (dir, sum string, err error) {
	dir = filepath.Join(d.work, "www")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	buf := make([]byte, d.opt.FileSize)
	if _, err := rand.Read(buf); err != nil {
		return "", "", err
	}
	for i := 0; i+len(marker) <= len(buf); i += 512 {
		copy(buf[i:], marker)
	}
	if err := os.WriteFile(filepath.Join(dir, blobName), buf, 0o644); err != nil {
		return "", "", err
	}
	h := sha256.Sum256(buf)
	return dir, hex.EncodeToString(h[:]), nil
}

func (d *demo) startDaemon(gw topology.Node) error {
	args := []string{d.tcpincd, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", adminAddr}
	if d.opt.DaemonConfig != "" {
		args = append(args, "--config", d.opt.DaemonConfig)
	}
	if d.opt.BinDir == "" {
		// The disk copy of the negotiated set in the demo's own directory,
		// not the machine's (a tcpincd from --bin may predate the flag).
		args = append(args, "--state-dir", filepath.Join(d.work, "state-"+string(gw)))
	}
	p, err := d.topo.Start(gw, "tcpincd-"+string(gw), args...)
	if err != nil {
		return err
	}
	if err := p.WaitOutput("tcpincd running", 20*time.Second); err != nil {
		return fmt.Errorf("tcpincd in %s: %w", gw, err)
	}
	d.say("%s: ip netns exec %s %s", gw, d.topo.NS(gw), strings.Join(append([]string{"tcpincd"}, args[1:]...), " "))
	if strings.Contains(p.Output(), "admin API is not served yet") && d.engineMissing == "" {
		d.engineMissing = "this tcpincd does not serve the admin API yet"
	}
	return nil
}

// fetch downloads the blob from dst with curl in hA, checks its sha256 and
// returns hA's local port (0 on failure).
func (d *demo) fetch(dst netip.Addr, want, name string) uint16 {
	url := fmt.Sprintf("http://%s/%s", netip.AddrPortFrom(dst, httpPort), blobName)
	file := filepath.Join(d.work, "fetched-"+dst.String())
	ctx, cancel := context.WithTimeout(d.ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := d.topo.RunContext(ctx, topology.HostA, "curl", "-sS", "--fail", "--max-time", "50",
		"-o", file, "-w", "%{local_port}", url)
	if err != nil {
		d.expect(name, err)
		return 0
	}
	el := time.Since(start)
	port, _ := strconv.Atoi(strings.TrimSpace(out))
	data, err := os.ReadFile(file)
	if err != nil {
		d.expect(name, err)
		return uint16(port)
	}
	h := sha256.Sum256(data)
	got := hex.EncodeToString(h[:])
	d.say("curl %s  (from hA port %d, %d bytes in %v)", url, port, len(data), el.Round(time.Millisecond))
	d.say("sha256 sent %s", want)
	d.say("sha256 got  %s", got)
	if got != want {
		d.expect(name, fmt.Errorf("sha256 differs"))
	} else {
		d.expect(name, nil)
	}
	return uint16(port)
}

// holdEcho starts a client in hA that sends marker lines to hB's echo server,
// checks the echo, prints its local port, and keeps the connection open
// until stopped.
func (d *demo) holdEcho(dst netip.Addr) (*netns.Process, netip.AddrPort, error) {
	p, err := d.topo.Start(topology.HostA, "echo-client", "python3", "-u", "-c", echoClient, dst.String(), strconv.Itoa(echoPort), marker)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if err := p.WaitOutput("held ", 15*time.Second); err != nil {
		p.Stop()
		return nil, netip.AddrPort{}, err
	}
	m := regexp.MustCompile(`held (\d+)`).FindStringSubmatch(p.Output())
	port, _ := strconv.Atoi(m[1])
	local := netip.AddrPortFrom(d.topo.Addr(topology.HostA).V4, uint16(port))
	d.say("hA %s ⇄ hB %s: 20 lines echoed, connection held open", local, netip.AddrPortFrom(dst, echoPort))
	return p, local, nil
}

func (d *demo) iperf(dst netip.Addr) {
	ctx, cancel := context.WithTimeout(d.ctx, time.Duration(d.opt.IperfSeconds+20)*time.Second)
	defer cancel()
	out, err := d.topo.RunContext(ctx, topology.HostA, "iperf3", "-c", dst.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(d.opt.IperfSeconds), "-f", "m", "--connect-timeout", "5000")
	if err != nil {
		d.expect("iperf3 hA→hB", err)
		return
	}
	m := regexp.MustCompile(`([\d.]+) Mbits/sec.*receiver`).FindStringSubmatch(out)
	if m == nil {
		d.expect("iperf3 hA→hB", fmt.Errorf("no receiver line in\n%s", out))
		return
	}
	d.say("receiver: %s Mbit/s (veth pairs in namespaces on a shared machine: a demonstration, not a benchmark)", m[1])
	d.expect("iperf3 hA→hB", nil)
}

// ctl runs tcpincctl in a gateway namespace.
func (d *demo) ctl(gw topology.Node, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	defer cancel()
	full := append([]string{d.tcpincctl, "--admin", adminAddr}, args...) // flags before the command
	return d.topo.RunContext(ctx, gw, full...)
}

// explore keeps the topology up for the user until Enter (or Ctrl-C).
func (d *demo) explore() {
	d.section("The topology stays up. Try, in another terminal:")
	d.say("ip netns exec %s %s --admin %s flows", d.topo.NS(topology.GwA), d.tcpincctl, adminAddr)
	d.say("ip netns exec %s curl -s http://%s/api/v1/flows", d.topo.NS(topology.GwB), adminAddr)
	d.say("ip netns exec %s curl -sO http://%s/%s", d.topo.NS(topology.HostA),
		netip.AddrPortFrom(d.topo.Addr(topology.HostB).V4, httpPort), blobName)
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		u, stop, err := statusProxy(d.topo.NS(gw), adminAddr)
		if err != nil {
			d.say("status page of %s: %v", gw, err)
			continue
		}
		defer stop()
		d.say("status page of %s, in a browser on this machine: %s", gw, u)
	}
	d.say("Press Enter (or Ctrl-C) to clean up.")
	done := make(chan struct{})
	go func() { d.opt.Pause(); close(done) }()
	select {
	case <-done:
	case <-d.ctx.Done():
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// startCapture runs tshark on rtr's link to gwA. It keeps everything but the
// iperf3 data (SYNs of iperf3 stay, so its negotiation shows), which would
// only make the file large.
func (d *demo) startCapture(path string) (*capture, error) {
	filter := fmt.Sprintf("not (tcp port %d) or (tcp[tcpflags] & tcp-syn != 0)", iperfPort)
	p, err := d.topo.Start(topology.Router, "tshark", "tshark", "-q", "-n", "-i", topology.RouterToA, "-f", filter, "-w", path)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput("Capturing on", 20*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // dumpcap starts just after the banner
	return &capture{p: p}, nil
}

type capture struct{ p *netns.Process }

func (c *capture) Stop() (string, error) {
	err := c.p.StopWith(syscall.SIGINT, 10*time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("tshark: %w\n%s", err, c.p.Output())
	}
	return "", nil
}

// tshark runs tshark over a capture file in the host namespace.
func (d *demo) tshark(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("tshark %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// echoServer echoes lines on a dual-stack port, one thread per connection.
const echoServer = `
import socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
print("echo ready", flush=True)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// echoClient sends 20 marker lines, checks the echo, prints "held PORT" and
// keeps the connection open until killed.
const echoClient = `
import socket, sys, time
host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
msg = b"".join(("%s line %d\n" % (marker, i)).encode() for i in range(20))
s.sendall(msg)
got = b""
while len(got) < len(msg):
    d = s.recv(65536)
    if not d:
        sys.exit("echo closed early")
    got += d
if got != msg:
    sys.exit("echo differs")
print("held %d" % s.getsockname()[1], flush=True)
s.settimeout(None)
time.sleep(3600)
`
