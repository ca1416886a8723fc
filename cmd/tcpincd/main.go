// Command tcpincd is the tcpinc appliance daemon: a layer-2 bump between two
// interfaces of the current network namespace.
//
//	tcpincd --inside IFACE --outside IFACE [--config FILE] [--admin ADDR] [--admin-token-file FILE] [--no-fast-path]
//	        [--backend auto|afxdp|afpacket] [--state-dir DIR] [--key-log FILE --key-log-enabled]
//	tcpincd --version
//
// Flags override the configuration file. On start it takes a lock per
// interface (under /run/tcpincd, released by the kernel if it dies), so a
// second copy on the same interfaces refuses to start, then detaches XDP
// programs a crashed run left behind. The workers reach the ports through
// AF_XDP sockets (one per queue) or AF_PACKET sockets that move TCP as
// GRO/GSO super-segments (one per queue and port; with queues above 1, a
// port's sockets form a fanout group): --backend (config backend) auto
// picks AF_XDP where both drivers offer it zero-copy, AF_PACKET otherwise,
// and turns GRO on for AF_PACKET ports (back off on exit if it was off).
// It runs one worker per queue with a
// TCP-ENO/tcpcrypt engine behind each (config engine.enabled, on by default;
// off, connections pass through unencrypted). --no-fast-path sends every
// frame, non-TCP included, through the workers (the XDP program forwards
// nothing itself); a port whose in-kernel redirect to the other port cannot
// deliver (checked at start and every second) is switched to the workers
// too. A port that is gone while it runs (deleted, or deleted and created
// again under its name: a driver reload, a hot-plug, a VF reset; checked
// every second) makes it exit with status 1, so that its service manager
// starts it again on the port as it is now; a port's MTU that changes is
// logged and bounds the segments the engines build at once, for the
// connections in flight too (checked every second). The set of tuples
// that negotiated TCP-ENO is pinned under pin_dir, so that after a restart
// exactly those connections are reset and every other one passes, and
// copied to a file in state_dir (--state-dir), so that the first daemon
// after a reboot, which empties pin_dir, knows them too.
// SIGINT or SIGTERM stop it: the admin API stops, workers stop, XDP
// programs are detached, sockets closed, the set's copy written, the
// counters logged.
//
// Once the ports are up it serves the admin API (package appliance/admin) on
// --admin (config admin, default 127.0.0.1:9470; host:port or unix:/path;
// empty turns it off): status, flows with their session IDs, session lookup
// by 4-tuple, the runtime configuration, the resumption cache flush and
// Prometheus metrics. tcpincctl is its client. A bind that is neither
// loopback nor a unix socket needs a bearer token (--admin-token-file, config
// admin_token_file); without one tcpincd refuses to start.
//
// --key-log FILE with --key-log-enabled (config key_log, key_log_enabled)
// appends every encrypted connection's keys to FILE, one line per key
// generation (package appliance/keylog), for `tcpincctl decode`: debugging
// only, since the file decrypts those connections. Either without the other
// is refused; while it is on, the log and the admin status warn.
//
// Exit status: 0 after a clean shutdown, 2 for bad flags or configuration
// (including an admin bind that needs a token and has none), 1 for any other
// failure (missing interface, XDP or AF_XDP setup, an admin address in use,
// a worker failing, a port gone while running, a shutdown that does not
// finish in time).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/backend"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/control"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/keylog"
	"github.com/tcpinc/tcpinc/bump"
)

// version is set at build time (-ldflags "-X main.version=v1.2.3"); empty,
// the module version and VCS revision the binary was built from are used.
var version string

// stdout is where --version prints (a variable for tests).
var stdout io.Writer = os.Stdout

// shutdownTimeout bounds how long a clean shutdown may take.
const shutdownTimeout = 5 * time.Second

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "tcpincd: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	token, err := readToken(cfg.AdminTokenFile)
	if err == nil {
		err = checkAdminBind(cfg.Admin, token)
	}
	if err == nil {
		err = serve(cfg, token, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpincd: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// readToken reads the admin token file; "" when none is configured.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageError{fmt.Errorf("admin_token_file: %w", err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", usageError{fmt.Errorf("admin_token_file: %s is empty", path)}
	}
	return tok, nil
}

