// Command tcpincctl talks to a running tcpincd over its admin API.
//
//	tcpincctl [--admin ADDR|unix:PATH] [--token T] [--json] [-v] [--timeout D] COMMAND
//
//	status                         daemon, ports, counters
//	flows [--encrypted yes|no] [--state S] [--address A] [--port P]
//	                               every flow: tuple, encrypted or why not, role,
//	                               TEP/AEAD, session ID, key generation, bytes, age
//	                               (flows --help: the filters and the states)
//	flows --rate DURATION [filters]
//	                               two listings DURATION apart: each flow's rate
//	                               in and out, busiest first
//	flow ID                        one flow, and for an encrypted one where each
//	                               direction stands (bytes taken, framed, sent,
//	                               acknowledged, opened, delivered; the windows)
//	session SRC:PORT DST:PORT      the session ID of one connection, as SRC sees it
//	config get                     the running configuration (JSON)
//	config set FILE|-              replace it (fields left out keep their values)
//	cache flush [ADDR]             drop cached resumption state (one far side, or all)
//	decode --keylog FILE [-o DIR] CAPTURE
//	                               decrypt the capture's tcpcrypt connections with a
//	                               key log (tcpincd --key-log), offline: one file
//	                               of plaintext per direction in DIR
//
// --admin defaults to $TCPINC_ADMIN, else 127.0.0.1:9470 (tcpincd's default);
// --token to $TCPINC_TOKEN. --json prints the API's documents instead of text.
// -v shows full session IDs in the flows screen. --timeout (default 10s)
// bounds the command's exchange with the daemon (each of the two listings
// of flows --rate).
//
// Exit status: 0 on success, 1 when the daemon is unreachable or refuses the
// request (including a connection without a session ID), 2 for bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

// DefaultAdmin is tcpincd's default admin address (appliance/config).
const DefaultAdmin = "127.0.0.1:9470"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// usageError exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: tcpincctl [--admin ADDR|unix:PATH] [--token T] [--json] [-v] [--timeout D] COMMAND
commands:
  status
  flows [--encrypted yes|no] [--state S] [--address ADDR|PREFIX] [--port P] [--rate DURATION]
  flow ID
  session SRC:PORT DST:PORT
  config get
  config set FILE|-
  cache flush [ADDR]
  decode --keylog FILE [-o DIR] CAPTURE.pcapng
`

// flowsHelp is what flows --help prints.
func flowsHelp() string {
	return `usage: tcpincctl flows [--encrypted yes|no] [--state S] [--address ADDR|PREFIX] [--port P] [--rate DURATION]
