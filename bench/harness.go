package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// DefaultWireguardVersion is the wireguard-go the first anchors were measured
// with (docs/performance.md).
const DefaultWireguardVersion = "v0.0.0-20260522210424-ecfc5a8d5446"

// Config is one invocation of the harness. Zero fields take the defaults of
// issue 3 (3 runs of iperf3 -t 10 -O 1 at 1 and 4 streams, 5 s trafgen runs).
type Config struct {
	Cases       []Case
	Runs        int
	Streams     []int
	Duration    time.Duration
	Omit        time.Duration
	PPSDuration time.Duration
	PPSWarmup   time.Duration
	TrafgenCPUs int
	FrameLen    int
	MTU         int
	// Prefix and Net of the bench's topology (default "tcb-", 78), so the
	// bench can run beside the demo (tci-) and the tests (tt-).
	Prefix string
	Net    int
	// RepoDir is the module root, for `go build ./cmd/tcpincd` (default ".").
	RepoDir string
	// TcpincdArgs are extra arguments for both tcpincd instances.
	TcpincdArgs      []string
	WireguardVersion string
	// WireguardRecipeOffloads runs (b) with the AF_XDP offload recipe too.
	// By default (b) keeps the veth offload defaults (TSO/GSO on), as
	// the first anchors were measured: wireguard-go's TUN path uses GSO/GRO.
	WireguardRecipeOffloads bool
	// IdleSample is how long the harness samples vm_busy with no traffic
	// before each case, to show load from outside the bench (default 2 s).
	IdleSample time.Duration
	// Self is the bench binary, re-executed in hA and hB as the
	// connection-rate client and server (ConnTool). Empty: no connection
	// measurements.
	Self string
	// ConnDuration is each connection-rate run; ConnConcurrency the
	// connections in flight; FirstByteCount the sequential connections of
	// the first-byte measurement (defaults 5 s, 16, 200).
	ConnDuration    time.Duration
	ConnConcurrency int
	FirstByteCount  int
	// X25519Time is how long the X25519 limit is measured, per worker count
	// (default 3 s); negative skips it.
	X25519Time time.Duration
	// ProfileDir, when set, receives a CPU profile of gwA's tcpincd over
	// the first connection-rate run of each variant (its admin API's
	// /debug/pprof/profile), for `go tool pprof`.
	ProfileDir string
	// Command is the command line recorded in the report.
	Command string
	Logf    func(format string, args ...any)
}