// checkAdminBind refuses, before any port is touched, the binds that
// admin.Server.Listen refuses without a token: neither loopback nor a unix
// socket. ("localhost" is checked again by Listen once it is resolved.)
func checkAdminBind(addr, token string) error {
	if addr == "" || token != "" || strings.HasPrefix(addr, "unix:") {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "localhost" {
		return nil // validated already; Listen has the last word
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return usageError{fmt.Errorf("admin %s: %w: set admin_token_file (--admin-token-file) or bind a loopback address or unix:/path", addr, admin.ErrTokenRequired)}
	}
	return nil
}

// loadConfig parses flags, reads the file if one is given, applies the flags
// that were set over it and validates the result.
func loadConfig(args []string, stderr io.Writer) (config.Config, error) {
	fs := flag.NewFlagSet("tcpincd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	inside := fs.String("inside", "", "inside (enclave-side) interface")
	outside := fs.String("outside", "", "outside (untrusted-side) interface")
	file := fs.String("config", "", "YAML configuration file")
	adminAddr := fs.String("admin", "", "admin API address: host:port or unix:/path (empty: off; default 127.0.0.1:9470)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin API bearer token (required for a non-loopback --admin)")
	backend := fs.String("backend", "", "port backend: auto, afxdp or afpacket (config backend; default auto)")
	noFast := fs.Bool("no-fast-path", false, "send every frame, non-TCP included, through user space (no in-kernel forwarding)")
	stateDir := fs.String("state-dir", "", "directory for the negotiated set's copy that survives a reboot (config state_dir; default /var/lib/tcpincd; \"\": none)")
	keyLog := fs.String("key-log", "", "DEBUGGING: append every encrypted connection's keys to this file (needs --key-log-enabled)")
	keyLogOn := fs.Bool("key-log-enabled", false, "DEBUGGING: allow the key log (it decrypts the logged connections)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, err
		}
		return config.Config{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return config.Config{}, usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	if *showVersion {
		fmt.Fprintf(stdout, "tcpincd %s\n", buildVersion())
		return config.Config{}, flag.ErrHelp
	}
	cfg := config.Default()
	if *file != "" {
		c, err := config.Load(*file)
		if err != nil {
			return config.Config{}, usageError{fmt.Errorf("config: %w", err)}
		}
		cfg = c
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "inside":
			cfg.Inside = *inside
		case "outside":
			cfg.Outside = *outside
		case "admin":
			cfg.Admin = *adminAddr
		case "admin-token-file":
			cfg.AdminTokenFile = *tokenFile
		case "no-fast-path":
			cfg.FastPath = !*noFast
		case "backend":
			cfg.Backend = *backend
		case "state-dir":
			cfg.StateDir = *stateDir
		case "key-log":
			cfg.KeyLog = *keyLog
		case "key-log-enabled":
			cfg.KeyLogEnabled = *keyLogOn
		}
	})
	if err := cfg.Validate(); err != nil {
		return config.Config{}, usageError{fmt.Errorf("config: %w", err)}
	}
	if cfg.Engine.Enabled {
		if _, err := control.EngineConfig(cfg.Engine); err != nil {
			return config.Config{}, usageError{fmt.Errorf("config: %w", err)}
		}
	}
	return cfg, nil
}

func level(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated: debug, info, warn or error
	return l
}

// serve runs the appliance until SIGINT/SIGTERM or a worker failure
// (SIGHUP is logged and ignored).
func serve(cfg config.Config, token string, log *slog.Logger) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)

	if _, err := afxdp.LookupInterfaces(cfg); err != nil {
		return err
	}
	unlock, err := lockInterfaces(cfg.Inside, cfg.Outside)
	if err != nil {
		return err
	}
	defer unlock()
	x, err := backend.Open(cfg)
	if err != nil {
		return err
	}
	closeSockets := true
	defer func() {
		if !closeSockets {
			// Workers may still be inside a socket: only detach the
			// programs; the sockets go when the process exits.
			_ = x.Bump.Close()
			return
		}
		if err := x.Close(); err != nil {
			log.Error("close ports", "err", err)
		}
	}()
	logPorts(cfg, x, log)
	pw, err := newPortWatch(cfg, x, log)
	if err != nil {
		return err
	}
	engines, guards, neg, closeEngines, err := startEngines(cfg, pw.segmentMTUs(), log)
	if err != nil {
		return err
	}
	// Deferred before the workers start, so it runs after they stop (or
	// are abandoned).
	defer closeEngines()
	a, err := newAppliance(cfg, x, engines, guards, log)
	if err != nil {
		return err
	}
	var src *control.AdminSource
	if cfg.Admin != "" {
		src, err = adminSource(cfg, a, engines, guards, neg, x, pw)
		if err != nil {
			return err
		}
	}
	if err := a.Start(); err != nil {
		return err
	}
	if engines != nil {
		pw.apply = func(mtu [2]int) error { return engines.SetMTU(a, mtu) }
	}
	if b, _ := x.Backend(bump.Inside); b == backend.AFPacket && a.Workers() > 1 {
		// An AF_XDP frame fits a UMEM frame, which a lane's slot holds.
		pw.laneFrame = a.HandoffFrame()
	}
	gone := make(chan error, 1)
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	defer func() { close(stopWatch); <-watchDone }() // before the ports close
	go func() {
		defer close(watchDone)
		watch(x, pw, log, stopWatch, gone)
	}()
	log.Info("tcpincd running", "fast_path", cfg.FastPath, "workers", cfg.Queues, "cpus", cfg.CPUs)
	var srv *admin.Server
	if src != nil {
		if srv, err = serveAdmin(cfg.Admin, token, src, log); err != nil {
			a.Stop()
			return err
		}
	}

	var runErr error
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				// Its default action would end the daemon without
				// detaching XDP: everything off the fast path would
				// then be lost until someone restarted it.
				log.Warn("SIGHUP ignored: tcpincd does not reload its configuration file; change settings through the admin API (PUT /api/v1/config) or restart it")
				continue
			}
			log.Info("shutting down", "signal", s.String())
		case runErr = <-a.Err():
			log.Error("worker failed, shutting down", "err", runErr)
		case runErr = <-gone:
			log.Error("port gone, shutting down", "err", runErr)
		}
		break
	}
	if !stop(srv, a, log) {
		closeSockets = false
		return fmt.Errorf("workers did not stop within %v", shutdownTimeout)
	}
	logCounters(log, a, x, engines, guards)
	return runErr
}