the flows the engines track; with filters, those that pass them all. A plain
connection on the kernel fast path is listed until engine.plain_retention
(5 minutes) after its handshake, also when it lasts longer; tcpincctl status
counts the flows on the fast path.
  --encrypted yes|no     encrypted flows, or the others
  --state S              flows in state S, one of:
                         ` + strings.Join(admin.FlowStates, ", ") + `
  --address ADDR|PREFIX  flows with this address, or one in PREFIX, at either end
  --port P               flows with this port at either end
  --rate DURATION        list twice, DURATION (e.g. 2s) apart, and show the flows in
                         both listings busiest first, each with its rates in and out
                         in bit/s (powers of 1000): the plaintext it moved between
                         the two listings over the daemon's clock between them
                         (the difference of its age), not this host's; encrypted
                         flows only (a plain flow's bytes are not counted); with
                         --json, the flows with rate_seconds,
                         rate_in_bits_per_second and rate_out_bits_per_second
                         (null for a plain flow or counters that went back)
`
}

type cli struct {
	c       *admin.Client
	json    bool
	verbose bool
	timeout time.Duration
	stdin   io.Reader
	out     io.Writer
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("tcpincctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := fs.String("admin", orDefault(getenv("TCPINC_ADMIN"), DefaultAdmin), "admin API address: host:port or unix:/path")
	token := fs.String("token", getenv("TCPINC_TOKEN"), "bearer token (default $TCPINC_TOKEN)")
	asJSON := fs.Bool("json", false, "print JSON")
	verbose := fs.Bool("v", false, "verbose: full session IDs")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on the daemon after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c, err := admin.NewClient(*addr, *token)
	if err != nil {
		fmt.Fprintf(stderr, "tcpincctl: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cl := &cli{c: c, json: *asJSON, verbose: *verbose, timeout: *timeout, stdin: stdin, out: stdout}
	if err := cl.dispatch(ctx, fs.Args()); err != nil {
		return report(stderr, c.Addr(), err)
	}
	return 0
}

// report prints err for the operator and returns the exit status.
func report(stderr io.Writer, addr string, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tcpincctl: %v\n%s", err, usage)
		return 2
	}
	var unreachable *admin.UnreachableError
	var api *admin.APIError
	switch {
	case errors.As(err, &unreachable):
		fmt.Fprintf(stderr, "tcpincctl: %v\n(is tcpincd running with --admin %s?)\n", err, addr)
	case errors.As(err, &api) && api.Status == 401:
		fmt.Fprintf(stderr, "tcpincctl: %s: %v (give the daemon's token with --token or TCPINC_TOKEN)\n", addr, err)
	default:
		fmt.Fprintf(stderr, "tcpincctl: %v\n", err)
	}
	return 1
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (cl *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "status":
		if len(rest) != 0 {
			return usagef("status takes no arguments")
		}
		return cl.status(ctx)
	case "flows":
		return cl.flows(ctx, rest)
	case "flow":
		if len(rest) != 1 {
			return usagef("flow needs a flow ID")
		}
		id, err := strconv.ParseUint(rest[0], 10, 64)
		if err != nil {
			return usagef("flow ID must be a decimal number (got %q)", rest[0])
		}
		return cl.flow(ctx, id)
	case "session":
		if len(rest) != 2 {
			return usagef("session needs SRC:PORT DST:PORT")
		}
		return cl.session(ctx, rest[0], rest[1])
	case "config":
		switch {
		case len(rest) == 1 && rest[0] == "get":
			return cl.configGet(ctx)
		case len(rest) == 2 && rest[0] == "set":
			return cl.configSet(ctx, rest[1])
		}
		return usagef("config get | config set FILE|-")
	case "cache":
		if len(rest) >= 1 && len(rest) <= 2 && rest[0] == "flush" {
			addr := ""
			if len(rest) == 2 {
				addr = rest[1]
			}
			return cl.cacheFlush(ctx, addr)
		}
		return usagef("cache flush [ADDR]")
	case "decode":
		return cl.decode(rest)
	case "help":
		return usagef("help")
	}
	return usagef("unknown command %q", cmd)
}

func (cl *cli) printJSON(v any) error {
	enc := json.NewEncoder(cl.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (cl *cli) status(ctx context.Context) error {
	s, err := cl.c.Status(ctx)
	if err != nil {
		return err
	}
	if cl.json {
		return cl.printJSON(s)
	}
	writeStatus(cl.out, &s)
	return nil
}

func (cl *cli) flows(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flows", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	enc := fs.String("encrypted", "", "yes or no")
	state := fs.String("state", "", "flow state")
	addr := fs.String("address", "", "address or prefix of either end")
	port := fs.Uint("port", 0, "port of either end")
	rate := fs.Duration("rate", 0, "rates over two listings this far apart")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(cl.out, flowsHelp())
			return nil
		}
		return usagef("flows: %v", err)
	}
	if fs.NArg() != 0 {
		return usagef("flows: unexpected argument %q", fs.Arg(0))
	}
	q := admin.FlowQuery{State: *state, Address: *addr}
	switch strings.ToLower(*enc) {
	case "":
	case "yes", "true":
		b := true
		q.Encrypted = &b
	case "no", "false":
		b := false
		q.Encrypted = &b
	default:
		return usagef("flows: --encrypted must be yes or no (got %q)", *enc)
	}
	if *port > 65535 {
		return usagef("flows: --port must be between 1 and 65535 (got %d)", *port)
	}
	if *rate < 0 {
		return usagef("flows: --rate must be positive (got %s)", *rate)
	}
	q.Port = uint16(*port)
	flows, err := cl.c.AllFlows(ctx, q)
	if err != nil {
		return err
	}
	if *rate > 0 {
		return cl.flowRates(q, flows, *rate)
	}
	if cl.json {
		return cl.printJSON(flows)
	}
	writeFlows(cl.out, flows, cl.verbose)
	return nil
}

func (cl *cli) flow(ctx context.Context, id uint64) error {
	f, err := cl.c.Flow(ctx, id)
	if err != nil {
		return err
	}
	if cl.json {
		return cl.printJSON(f)
	}
	writeFlow(cl.out, &f)
	return nil
}

func (cl *cli) session(ctx context.Context, srcArg, dstArg string) error {
	src, err := netip.ParseAddrPort(srcArg)
	if err != nil {
		return usagef("session: SRC %q is not ADDR:PORT (IPv6: [ADDR]:PORT)", srcArg)
	}
	dst, err := netip.ParseAddrPort(dstArg)
	if err != nil {
		return usagef("session: DST %q is not ADDR:PORT (IPv6: [ADDR]:PORT)", dstArg)
	}
	s, err := cl.c.Session(ctx, src, dst)
	if err != nil {
		return err
	}
	if cl.json {
		return cl.printJSON(s)
	}
	writeSession(cl.out, &s)
	return nil
}

func (cl *cli) configGet(ctx context.Context) error {
	c, err := cl.c.Config(ctx)
	if err != nil {
		return err
	}
	// The same JSON in both modes: it is what config set takes.
	return cl.printJSON(c)
}

func (cl *cli) configSet(ctx context.Context, file string) error {
	var doc []byte
	var err error
	if file == "-" {
		doc, err = io.ReadAll(cl.stdin)
	} else {
		doc, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("config set: %w", err)
	}
	res, err := cl.c.PutConfig(ctx, doc)
	if err != nil {
		var api *admin.APIError
		if errors.As(err, &api) && api.Field != "" {
			return fmt.Errorf("config set: %s: refused, nothing changed: %s", file, api.ErrorBody.Error)
		}
		return fmt.Errorf("config set: %w", err)
	}
	if cl.json {
		return cl.printJSON(res)
	}
	writeApplied(cl.out, &res.Config)
	return nil
}

func (cl *cli) cacheFlush(ctx context.Context, addr string) error {
	if addr != "" {
		if _, err := netip.ParseAddr(addr); err != nil {
			return usagef("cache flush: %q is not an IP address", addr)
		}
	}
	res, err := cl.c.FlushCache(ctx, addr)
	if err != nil {
		return err
	}
	if cl.json {
		return cl.printJSON(res)
	}
	what := "every far side"
	if res.Address != "" {
		what = res.Address
	}
	fmt.Fprintf(cl.out, "flushed %d cached resumption %s for %s\n", res.Flushed, plural(res.Flushed, "entry", "entries"), what)
	return nil
}
