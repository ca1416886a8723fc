package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// connServerPort is the first of connServerPorts ports the conn-server
// listens on in hB.
const (
	connServerPort  = 7000
	connServerPorts = 8
)

// x25519 measures the X25519 limit on one core and on every core, before
// any case runs (no bench traffic then).
func (h *harness) x25519(ctx context.Context) *X25519Limit {
	lim := &X25519Limit{Cores: runtime.NumCPU()}
	if idle, err := idleBusy(ctx, h.cfg.IdleSample); err == nil {
		lim.IdleBusy = idle
	}
	var err error
	if lim.One, err = X25519Rate(h.cfg.X25519Time, 1); err != nil {
		lim.Err = err.Error()
		return lim
	}
	if lim.All, err = X25519Rate(h.cfg.X25519Time, lim.Cores); err != nil {
		lim.Err = err.Error()
	}
	h.cfg.Logf("== X25519 keygen+ECDH: %.0f/s on 1 core, %.0f/s on %d", lim.One, lim.All, lim.Cores)
	return lim
}

// connCase runs the connection-rate and first-byte measurements of one
// case; for the encrypted case once with resumption off and once with it
// on (switched over both daemons' admin API).
func (h *harness) connCase(ctx context.Context, topo *topology.Topology, res *Result, gw gateway) {
	// hA makes up to tens of thousands of connections per run, each leaving
	// a TIME_WAIT socket for 60 s: give it every port.
	if _, err := topo.Run(topology.HostA, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"); err != nil {
		res.Errors = append(res.Errors, "sysctl ip_local_port_range: "+err.Error())
	}
	dst := topo.Addr(topology.HostB).V4
	srv, err := topo.Start(topology.HostB, "conn-server", h.cfg.Self, "conn-server",
		"-addr", dst.String(), "-port", fmt.Sprint(connServerPort), "-ports", fmt.Sprint(connServerPorts))
	if err != nil {
		res.Errors = append(res.Errors, "conn-server: "+err.Error())
		return
	}
	defer srv.Stop()
	if err := srv.WaitOutput("listening", 10*time.Second); err != nil {
		res.Errors = append(res.Errors, "conn-server: "+err.Error())
		return
	}
	tg, _ := gw.(*tcpincdGateway)
	variants := []string{""}
	if tc := res.Case.Tcpincd; tc != nil && tc.Engine {
		variants = []string{VariantFresh, VariantResumed}
	}
	for _, v := range variants {
		if ctx.Err() != nil {
			return
		}
		cv := &ConnVariant{Variant: v}
		res.Conn = append(res.Conn, cv)
		if v != "" {
			if tg == nil {
				cv.Errors = append(cv.Errors, "no admin API to switch resumption")
				continue
			}
			on := v == VariantResumed
			if err := tg.setResumption(ctx, on); err != nil {
				cv.Errors = append(cv.Errors, err.Error())
				continue
			}
		}
		before := tg.engineCounters(ctx)
		for i := 0; i < h.cfg.Runs && ctx.Err() == nil; i++ {
			var prof chan error
			if i == 0 && h.cfg.ProfileDir != "" && tg != nil {
				prof = make(chan error, 1)
				name := res.Case.Name + strings.ReplaceAll(variantSuffix(v), " ", "-") + "-gwA.pprof"
				go func() { prof <- tg.profile(ctx, filepath.Join(h.cfg.ProfileDir, name), h.cfg.ConnDuration) }()
			}
			pids := gw.pids()
			app0, appErr0 := procCPU(pids)
			cpu0, _ := ReadCPUTimes()
			st, err := h.connClient(ctx, topo, "-c", fmt.Sprint(h.cfg.ConnConcurrency), "-t", h.cfg.ConnDuration.String())
			cpu1, _ := ReadCPUTimes()
			app1, appErr1 := procCPU(pids)
			if prof != nil {
				if perr := <-prof; perr != nil {
					cv.Errors = append(cv.Errors, "profile: "+perr.Error())
				}
			}
			if err == nil {
				err = gw.check()
			}
			if err != nil {
				cv.Errors = append(cv.Errors, fmt.Sprintf("rate run %d: %v", i+1, err))
				continue
			}
			busy := BusyPercent(cpu0, cpu1)
			perConn := nanF
			if len(pids) > 0 && appErr0 == nil && appErr1 == nil && st.Conns > 0 {
				perConn = (app1 - app0) / float64(st.Conns) * 1e6
			}
			h.cfg.Logf("   conn rate%s run %d: %.0f conn/s, first byte p50 %.0f µs p99 %.0f µs, %d errors, vm_busy %.0f%%, appliance CPU %.0f µs/conn",
				variantSuffix(v), i+1, st.Rate(), st.FirstByte.P50, st.FirstByte.P99, st.Errors, busy, perConn)
			cv.Rate = append(cv.Rate, st)
			cv.Busy = append(cv.Busy, busy)
			cv.CPUPerConn = append(cv.CPUPerConn, perConn)
			if st.Errors > 0 {
				cv.Errors = append(cv.Errors, fmt.Sprintf("rate run %d: %d failed connections, first: %s", i+1, st.Errors, st.FirstError))
			}
		}
		mid := tg.engineCounters(ctx)
		cv.RateEngine = mid.Sub(before)
		st, err := h.connClient(ctx, topo, "-c", "1", "-n", fmt.Sprint(h.cfg.FirstByteCount))
		if err == nil {
			err = gw.check()
		}
		if err != nil {
			cv.Errors = append(cv.Errors, "first-byte run: "+err.Error())
			continue
		}
		h.cfg.Logf("   first byte%s: connect p50 %.0f µs, first byte p50 %.0f µs p99 %.0f µs (%d conns)",
			variantSuffix(v), st.Connect.P50, st.FirstByte.P50, st.FirstByte.P99, st.Conns)
		cv.FirstByte = &st
		if st.Errors > 0 {
			cv.Errors = append(cv.Errors, fmt.Sprintf("first-byte run: %d failed connections, first: %s", st.Errors, st.FirstError))
		}
		cv.FirstByteEngine = tg.engineCounters(ctx).Sub(mid)
	}
	if tg != nil {
		// Leave the daemons as configured for the case (default: on).
		_ = tg.setResumption(ctx, true)
	}
}