// newAppliance builds the workers over x's queues, with x's fast path when
// it is on and the engines behind them; without engines, the guards
// (engine.NewGuard) or, when there are none, Passthrough.
func newAppliance(cfg config.Config, x *backend.Ports, engines *control.Engines, guards *control.Guards, log *slog.Logger) (*appliance.Appliance, error) {
	inside, outside := x.Queues()
	opt := appliance.Options{BatchSize: cfg.BatchSize, CPUs: cfg.CPUs, Flows: cfg.Flows, Logger: log}
	if cfg.FastPath {
		opt.FastPath = x.Bump
	} else {
		log.Info("fast path off: every frame, non-TCP included, goes through the workers")
	}
	if engines != nil {
		opt.NewHandler = engines.NewHandler
	} else if guards != nil {
		opt.NewHandler = guards.NewHandler
	}
	var owners string
	backendName, _ := x.Backend(bump.Inside)
	if backendName == backend.AFPacket {
		// Its sockets hand over frames as long as the ports' MTU: the
		// lanes between workers must hold them (AF_XDP's fit a UMEM
		// frame, which the lanes' smallest slot holds).
		var err error
		if opt.MaxFrame, err = afxdp.MaxLinkFrame(cfg); err != nil {
			return nil, err
		}
	}
	if backendName == backend.AFPacket && len(inside) > 1 {
		opt.Fanout, owners = true, "AF_PACKET fanout program: the member socket that receives both directions owns the flow"
	} else {
		opt.RSS, owners = afxdp.OwnerRSS(cfg.Inside, cfg.Outside, len(inside))
	}
	log.Info("flow owners", "queues", len(inside), "how", owners)
	a, err := appliance.New(inside, outside, opt)
	if err != nil {
		return nil, err
	}
	if len(inside) > 1 {
		log.Info("hand-off lanes", "max_frame", a.HandoffFrame(),
			"note", "a port MTU raised past this while running drops the frames that change worker (drop reason too_big): restart tcpincd")
	}
	if engines != nil {
		ec := engines.Config()
		log.Info("engine enabled", "teps", fmt.Sprint(ec.TEPs), "aeads", fmt.Sprint(ec.AEADs),
			"resumption", !ec.NoResumption, "policies", len(ec.Policies), "max_flows", ec.MaxFlows)
	}
	return a, nil
}

