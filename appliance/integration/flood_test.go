package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/bench"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// floodPrefix names the namespaces of the SYN flood test.
const floodPrefix = "tfl-"

// Flood parameters: the flood's length, when the measured fetches start,
// the flow memory limit the appliances run with.
const (
	floodTime    = 30 * time.Second
	floodMeasure = 15 * time.Second
	floodMemory  = 256 << 20
	floodPort    = 8080
	fetchEvery   = 250 * time.Millisecond
)

// floodFetch is one legitimate HTTP fetch hA -> hB.
type floodFetch struct {
	at        time.Duration // start, from the flood's start
	took      time.Duration
	err       error
	encrypted bool
	why       string
}

// TestSYNFlood: a spoofed SYN+ENO flood (random source addresses and
// ports, trafgen at full speed from rtr) toward the web server on hB, for
// 30 s. Legitimate fetches from hA keep succeeding encrypted (at least 90 %
// of those started after 15 s), the far appliance's flow memory and RSS
// stay under the configured limit, and handshakes were evicted (the flood
// did reach the bound). Prints the flood figures.
func TestSYNFlood(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("trafgen"); err != nil {
		t.Fatalf("trafgen (netsniff-ng) not installed (.ci/run installs it): %v", err)
	}
	e := &encEnv{gw: map[topology.Node]*netns.Process{}}
	if e.daemon = os.Getenv("TEI_TCPINCD"); e.daemon == "" {
		e.daemon = buildDaemon(t)
	}
	var err error
	if e.tool, err = os.Executable(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "tcpincd.yaml")
	// No pinned maps: nothing here restarts a daemon.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("pin_dir: \"\"\nengine:\n  memory_limit: %d\n", floodMemory)), 0o644); err != nil {
		t.Fatal(err)
	}
	e.conf = cfg
	lockPrefix(t, floodPrefix)
	_ = topology.Down(floodPrefix)
	if e.topo, err = topology.Up(topology.Options{Prefix: floodPrefix, Net: 87, Mode: topology.ModeBare}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
			e.stopDaemon(t, gw)
		}
		if e.httpB != nil {
			_ = e.httpB.Stop()
		}
		if err := e.topo.Down(); err != nil {
			t.Errorf("topology down: %v", err)
		}
	})
	e.startDaemon(t, topology.GwA)
	e.startDaemon(t, topology.GwB)
	e.httpB = e.startTool(t, topology.HostB, "http-server", "http server ready", "-listen", fmt.Sprintf("[::]:%d", floodPort))
	hB := e.topo.Addr(topology.HostB).V4
	e.waitPing(t, hB)

	// Before: a few fetches for the normal latency, RSS, counters.
	var base []time.Duration
	for range 5 {
		f := e.floodFetch(hB, 0)
		if f.err != nil || !f.encrypted {
			t.Fatalf("fetch before the flood: %v (encrypted %v, %s)", f.err, f.encrypted, f.why)
		}
		base = append(base, f.took)
	}
	slices.Sort(base)
	baseLat := base[len(base)/2]
	pid := e.gw[topology.GwB].Pid()
	rss0 := rssOf(pid)
	st0, err := e.floodStatus(topology.GwB)
	if err != nil {
		t.Fatal(err)
	}
	rtr0, err := linkOf(e.topo, topology.Router, topology.RouterToB)
	if err != nil {
		t.Fatal(err)
	}
	hb0, err := linkOf(e.topo, topology.HostB, topology.HostIface)
	if err != nil {
		t.Fatal(err)
	}

	// The flood: SYN with TCP-ENO (X25519), MSS, SACK-permitted, window
	// scale; random source 198.18.x.y, random source port and ISN.
	hbLink, rtrLink := hb0, rtr0
	conf := trafgenSYN(hbLink.mac, rtrLink.mac, hB, floodPort)
	confPath := filepath.Join(t.TempDir(), "syn.trafgen")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// trafgen at full speed: on veth its TX ring flush can fail with
	// EAGAIN when the peer's queue is full, and trafgen then exits; it is
	// started again at once (restarts counted).
	var (
		tgMu       sync.Mutex
		tg         *netns.Process
		tgRestarts int
	)
	tgStop := make(chan struct{})
	tgDone := make(chan struct{})
	startTG := func() (*netns.Process, error) {
		return e.topo.Start(topology.Router, "trafgen", "trafgen", "--dev", topology.RouterToB, "--conf", confPath,
			"--cpus", "1", "--no-sock-mem", "--notouch-irq")
	}
	if tg, err = startTG(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	go func() {
		defer close(tgDone)
		for {
			tgMu.Lock()
			p := tg
			tgMu.Unlock()
			select {
			case <-tgStop:
				_ = p.StopWith(syscall.SIGINT, 5*time.Second)
				return
			case <-p.Done():
			}
			np, err := startTG()
			if err != nil {
				return
			}
			tgMu.Lock()
			tg, tgRestarts = np, tgRestarts+1
			tgMu.Unlock()
		}
	}()
	stopTG := sync.OnceFunc(func() { close(tgStop); <-tgDone })
	defer stopTG()

	// Legitimate fetches every 250 ms through the flood and 10 s after it;
	// RSS sampled meanwhile.
	var (
		mu      sync.Mutex
		fetches []floodFetch
		wg      sync.WaitGroup
		rssMax  = rss0
		stopped time.Duration
	)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if r := rssOf(pid); r > 0 {
					mu.Lock()
					rssMax = max(rssMax, r)
					mu.Unlock()
				}
			}
		}
	}()
	var rtr1, hb1 linkStats
	var st1 floodStatusDoc
	for at := time.Duration(0); at < floodTime+10*time.Second; at += fetchEvery {
		time.Sleep(time.Until(t0.Add(at)))
		if stopped == 0 && time.Since(t0) >= floodTime {
			rtr1, _ = linkOf(e.topo, topology.Router, topology.RouterToB)
			hb1, _ = linkOf(e.topo, topology.HostB, topology.HostIface)
			stopTG()
			stopped = time.Since(t0)
			st1, _ = e.floodStatus(topology.GwB)
		}
		wg.Add(1)
		go func(at time.Duration) {
			defer wg.Done()
			f := e.floodFetch(hB, at)
			mu.Lock()
			fetches = append(fetches, f)
			mu.Unlock()
		}(time.Since(t0))
	}
	wg.Wait()
	close(done)
	rssEnd := rssOf(pid)
	st2, err := e.floodStatus(topology.GwB)
	if err != nil {
		t.Fatal(err)
	}

	// Figures.
	secs := stopped.Seconds()
	offered := float64(rtr1.tx-rtr0.tx) / secs
	handled := float64(st1.rxOutside()-st0.rxOutside()) / secs
	toHost := float64(hb1.rx-hb0.rx) / secs
	slices.SortFunc(fetches, func(a, b floodFetch) int { return int(a.at - b.at) })
	var n, ok, enc int
	recovered := time.Duration(-1)
	for i, f := range fetches {
		if f.at >= floodMeasure && f.at < floodTime {
			n++
			if f.err == nil {
				ok++
				if f.encrypted {
					enc++
				}
			}
		}
		if f.at >= stopped && recovered < 0 && fetchGood(fetches[i:], baseLat) {
			recovered = f.at - stopped
		}
	}
	var failures []string
	for _, f := range fetches {
		if f.err != nil || !f.encrypted {
			failures = append(failures, fmt.Sprintf("at %.1fs: err %v, encrypted %v %s", f.at.Seconds(), f.err, f.encrypted, f.why))
		}
	}
	t.Logf("flood %.1f s: offered %.0f SYN/s (rtr toB tx; trafgen restarted %d times), appliance gwB handled %.0f frames/s from outside, hB received %.0f frames/s",
		secs, offered, tgRestarts, handled, toHost)
	t.Logf("legitimate fetches started %v-%v into the flood: %d, succeeded %d (%.1f %%), encrypted %d (%.1f %%); all fetches %d",
		floodMeasure, floodTime, n, ok, pct(ok, n), enc, pct(enc, n), len(fetches))
	t.Logf("gwB tcpincd RSS: before %.1f MiB, max %.1f MiB, after %.1f MiB (limit %d MiB); flow memory peak %.1f MiB, now %.1f MiB; handshakes evicted %d; fallbacks %v; drops %v",
		mib(rss0), mib(rssMax), mib(rssEnd), floodMemory>>20, mib(int64(st2.Counters.FlowMemoryPeak)), mib(int64(st2.Counters.FlowMemory)),
		st2.Counters.Handshakes["evicted"], st2.Counters.Fallbacks, st2.Counters.Drops)
	t.Logf("fetch latency before the flood %v; recovered (this and every later fetch encrypted and within 2x that + 20 ms) %v after the flood stopped",
		baseLat.Round(time.Millisecond), recovered.Round(time.Millisecond))
	if len(failures) > 0 {
		t.Logf("failed or plain fetches (%d):\n%s", len(failures), strings.Join(failures, "\n"))
	}

	if n == 0 || enc*10 < n*9 {
		t.Errorf("%d of %d fetches started after %v succeeded encrypted, want at least 90 %%", enc, n, floodMeasure)
	}
	if st2.Counters.FlowMemoryPeak > floodMemory || st2.Counters.FlowMemoryLimit != floodMemory {
		t.Errorf("flow memory peak %d bytes, limit %d (configured %d)", st2.Counters.FlowMemoryPeak, st2.Counters.FlowMemoryLimit, floodMemory)
	}
	if rssMax > floodMemory {
		t.Errorf("gwB's tcpincd RSS reached %.1f MiB, over the %d MiB limit", mib(rssMax), floodMemory>>20)
	}
	if st2.Counters.Handshakes["evicted"] == 0 {
		t.Errorf("no handshake evicted: the flood (%.0f SYN/s offered) did not reach the handshake bound", offered)
	}
}

