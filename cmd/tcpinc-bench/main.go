// Command tcpinc-bench runs the dataplane benchmark of issues 3 and 4 in one
// invocation on the standard topology (deploy/topology): iperf3 with 1 and 4
// streams, a 60-byte UDP rate test (trafgen), new connections per second
// and first-byte delay (its own client and server, this binary re-executed
// as "conn-client" in hA and "conn-server" in hB) from hA to hB through
//
//	(a) kernel forwarding (a bridge in each gateway namespace),
//	(b) wireguard-go between the gateways (built from the Go module proxy into a temp dir),
//	(c) tcpincd with the XDP fast path,
//	(d) tcpincd with every frame through user space (--no-fast-path),
//	(e) tcpincd with its TCP-ENO/tcpcrypt engine on (connections measured
//	    with resumption off, then on, switched over the admin API),
//
// beside the X25519 keygen+ECDH rate on one core and on all,
// and writes min/median/max, ratios to (a) and (b) and vm_busy as the
// "## Dataplane" section of bench/RESULTS.md (other sections are kept).
// Needs root. A full run takes about 10 minutes.
//
// Beside each iperf3 run it measures the appliance processes' CPU seconds
// per GB and system calls per frame (bench/appcost.go says how); -json FILE
// writes every figure as min/median/max per case.
//
//	go run ./cmd/tcpinc-bench [-cases a,b,c,d,e] [-runs 3] [-time 10s] [-out bench/RESULTS.md] [-json FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/bench"
)

func main() {
	// The connection-rate client and server: the harness re-executes this
	// binary in hA and hB.
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "conn-") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := bench.ConnTool(ctx, os.Args[1:], os.Stdout)
		stop()
		if err != nil {
			fail(err)
		}
		return
	}
	var ids, names []string
	for _, c := range bench.AllCases {
		ids, names = append(ids, c.ID), append(names, c.Name)
	}
	casesFlag := flag.String("cases", strings.Join(ids, ","), "cases to run, by letter or name ("+strings.Join(names, ", ")+")")
	runs := flag.Int("runs", 3, "runs per measurement")
	streams := flag.String("streams", "1,4", "iperf3 parallel stream counts")
	dur := flag.Duration("time", 10*time.Second, "iperf3 -t")
	omit := flag.Duration("omit", time.Second, "iperf3 -O")
	ppsTime := flag.Duration("pps-time", 5*time.Second, "trafgen measuring window per run")
	trafgenCPUs := flag.Int("trafgen-cpus", 1, "trafgen -P (sender processes)")
	mtu := flag.Int("mtu", 1500, "MTU of every link")
	prefix := flag.String("prefix", "tcb-", "namespace prefix of the bench topology")
	netN := flag.Int("net", 78, "N in the bench topology's 10.N.x.y addresses")
	wgVersion := flag.String("wireguard-version", bench.DefaultWireguardVersion, "golang.zx2c4.com/wireguard version (or latest)")
	tcpincdArgs := flag.String("tcpincd-args", "", "extra arguments for tcpincd (space separated)")
	wgRecipe := flag.Bool("wg-recipe-offloads", false, "run (b) with the AF_XDP offload recipe instead of the veth defaults the first anchors used")
	repo := flag.String("repo", ".", "module root to build ./cmd/tcpincd from (e.g. a `git worktree` of the revision to measure)")
	out := flag.String("out", "bench/RESULTS.md", "markdown file whose \"## Dataplane\" section is replaced (empty: print only)")
	baseline := flag.String("baseline", "", "module root of a baseline revision (e.g. a `git worktree` of main): each tcpincd case also runs, just before, with tcpincd built from it, as case <letter>0")
	profDir := flag.String("profile", "", "directory for CPU profiles of gwA's tcpincd over the first connection-rate run of each variant")
	jsonOut := flag.String("json", "", "also write every median (with min, max and the runs) per case to this JSON file")
	connTime := flag.Duration("conn-time", 5*time.Second, "length of each connection-rate run")
	connConc := flag.Int("conn-concurrency", 16, "connections in flight in the connection-rate runs")
	fbCount := flag.Int("first-byte-count", 200, "sequential connections of the first-byte measurement")
	noConn := flag.Bool("no-conn", false, "skip the connection-rate, first-byte and X25519 measurements")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	flag.Parse()

	cases, err := parseCases(*casesFlag)
	if err != nil {
		fail(err)
	}
	if *baseline != "" {
		cases = withBaseline(cases, *baseline)
	}
	var ns []int
	for _, s := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 128 {
			fail(fmt.Errorf("-streams: bad count %q", s))
		}
		ns = append(ns, n)
	}
	if *runs < 1 {
		fail(errors.New("-runs must be >= 1"))
	}
	if *connConc < 1 || *fbCount < 1 || *connTime <= 0 {
		fail(errors.New("-conn-concurrency, -first-byte-count and -conn-time must be positive"))
	}
	self := ""
	x25519Time := time.Duration(0)
	if *noConn {
		x25519Time = -1
	} else if self, err = os.Executable(); err != nil {
		fail(fmt.Errorf("own executable for the connection client and server: %w", err))
	}
	cfg := bench.Config{
		Cases: cases, Runs: *runs, Streams: ns, Duration: *dur, Omit: *omit, PPSDuration: *ppsTime,
		TrafgenCPUs: *trafgenCPUs, MTU: *mtu, Prefix: *prefix, Net: *netN,
		WireguardVersion: *wgVersion, WireguardRecipeOffloads: *wgRecipe, RepoDir: *repo, TcpincdArgs: strings.Fields(*tcpincdArgs),
		Self: self, ProfileDir: *profDir, ConnDuration: *connTime, ConnConcurrency: *connConc, FirstByteCount: *fbCount, X25519Time: x25519Time,
		Command: strings.Join(append([]string{"go run ./cmd/tcpinc-bench"}, os.Args[1:]...), " "),
	}
	if !*quiet {
		cfg.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fail(err)
	}
	md := rep.Markdown()
	fmt.Print(md)
	if *jsonOut != "" {
		js, err := rep.JSON()
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(*jsonOut, append(js, '\n'), 0o644); err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *jsonOut)
	}
	if *out == "" {
		return
	}
	old, err := os.ReadFile(*out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fail(err)
	}
	if err := os.WriteFile(*out, []byte(bench.ReplaceSection(string(old), "## Dataplane", md)), 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "wrote the Dataplane section of %s\n", *out)
}

func parseCases(s string) ([]bench.Case, error) {
	var out []bench.Case
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, c := range bench.AllCases {
			if f == c.ID || f == c.Name {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("-cases: unknown case %q", f)
		}
	}
	return out, nil
}

// withBaseline puts before every tcpincd case the same case with tcpincd
// built from the baseline module root, so one run compares two revisions
// under the same load.
func withBaseline(cases []bench.Case, repo string) []bench.Case {
	var out []bench.Case
	for _, c := range cases {
		if c.Tcpincd != nil {
			b := c
			tc := *c.Tcpincd
			tc.Repo = repo
			b.ID, b.Name, b.Tcpincd = c.ID+"0", c.Name+"@baseline", &tc
			b.Desc = c.Desc + "; tcpincd built from the -baseline tree"
			out = append(out, b)
		}
		out = append(out, c)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tcpinc-bench:", err)
	os.Exit(1)
}