// stop shuts the admin API down (srv may be nil), then stops the workers.
// It reports false when they did not stop within shutdownTimeout.
func stop(srv *admin.Server, a *appliance.Appliance, log *slog.Logger) bool {
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout/2)
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("admin API shutdown", "err", err)
		}
		cancel()
	}
	done := make(chan struct{})
	go func() {
		a.Stop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(shutdownTimeout):
		return false
	}
}

// logPorts says how each port came up, and warns when frames arriving at
// one go through user space although the fast path is on.
func logPorts(cfg config.Config, x *backend.Ports, log *slog.Logger) {
	for _, p := range []appliance.PortID{appliance.Inside, appliance.Outside} {
		iface := cfg.Inside
		if p == appliance.Outside {
			iface = cfg.Outside
		}
		ready, _ := x.Bump.RedirectReady(p)
		path, why := x.Path(p)
		b, reason := x.Backend(p)
		queues := len(x.QueuesOf(p))
		log.Info("port ready", "port", p.String(), "iface", iface, "backend", b, "xdp_mode", x.XDPMode(p), "bind_mode", x.BindMode(p),
			"queues", queues, "redirect_ready", ready, "path", path, "backend_reason", reason)
		if cfg.FastPath && path != afxdp.PathKernel {
			// The veth caveat (xsk.AttachBump): the kernel would drop
			// what the program redirects, so the workers forward it.
			log.Warn("frames arriving at this port go through user space", "port", p.String(), "why", why)
		}
	}
}

// startEngines starts the engines' shared services when the engine is
// enabled: the key pool, the negotiated set (pinned under pin_dir, copied
// to state_dir: openNegotiated) and the key log; mtu is the engines'
// segment cap toward each port (afxdp.SegmentMTU). When it is not, Engines
// is nil, and guards run over the negotiated set if it holds live
// entries: connections a previous run encrypted, which must still be reset
// (engine.NewGuard). closeAll releases them; call it after the workers
// stopped.
func startEngines(cfg config.Config, mtu [2]int, log *slog.Logger) (engines *control.Engines, guards *control.Guards, neg *negotiated, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	capacity := afxdp.NegotiatedCapacity(cfg.Queues, cfg.Engine.MaxFlows)
	if !cfg.Engine.Enabled {
		log.Info("engine disabled: every connection passes through unencrypted")
		// A set that cannot be opened stops the start as with the engine
		// on: without it, the connections a previous run encrypted
		// would pass, their hosts' plaintext onto the wire.
		neg, err := openNegotiated(cfg, capacity, log)
		if err != nil {
			return nil, nil, nil, closeAll, err
		}
		closers = append(closers, neg.close)
		if neg.set.Len() == 0 {
			return nil, nil, neg, closeAll, nil
		}
		log.Warn("connections a previous run encrypted are reset, not passed", "tuples", neg.set.Len())
		return nil, control.NewGuards(neg.set, log), neg, closeAll, nil
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	engines, err = control.NewEngines(cfg.Engine, log)
	if err != nil {
		return nil, nil, nil, closeAll, err
	}
	closers = append(closers, engines.Close)
	engines.MTU = mtu
	log.Info("segment size cap", "inside_mtu", engines.MTU[bump.Inside], "outside_mtu", engines.MTU[bump.Outside])
	capacity = afxdp.NegotiatedCapacity(cfg.Queues, engines.StartMaxFlows()) // the caps.flows ceiling
	if neg, err = openNegotiated(cfg, capacity, log); err != nil {
		return nil, nil, nil, closeAll, err
	}
	closers = append(closers, neg.close) // the pin stays
	engines.Negotiated = neg.set
	if cfg.KeyLog != "" {
		kl, err := keylog.Create(cfg.KeyLog)
		if err != nil {
			// A debugging aid must not take the data plane down (under
			// systemd: a restart loop, then a dead box): run without
			// it, and say so here and in the status (adminSource).
			log.Error("key log not opened: running without it", "err", err)
		} else {
			closers = append(closers, func() { kl.Close() })
			engines.KeyLog, engines.KeyLogLost = kl.Log, kl.Lost
			log.Warn(keyLogWarning(cfg.KeyLog))
		}
	}
	return engines, nil, neg, closeAll, nil
}

// serveAdmin listens on addr and serves the admin API from src until the
// server is shut down. Failing to serve later is logged, not fatal: the
// bump keeps running.
func serveAdmin(addr, token string, src *control.AdminSource, log *slog.Logger) (*admin.Server, error) {
	srv := admin.NewServer(src, admin.Options{Token: token, Logger: log.With("component", "admin")})
	ln, err := srv.Listen(addr)
	if err != nil {
		if errors.Is(err, admin.ErrTokenRequired) {
			return nil, usageError{err}
		}
		return nil, err
	}
	log.Info("admin API listening", "addr", ln.Addr().String(), "token", token != "")
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin API stopped serving", "err", err)
		}
	}()
	return srv, nil
}

