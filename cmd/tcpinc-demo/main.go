// Command tcpinc-demo shows tcpinc end to end on one machine (as root): it
// builds the two-enclave topology in network namespaces (deploy/topology),
// starts tcpincd in gwA and gwB, runs real traffic between the enclaves and
// to a far host with no appliance, shows what the appliances report and what
// the untrusted link carries, checks it, and cleans up.
//
//	tcpinc-demo [--ci] [--prefix tci-] [--net 77] [--bin DIR] [--size BYTES] [--iperf SECONDS] [--tcpincd-config FILE]
//
// Steps:
//  1. build tcpincd and tcpincctl (or take them from --bin);
//  2. topology: hA —[gwA]— rtr —[gwB]— hB, and hF behind rtr with no appliance;
//     tshark on rtr's link to gwA (the untrusted link);
//  3. tcpincd in gwA and gwB, admin API on 127.0.0.1:9470 inside each gateway
//     namespace;
//  4. traffic: a file over HTTP from hB (python3 -m http.server) with its
//     sha256 checked, a held echo connection hA→hB, a short iperf3, and the
//     same file from hF (no appliance: plain TCP);
//  5. `tcpincctl flows` in both gateways, and the session IDs of the held
//     connection compared (equal IDs: no one in the middle);
//  6. the capture: TCP-ENO options (tcp.option_kind == 69) and whether a
//     marker string the hosts sent appears in any payload;
//  7. the status page loaded in headless Chromium inside gwA, when installed.
//
// Without --ci, and when stdin is a terminal, the demo waits for Enter before
// it removes the namespaces, so the topology can be explored. Cleanup always
// runs: on success, on failure and on Ctrl-C.
//
// Exit status: 0 when every check passed (the encrypted transfer succeeded
// and both appliances report the same session ID); 1 when a check failed, or
// "engine not available" when the daemon does not encrypt; 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tcpinc-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt Options
	fs.BoolVar(&opt.CI, "ci", false, "non-interactive: smaller transfer, no pause before cleanup")
	fs.StringVar(&opt.Prefix, "prefix", topology.DefaultPrefix, "namespace name prefix")
	fs.IntVar(&opt.Net, "net", 77, "N in the address plan 10.N.x.y / fd00:N:x::y")
	fs.StringVar(&opt.BinDir, "bin", "", "directory with tcpincd and tcpincctl (default: build them from this module)")
	fs.IntVar(&opt.FileSize, "size", 0, "bytes of the file served over HTTP (default 4 MiB with --ci, 32 MiB without)")
	fs.IntVar(&opt.IperfSeconds, "iperf", 0, "seconds of iperf3 (default 2 with --ci, 5 without)")
	fs.StringVar(&opt.DaemonConfig, "tcpincd-config", "", "configuration file for both tcpincd (--config); flags the demo sets win")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tcpinc-demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if !opt.CI && isTerminal(os.Stdin) {
		opt.Pause = func() { waitEnter(os.Stdin) }
	}
	opt.Out = stdout

	// Ctrl-C cancels the run; cleanup still happens (Run returns only after
	// it). Further signals are swallowed until then, so a second Ctrl-C
	// cannot leave namespaces behind.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	go func() {
		n := 0
		for s := range sig {
			if n == 0 {
				fmt.Fprintf(stderr, "\ntcpinc-demo: %v: stopping and cleaning up\n", s)
				cancel()
			} else {
				fmt.Fprintf(stderr, "tcpinc-demo: still cleaning up, please wait\n")
			}
			n++
		}
	}()

	if err := Run(ctx, opt); err != nil {
		fmt.Fprintf(stderr, "tcpinc-demo: %v\n", err)
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func waitEnter(r io.Reader) {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if err != nil || (n == 1 && b[0] == '\n') {
			return
		}
	}
}