func (c *Config) fill() {
	if len(c.Cases) == 0 {
		c.Cases = AllCases
	}
	if c.Runs == 0 {
		c.Runs = 3
	}
	if len(c.Streams) == 0 {
		c.Streams = []int{1, 4}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Omit == 0 {
		c.Omit = time.Second
	}
	if c.PPSDuration == 0 {
		c.PPSDuration = 5 * time.Second
	}
	if c.PPSWarmup == 0 {
		c.PPSWarmup = time.Second
	}
	if c.TrafgenCPUs == 0 {
		c.TrafgenCPUs = 1
	}
	if c.FrameLen == 0 {
		c.FrameLen = 60
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.Prefix == "" {
		c.Prefix = "tcb-"
	}
	if c.Net == 0 {
		c.Net = 78
	}
	if c.RepoDir == "" {
		c.RepoDir = "."
	}
	if c.WireguardVersion == "" {
		c.WireguardVersion = DefaultWireguardVersion
	}
	if c.IdleSample == 0 {
		c.IdleSample = 2 * time.Second
	}
	if c.ConnDuration == 0 {
		c.ConnDuration = 5 * time.Second
	}
	if c.ConnConcurrency == 0 {
		c.ConnConcurrency = 16
	}
	if c.FirstByteCount == 0 {
		c.FirstByteCount = 200
	}
	if c.X25519Time == 0 {
		c.X25519Time = 3 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Run measures every configured case in turn on a fresh topology each and
// returns the report. Only a setup failure of the harness itself (no root,
// no temp dir) is an error; a case that cannot run is reported as skipped.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.fill()
	if err := netns.RequireRoot(); err != nil {
		return nil, err
	}
	for _, tool := range []string{"ip", "nft", "ethtool", "iperf3", "trafgen", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not installed: %w", tool, err)
		}
	}
	tmp, err := os.MkdirTemp("", "tcpinc-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// A topology left by a crashed bench goes first.
	if err := topology.Down(cfg.Prefix); err != nil {
		return nil, err
	}

	h := &harness{cfg: cfg, tmp: tmp}
	rep := &Report{
		Command: cfg.Command,
		Date:    time.Now(),
		Machine: machine(),
		Settings: Settings{
			Runs: cfg.Runs, Streams: cfg.Streams, Duration: cfg.Duration, Omit: cfg.Omit,
			PPSDuration: cfg.PPSDuration, PPSWarmup: cfg.PPSWarmup, TrafgenCPUs: cfg.TrafgenCPUs,
			FrameLen: cfg.FrameLen, MTU: cfg.MTU,
			ConnDuration: cfg.ConnDuration, ConnConcurrency: cfg.ConnConcurrency, FirstByteCount: cfg.FirstByteCount,
			Offloads: "`tx off tso off gso off gro on` on hA:eth0, rtr:toA, rtr:toB, hB:eth0 (the AF_XDP recipe of docs/performance.md); " +
				"a pfifo_fast qdisc on those and on the gateway ports",
		},
	}
	if cfg.X25519Time > 0 {
		rep.X25519 = h.x25519(ctx)
	}
	for _, c := range cfg.Cases {
		if ctx.Err() != nil {
			rep.Results = append(rep.Results, &Result{Case: c, Skipped: "interrupted"})
			continue
		}
		cfg.Logf("== case (%s) %s", c.ID, c.Name)
		res := h.runCase(ctx, c)
		if res.Skipped != "" {
			cfg.Logf("   not run: %s", res.Skipped)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func machine() string {
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("Linux %s, %d CPUs, %s", kernel, runtime.NumCPU(), runtime.Version())
}

type harness struct {
	cfg Config
	tmp string

	wgBin, wgErr string
	builds       map[string]*tcpincdBuild // by module root
}

// tcpincdBuild is ./cmd/tcpincd built from one module root.
type tcpincdBuild struct {
	bin, rev, skip string
}

// gateway is whatever joins the ports of gwA/gwB for one case.
type gateway interface {
	// check reports whether the gateway is still healthy (a daemon that died
	// mid-run invalidates the numbers).
	check() error
	// pids are the appliance processes in gwA and gwB (none for the
	// kernel's forwarding), whose cost appcost.go measures.
	pids() []int
}

type noGateway struct{}

func (noGateway) check() error { return nil }
func (noGateway) pids() []int  { return nil }

func procPids(procs []*netns.Process) []int {
	var out []int
	for _, p := range procs {
		out = append(out, p.Pid())
	}
	return out
}

func (h *harness) runCase(ctx context.Context, c Case) *Result {
	res := &Result{Case: c, TCP: map[int]*TCPRuns{}}
	mode := topology.ModeBridge
	defaultOffloads := false
	switch {
	case c.Wireguard:
		mode = topology.ModeRouted
		defaultOffloads = !h.cfg.WireguardRecipeOffloads
		if defaultOffloads {
			res.Notes = append(res.Notes, "veth offload defaults (TSO/GSO/checksum offload on), as in the first anchor measurements; `-wg-recipe-offloads` runs it with the recipe")
		}
		if err := h.buildWireguard(ctx); err != nil {
			res.Skipped = err.Error()
			return res
		}
	case c.Tcpincd != nil:
		mode = topology.ModeBare
		if _, err := h.buildTcpincd(ctx, h.repoOf(c.Tcpincd)); err != nil {
			res.Skipped = err.Error()
			return res
		}
	}
	topo, err := topology.Up(topology.Options{Prefix: h.cfg.Prefix, Net: h.cfg.Net, Mode: mode, MTU: h.cfg.MTU, DefaultOffloads: defaultOffloads})
	if err != nil {
		res.Skipped = err.Error()
		return res
	}
	var gw gateway = noGateway{}
	defer func() {
		if err := topo.Down(); err != nil {
			res.Errors = append(res.Errors, "topology down: "+err.Error())
		}
		// tcpincd logs its counters on shutdown (handshakes, flows).
		if tg, ok := gw.(*tcpincdGateway); ok {
			if c := engineCounters(tg.procs[0].Output()); c != "" {
				res.Notes = append(res.Notes, "gwA's daemon at exit: "+c)
			}
		}
	}()

	switch {
	case c.Wireguard:
		gw, err = h.startWireguard(topo, res)
	case c.Tcpincd != nil:
		gw, err = h.startTcpincd(topo, res, c.Tcpincd)
	}
	if err != nil {
		res.Skipped = err.Error()
		return res
	}
	if err := waitPing(topo, 15*time.Second); err != nil {
		res.Skipped = "no connectivity hA -> hB: " + err.Error()
		return res
	}
	if idle, err := idleBusy(ctx, h.cfg.IdleSample); err == nil {
		h.cfg.Logf("   vm_busy with no bench traffic: %.0f%%", idle)
		res.Notes = append(res.Notes, fmt.Sprintf("vm_busy with no bench traffic just before the case: %.0f %% (load from outside the bench)", idle))
	}
	srv, err := topo.Start(topology.HostB, "iperf3-server", "iperf3", "-s", "-i", "0", "--forceflush")
	if err != nil {
		res.Skipped = err.Error()
		return res
	}
	if err := srv.WaitOutput("Server listening", 10*time.Second); err != nil {
		res.Skipped = err.Error()
		return res
	}
	dst := topo.Addr(topology.HostB).V4
	for _, n := range h.cfg.Streams {
		runs := &TCPRuns{}
		res.TCP[n] = runs
		for i := 0; i < h.cfg.Runs && ctx.Err() == nil; i++ {
			probe := h.startCost(ctx, gw.pids(), hostCounts(topo))
			r, busy, err := h.iperf(ctx, topo, dst, n)
			cost := probe.finish(hostCounts(topo))
			if err == nil {
				err = gw.check()
			}
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("iperf3 -P %d run %d: %v", n, i+1, err))
				continue
			}
			h.cfg.Logf("   iperf3 -P %d run %d: %.2f Gbit/s, %d retransmits, vm_busy %.0f%%, appliance CPU %.2f s/GB, %.3f syscalls/frame",
				n, i+1, r.ReceivedBps/1e9, r.Retransmits, busy, cost.cpuPerGB, cost.syscallsPerFrame)
			runs.Gbps = append(runs.Gbps, r.ReceivedBps/1e9)
			runs.Busy = append(runs.Busy, busy)
			runs.Retransmits = append(runs.Retransmits, r.Retransmits)
			runs.CPUPerGB = append(runs.CPUPerGB, cost.cpuPerGB)
			runs.SyscallsPerFrame = append(runs.SyscallsPerFrame, cost.syscallsPerFrame)
		}
	}
	res.PPS = &PPSRuns{}
	for i := 0; i < h.cfg.Runs && ctx.Err() == nil; i++ {
		offered, fwd, busy, err := h.pps(ctx, topo)
		if err == nil {
			err = gw.check()
		}
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("trafgen run %d: %v", i+1, err))
			continue
		}
		h.cfg.Logf("   trafgen run %d: offered %.0f pps, forwarded %.0f pps, vm_busy %.0f%%", i+1, offered, fwd, busy)
		res.PPS.Offered = append(res.PPS.Offered, offered)
		res.PPS.Forwarded = append(res.PPS.Forwarded, fwd)
		res.PPS.Busy = append(res.PPS.Busy, busy)
	}
	if h.cfg.Self != "" && ctx.Err() == nil {
		h.connCase(ctx, topo, res, gw)
	}
	return res
}

func idleBusy(ctx context.Context, d time.Duration) (float64, error) {
	before, err := ReadCPUTimes()
	if err != nil {
		return 0, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, err := ReadCPUTimes()
	if err != nil {
		return 0, err
	}
	return BusyPercent(before, after), nil
}

func waitPing(topo *topology.Topology, timeout time.Duration) error {
	dst := topo.Addr(topology.HostB).V4.String()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if _, err = topo.Run(topology.HostA, "ping", "-n", "-c", "1", "-W", "1", dst); err == nil {
			return nil
		}
	}
	return err
}

// iperf runs one iperf3 client hA -> dst and returns its result and vm_busy.
func (h *harness) iperf(ctx context.Context, topo *topology.Topology, dst netip.Addr, streams int) (IperfResult, float64, error) {
	total := h.cfg.Duration + h.cfg.Omit
	ctx, cancel := context.WithTimeout(ctx, total+30*time.Second)
	defer cancel()
	before, err := ReadCPUTimes()
	if err != nil {
		return IperfResult{}, 0, err
	}
	cmd := topo.Command(ctx, topology.HostA, "iperf3", "-c", dst.String(), "-J",
		"-t", fmt.Sprint(int(h.cfg.Duration.Seconds())), "-O", fmt.Sprint(int(h.cfg.Omit.Seconds())),
		"-P", fmt.Sprint(streams))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	after, err := ReadCPUTimes()
	if err != nil {
		return IperfResult{}, 0, err
	}
	r, perr := ParseIperf(stdout.Bytes())
	if perr != nil {
		return IperfResult{}, 0, errors.Join(perr, runErr, errors.New(strings.TrimSpace(stderr.String())))
	}
	return r, BusyPercent(before, after), nil
}

// hostCounts reads what appcost.go divides by: hB:eth0's received bytes
// and hA's and hB's TCP OutSegs.
func hostCounts(topo *topology.Topology) func() (hostCount, error) {
	return func() (hostCount, error) {
		var c hostCount
		b, err := linkInfo(topo, topology.HostB, topology.HostIface)
		if err != nil {
			return c, err
		}
		c.bytes = b.RxBytes
		for _, n := range []topology.Node{topology.HostA, topology.HostB} {
			out, err := topo.Run(n, "cat", "/proc/net/snmp")
			if err != nil {
				return c, fmt.Errorf("/proc/net/snmp in %s: %v: %s", n, err, out)
			}
			segs, err := ParseTCPOutSegs(out)
			if err != nil {
				return c, err
			}
			c.segs += segs
		}
		return c, nil
	}
}

func linkInfo(topo *topology.Topology, n topology.Node, iface string) (LinkInfo, error) {
	out, err := topo.Run(n, "ip", "-s", "-j", "link", "show", "dev", iface)
	if err != nil {
		return LinkInfo{}, err
	}
	return ParseLinkJSON([]byte(out))
}

// shortTxQueue sets dev's txqueuelen in node n to qlen and returns what
// puts the old one back.
func shortTxQueue(topo *topology.Topology, n topology.Node, dev string, qlen int) (func(), error) {
	out, err := topo.Run(n, "cat", "/sys/class/net/"+dev+"/tx_queue_len")
	if err != nil {
		return nil, fmt.Errorf("txqueuelen of %s: %v: %s", dev, err, out)
	}
	old := strings.TrimSpace(out)
	if out, err := topo.Run(n, "ip", "link", "set", dev, "txqueuelen", fmt.Sprint(qlen)); err != nil {
		return nil, fmt.Errorf("txqueuelen of %s: %v: %s", dev, err, out)
	}
	return func() { _, _ = topo.Run(n, "ip", "link", "set", dev, "txqueuelen", old) }, nil
}

// pps runs trafgen on hA toward hB and returns offered and forwarded frames
// per second (hA:eth0 TX, hB:eth0 RX) over PPSDuration after a warm-up.
func (h *harness) pps(ctx context.Context, topo *topology.Topology) (offered, fwd, busy float64, err error) {
	a := topo.Addr(topology.HostA)
	b := topo.Addr(topology.HostB)
	// The next hop's MAC: rtr:toA behind the bumps, gwA:in when it routes.
	nhNode, nhIf := topology.Router, topology.RouterToA
	if topo.Options().Mode == topology.ModeRouted {
		nhNode, nhIf = topology.GwA, topology.InsidePort
	}
	nh, err := linkInfo(topo, nhNode, nhIf)
	if err != nil {
		return 0, 0, 0, err
	}
	src, err := linkInfo(topo, topology.HostA, topology.HostIface)
	if err != nil {
		return 0, 0, 0, err
	}
	conf, err := TrafgenConfig(nh.MAC, src.MAC, a.V4, b.V4, h.cfg.FrameLen)
	if err != nil {
		return 0, 0, 0, err
	}
	path := filepath.Join(h.tmp, "udp60.trafgen")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return 0, 0, 0, err
	}
	// trafgen exits when its TX ring's flush fails with EAGAIN (netsniff-ng
	// retries only ENOBUFS): that happens when the frames waiting in hA's
	// qdisc hold its socket's send buffer, behind a gateway that takes
	// frames slower than trafgen makes them. A short queue drops the
	// excess at the qdisc instead, which frees the buffer; "offered" counts
	// frames the device sent, so it means the same.
	restore, err := shortTxQueue(topo, topology.HostA, topology.HostIface, 16)
	if err != nil {
		return 0, 0, 0, err
	}
	defer restore()
	p, err := topo.Start(topology.HostA, "trafgen", "trafgen", "--dev", topology.HostIface, "--conf", path,
		"--cpus", fmt.Sprint(h.cfg.TrafgenCPUs), "--no-sock-mem", "--notouch-irq")
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.StopWith(syscall.SIGINT, 5*time.Second)
	select {
	case <-time.After(h.cfg.PPSWarmup):
	case <-p.Done():
		return 0, 0, 0, fmt.Errorf("trafgen exited: %s", p.Output())
	case <-ctx.Done():
		return 0, 0, 0, ctx.Err()
	}
	tx0, err := linkInfo(topo, topology.HostA, topology.HostIface)
	if err != nil {
		return 0, 0, 0, err
	}
	rx0, err := linkInfo(topo, topology.HostB, topology.HostIface)
	if err != nil {
		return 0, 0, 0, err
	}
	cpu0, err := ReadCPUTimes()
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	select {
	case <-time.After(h.cfg.PPSDuration):
	case <-p.Done():
		return 0, 0, 0, fmt.Errorf("trafgen exited: %s", p.Output())
	case <-ctx.Done():
		return 0, 0, 0, ctx.Err()
	}
	tx1, err := linkInfo(topo, topology.HostA, topology.HostIface)
	if err != nil {
		return 0, 0, 0, err
	}
	rx1, err := linkInfo(topo, topology.HostB, topology.HostIface)
	if err != nil {
		return 0, 0, 0, err
	}
	secs := time.Since(t0).Seconds()
	cpu1, err := ReadCPUTimes()
	if err != nil {
		return 0, 0, 0, err
	}
	if tx1.TxPackets == tx0.TxPackets {
		return 0, 0, 0, fmt.Errorf("trafgen sent nothing: %s", p.Output())
	}
	return float64(tx1.TxPackets-tx0.TxPackets) / secs, float64(rx1.RxPackets-rx0.RxPackets) / secs, BusyPercent(cpu0, cpu1), nil
}