// logCounters writes the final counters: the workers' per direction and the
// classifier's per port (until the admin API serves them).
func logCounters(log *slog.Logger, a *appliance.Appliance, x *backend.Ports, engines *control.Engines, guards *control.Guards) {
	for _, s := range a.Stats() {
		log.Info("counters",
			"from", s.From.String(), "frames", s.Frames, "bytes", s.Bytes,
			"tx_frames", s.TxFrames, "tx_bytes", s.TxBytes, "unparsed", s.Unparsed,
			"fastpath_inserts", s.FastInserts, "fastpath_removes", s.FastRemoves, "fastpath_errors", s.FastErrors,
			"handoffs", s.Handoffs, "handoff_drops", s.HandoffDrops, "kick_errors", s.KickErrors,
			"flow_evictions", s.FlowEvictions,
			"drop_no_tx_frame", s.Drop(appliance.DropNoTxFrame), "drop_tx_ring_full", s.Drop(appliance.DropTxRingFull),
			"drop_too_big", s.Drop(appliance.DropTooBig), "bad_commits", s.BadCommits,
			"verdict_forwarded", s.Verdict(engine.Forwarded), "verdict_forward_in_place", s.Verdict(engine.ForwardInPlace),
			"verdict_passthrough", s.Verdict(engine.Passthrough), "verdict_consumed", s.Verdict(engine.Consumed),
			"verdict_dropped", s.Verdict(engine.Dropped), "verdict_invalid", s.Verdicts[0])
	}
	each := func(func(int, *engine.Counters)) {}
	switch {
	case engines != nil:
		each = engines.Each
	case guards != nil:
		each = guards.Each
	}
	each(func(q int, c *engine.Counters) {
		var drops, fallbacks []uint64
		for i := range c.Drops {
			drops = append(drops, c.Drops[i].Load())
		}
		for i := range c.Fallbacks {
			fallbacks = append(fallbacks, c.Fallbacks[i].Load())
		}
		log.Info("engine", "queue", q, "flows", c.Flows.Load(), "handshakes", c.Handshakes.Load(),
			"handshake_failures", c.HandshakeFailures.Load(), "encrypted", c.Encrypted.Load(), "resumed", c.Resumed.Load(),
			"auth_failures", c.AuthFailures.Load(), "aborts", c.Aborts.Load(), "rekeys", c.Rekeys.Load(),
			"frames_sealed", c.FramesSealed.Load(), "frames_opened", c.FramesOpened.Load(),
			"handshakes_evicted", c.EmbryonicEvicted.Load(), "stray_resets", c.StrayResets.Load(),
			"key_gen_inline", c.KeyGenInline.Load(), "pool_retries", c.PoolRetries.Load(),
			"fallbacks", fmt.Sprint(fallbacks), "drops", fmt.Sprint(drops))
	})
	if engines != nil {
		for _, st := range engines.StockStats() {
			log.Info("key stock", "tep", st.Name, "size", st.Size, "target", st.Target, "len", st.Len,
				"generated", st.Generated, "taken", st.Taken, "empty", st.Empty, "expired", st.Expired)
		}
		log.Info("flow memory", "used", engines.Memory.Used(), "peak", engines.Memory.Peak(),
			"limit", engines.Memory.Limit(), "refused", engines.Memory.Refused())
	}
	bs := x.Bump.Stats()
	for _, p := range []struct {
		name string
		st   any
	}{{"inside", bs.Inside}, {"outside", bs.Outside}} {
		log.Info("classifier", "port", p.name, "stats", fmt.Sprintf("%+v", p.st))
	}
	for _, p := range []appliance.PortID{appliance.Inside, appliance.Outside} {
		if b, _ := x.Backend(p); b == backend.AFPacket {
			log.Info("afpacket port", "port", p.String(), "stats", fmt.Sprintf("%+v", x.PacketStats(p)))
			continue
		}
		log.Info("socket", "port", p.String(), "stats", fmt.Sprintf("%+v", x.SocketStats(p)))
	}
	log.Info("forwarding paths", "switches", x.PathSwitches())
	var n *engine.NegotiatedSet
	switch {
	case engines != nil:
		n = engines.Negotiated
	case guards != nil:
		n = guards.Negotiated
	}
	if n != nil {
		log.Info("negotiated set", "entries", n.Len(), "overflows", n.Overflows(), "store_errors", n.StoreErrors())
	}
}

