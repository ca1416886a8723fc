// Command tcpinc-bench runs the dataplane benchmark of issue 3 in one
// invocation on the standard topology (deploy/topology): iperf3 with 1 and 4
// streams and a 60-byte UDP rate test (trafgen) from hA to hB through
//
//	(a) kernel forwarding (a bridge in each gateway namespace),
//	(b) wireguard-go between the gateways (built from the Go module proxy into a temp dir),
//	(c) tcpincd with the XDP fast path,
//	(d) tcpincd with every frame through user space (--no-fast-path),
//
// and writes min/median/max, ratios to (a) and (b) and vm_busy as the
// "## Dataplane" section of bench/RESULTS.md (other sections are kept).
// Needs root. A full run takes about 7 minutes.
//
//	go run ./cmd/tcpinc-bench [-cases a,b,c,d,e] [-runs 3] [-time 10s] [-out bench/RESULTS.md]
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
	casesFlag := flag.String("cases", "a,b,c,d,e", "cases to run, by letter or name (kernel, wireguard-go, tcpinc-fast, tcpinc-user, tcpinc-crypt)")
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
	wgRecipe := flag.Bool("wg-recipe-offloads", false, "run (b) with the AF_XDP offload recipe instead of the veth defaults BASELINES.md used")
	repo := flag.String("repo", ".", "module root to build ./cmd/tcpincd from (e.g. a `git worktree` of the revision to measure)")
	out := flag.String("out", "bench/RESULTS.md", "markdown file whose \"## Dataplane\" section is replaced (empty: print only)")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	flag.Parse()

	cases, err := parseCases(*casesFlag)
	if err != nil {
		fail(err)
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
	cfg := bench.Config{
		Cases: cases, Runs: *runs, Streams: ns, Duration: *dur, Omit: *omit, PPSDuration: *ppsTime,
		TrafgenCPUs: *trafgenCPUs, MTU: *mtu, Prefix: *prefix, Net: *netN,
		WireguardVersion: *wgVersion, WireguardRecipeOffloads: *wgRecipe, RepoDir: *repo, TcpincdArgs: strings.Fields(*tcpincdArgs),
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

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tcpinc-bench:", err)
	os.Exit(1)
}