// fetchGood reports whether every fetch in fs succeeded encrypted within
// twice the normal latency plus 20 ms.
func fetchGood(fs []floodFetch, base time.Duration) bool {
	for _, f := range fs {
		if f.err != nil || !f.encrypted || f.took > 2*base+20*time.Millisecond {
			return false
		}
	}
	return true
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// floodFetch fetches 20000 bytes from hB's web server with curl in hA and
// asks gwA's admin API whether the connection was encrypted.
func (e *encEnv) floodFetch(hB netip.Addr, at time.Duration) floodFetch {
	f := floodFetch{at: at}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	t0 := time.Now()
	out, err := e.topo.Command(ctx, topology.HostA, "curl", "-sS", "-o", "/dev/null", "--max-time", "10",
		"-w", "%{local_port} %{http_code} %{size_download}", fmt.Sprintf("http://%s:%d/20000", hB, floodPort)).CombinedOutput()
	f.took = time.Since(t0)
	w := strings.Fields(string(out))
	if err != nil || len(w) != 3 || w[1] != "200" || w[2] != "20000" {
		f.err = fmt.Errorf("curl: %v: %s", err, strings.TrimSpace(string(out)))
		return f
	}
	port, _ := strconv.Atoi(w[0])
	fl, err := e.flow(topology.GwA, uint16(port), floodPort)
	if err != nil {
		f.why = err.Error()
		return f
	}
	f.encrypted, f.why = fl.Encrypted, fl.FallbackReason
	return f
}

// floodStatusDoc is the part of /api/v1/status the flood test reads.
type floodStatusDoc struct {
	Counters struct {
		Ports []struct {
			Port      string `json:"port"`
			Direction string `json:"direction"`
			Frames    uint64 `json:"frames"`
		} `json:"ports"`
		Handshakes      map[string]uint64 `json:"handshakes"`
		Fallbacks       map[string]uint64 `json:"fallbacks"`
		Drops           map[string]uint64 `json:"drops"`
		FlowMemory      uint64            `json:"flow_memory_bytes"`
		FlowMemoryPeak  uint64            `json:"flow_memory_peak_bytes"`
		FlowMemoryLimit uint64            `json:"flow_memory_limit_bytes"`
	} `json:"counters"`
}

func (d floodStatusDoc) rxOutside() uint64 {
	for _, p := range d.Counters.Ports {
		if p.Port == "outside" && p.Direction == "rx" {
			return p.Frames
		}
	}
	return 0
}

func (e *encEnv) floodStatus(gw topology.Node) (floodStatusDoc, error) {
	var d floodStatusDoc
	err := e.admin(gw, "/api/v1/status", &d)
	return d, err
}

// rssOf is a process's resident set in bytes (0 when it cannot be read).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

type linkStats struct {
	mac    string
	rx, tx uint64
}

// linkOf reads an interface's MAC and packet counters.
func linkOf(topo *topology.Topology, n topology.Node, iface string) (linkStats, error) {
	out, err := topo.Run(n, "ip", "-j", "-s", "link", "show", "dev", iface)
	if err != nil {
		return linkStats{}, fmt.Errorf("ip link %s in %s: %v: %s", iface, n, err, out)
	}
	li, err := bench.ParseLinkJSON([]byte(out))
	if err != nil {
		return linkStats{}, fmt.Errorf("ip link %s in %s: %v", iface, n, err)
	}
	return linkStats{mac: li.MAC.String(), rx: li.RxPackets, tx: li.TxPackets}, nil
}

// trafgenSYN is a trafgen configuration of a SYN with TCP-ENO (RFC 8547
// §4.1, one X25519 suboption, b = 0) to dst:port from a random 198.18.x.y
// address (RFC 2544 benchmarking space), random port and ISN.
func trafgenSYN(dstMAC, srcMAC string, dst netip.Addr, port int) string {
	hexMAC := func(m string) string {
		return "0x" + strings.ReplaceAll(m, ":", ", 0x")
	}
	d := dst.As4()
	return fmt.Sprintf(`{
  %s,
  %s,
  0x08, 0x00,
  0x45, 0x00, 0x00, 0x38,
  drnd(2), 0x40, 0x00,
  0x40, 0x06, csumip(14, 33),
  198, 18, drnd(2),
  %d, %d, %d, %d,
  drnd(2), %d, %d,
  drnd(4),
  0x00, 0x00, 0x00, 0x00,
  0x90, 0x02, 0xfa, 0xf0,
  csumtcp(14, 34), 0x00, 0x00,
  0x02, 0x04, 0x05, 0xb4,
  0x04, 0x02,
  0x01, 0x03, 0x03, 0x07,
  0x45, 0x03, 0x23,
  0x01, 0x01, 0x01
}
`, hexMAC(dstMAC), hexMAC(srcMAC), d[0], d[1], d[2], d[3], port>>8, port&0xff)
}