// adminSource adapts the running appliance to the admin API.
func adminSource(cfg config.Config, a *appliance.Appliance, engines *control.Engines, guards *control.Guards, neg *negotiated, x *backend.Ports, pw *portWatch) (*control.AdminSource, error) {
	info := control.AdminInfo{Version: buildVersion(), FastPath: cfg.FastPath, AEADs: cfg.Engine.AEADs, Guards: guards,
		Warning: []func() string{neg.warning, pw.warning, pw.linkWarning(bump.Inside), pw.linkWarning(bump.Outside)}}
	switch {
	case cfg.KeyLog != "" && engines != nil && engines.KeyLog == nil:
		info.Warnings = append(info.Warnings, "key log "+cfg.KeyLog+" could not be opened (see the daemon's log): no keys are written")
	case cfg.KeyLog != "" && engines != nil:
		info.Warnings = append(info.Warnings, keyLogWarning(cfg.KeyLog))
	}
	if engines == nil {
		info.Warnings = append(info.Warnings, engineOffWarning(guards != nil))
	}
	for _, p := range []appliance.PortID{appliance.Inside, appliance.Outside} {
		iface := cfg.Inside
		if p == appliance.Outside {
			iface = cfg.Outside
		}
		b, reason := x.Backend(p)
		info.Ports = append(info.Ports, admin.PortStatus{Name: p.String(), Interface: iface, XDPMode: x.XDPMode(p),
			BindMode: x.BindMode(p), Backend: b, BackendReason: reason, Queues: len(x.QueuesOf(p)),
			CPUs: control.CPUs(cfg.Queues, cfg.CPUs)})
	}
	info.Backend = func() []admin.BackendCounters {
		var out []admin.BackendCounters
		for _, p := range []appliance.PortID{appliance.Inside, appliance.Outside} {
			b, _ := x.Backend(p)
			out = append(out, admin.BackendCounters{Port: p.String(), Backend: b, Counts: x.BackendCounters(p)})
		}
		return out
	}
	info.Rings = func() []admin.RingLevel { return ringLevels(x) }
	info.PortPath = func(i int) (string, string) {
		return x.Path([]appliance.PortID{appliance.Inside, appliance.Outside}[i])
	}
	info.PortMTU = pw.mtuOf
	info.PortLink = pw.linkOf
	if cfg.FastPath {
		info.FastPathEntries = x.Bump.FastPathLen
		// The XDP program counts frames, not bytes: the fast path's bytes
		// are not known.
		info.KernelPath = func() admin.PathCounters {
			st := x.Bump.Stats()
			return admin.PathCounters{Frames: st.Inside.ToPeer + st.Outside.ToPeer, NoBytes: true}
		}
	}
	return control.NewAdminSource(a, engines, info)
}

// ringLevels are the levels of both ports' AF_XDP rings (none with the
// afpacket backend).
func ringLevels(x *backend.Ports) []admin.RingLevel {
	var out []admin.RingLevel
	for _, p := range []appliance.PortID{appliance.Inside, appliance.Outside} {
		for q, rings := range x.RingLevels(p) {
			for _, r := range rings {
				out = append(out, admin.RingLevel{Port: p.String(), Queue: q, Ring: r.Ring, Used: uint64(r.Used), Size: uint64(r.Size)})
			}
		}
	}
	return out
}

// engineOffWarning is the status warning of a daemon whose engine is off;
// guarding says guards reset a previous run's encrypted connections.
func engineOffWarning(guarding bool) string {
	w := "ENGINE OFF (engine.enabled: false): every connection passes unencrypted"
	if guarding {
		w += "; connections a previous run encrypted are reset (stray_resets counts them, negotiated_set_entries says how many tuples remain)"
	}
	return w
}

// keyLogWarning is said in the log and in the status while a key log is on.
func keyLogWarning(path string) string {
	return "KEY LOG ON: the keys of every encrypted connection are written to " + path +
		"; anyone with that file can decrypt them. For debugging only: turn it off (key_log) and delete the file"
}

// buildVersion is version, or what the Go toolchain recorded.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v
}