func variantSuffix(v string) string {
	if v == "" {
		return ""
	}
	return " (" + v + ")"
}

func (h *harness) connClient(ctx context.Context, topo *topology.Topology, args ...string) (ConnStats, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ConnDuration+2*time.Minute)
	defer cancel()
	dst := topo.Addr(topology.HostB).V4
	argv := append([]string{h.cfg.Self, "conn-client", "-addr", dst.String(),
		"-port", fmt.Sprint(connServerPort), "-ports", fmt.Sprint(connServerPorts)}, args...)
	cmd := topo.Command(ctx, topology.HostA, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	st, err := ParseConnStats(stdout.Bytes())
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = errors.Join(err, errors.New(msg))
		}
		return st, errors.Join(err, runErr)
	}
	return st, nil
}

// profile saves a CPU profile of gwA's daemon over the next d (less a
// second, so that it ends inside the run it profiles).
func (g *tcpincdGateway) profile(ctx context.Context, path string, d time.Duration) error {
	secs := max(int(d.Seconds())-1, 1)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", g.socks[0])
	}}}
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://localhost/debug/pprof/profile?seconds=%d", secs), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, firstLines(string(body), 2))
	}
	return os.WriteFile(path, body, 0o644)
}

// setResumption switches engine.resumption on both daemons.
func (g *tcpincdGateway) setResumption(ctx context.Context, on bool) error {
	for i, c := range g.admins {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.PutConfig(ctx, []byte(fmt.Sprintf(`{"resumption": %t}`, on)))
		cancel()
		if err != nil {
			return fmt.Errorf("gw%c: set resumption %t: %w", 'A'+i, on, err)
		}
	}
	return nil
}

// engineCounters reads gwA's handshake counters (nil without tcpincd or
// when the admin API does not answer).
func (g *tcpincdGateway) engineCounters(ctx context.Context) *EngineCounts {
	if g == nil || len(g.admins) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := g.admins[0].Status(ctx)
	if err != nil {
		return nil
	}
	return countsOf(st.Counters)
}

func countsOf(c admin.CountersDoc) *EngineCounts {
	return &EngineCounts{
		Encrypted: c.Handshakes["encrypted"], Failed: c.Handshakes["failed"], Fallback: c.Handshakes["fallback"],
		Resumed: c.Resumptions, AuthFailures: c.AuthFailures,
	}
}
