package integration

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// bgStream is a stream client running in the background (startStream).
type bgStream struct {
	p     *netns.Process
	srv   *netns.Process
	seed  uint64
	local netip.AddrPort
	dst   netip.AddrPort
	t0    time.Time
}

// startStream starts a stream client on src sending n bytes to dst and
// asking n back, at rate bytes/s each way (0: no limit), failing after idle
// without progress, and waits until it is connected.
func (e *encEnv) startStream(t *testing.T, src topology.Node, dst netip.AddrPort, srv *netns.Process, n int64, rate int, idle time.Duration) *bgStream {
	t.Helper()
	r := e.startStreamNoWait(t, src, dst, srv, n, rate, idle)
	if err := r.p.WaitOutput("connected ", 10*time.Second); err != nil {
		t.Fatalf("client to %v: %v", dst, err)
	}
	var res result
	parseClient(&res, r.p.Output())
	r.local = res.local
	return r
}

// startStreamNoWait is startStream without the wait: r.local is known
// once wait returns.
func (e *encEnv) startStreamNoWait(t *testing.T, src topology.Node, dst netip.AddrPort, srv *netns.Process, n int64, rate int, idle time.Duration) *bgStream {
	t.Helper()
	e.seed += 10
	r := &bgStream{srv: srv, seed: e.seed, dst: dst, t0: time.Now()}
	var err error
	r.p, err = e.topo.Start(src, fmt.Sprintf("stream-client-%d", r.seed), e.toolArgs("stream-client", "-addr", dst.String(),
		"-n", fmt.Sprint(n), "-m", fmt.Sprint(n), "-seed", fmt.Sprint(r.seed), "-rate", fmt.Sprint(rate), "-idle", idle.String())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.p.Stop() })
	return r
}

// exit waits up to timeout for the client to end (stopping it then) and
// notes its address.
func (r *bgStream) exit(timeout time.Duration) {
	select {
	case <-r.p.Done():
	case <-time.After(timeout):
		_ = r.p.Stop()
	}
	var res result
	if parseClient(&res, r.p.Output()); res.local.IsValid() {
		r.local = res.local
	}
}

// wait waits up to timeout for the client to end (stopping it then) and
// returns both ends' results.
func (r *bgStream) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	r.exit(timeout)
	out := r.p.Output()
	res := result{clientOut: out, clientErr: r.p.Wait(), elapsed: time.Since(r.t0)}
	if res.clientErr != nil {
		res.clientErr = fmt.Errorf("%w\n%s", res.clientErr, tailLines(out, 4))
	}
	parseClient(&res, out)
	wait := 5 * time.Second
	if res.clientErr != nil {
		wait = time.Second
	}
	parseServer(&res, r.srv, r.seed, wait)
	if res.serverLine == "" {
		t.Logf("the server printed nothing for seed %d by %s; its last lines:\n%s", r.seed, stamp(), tailLines(r.srv.Output(), 10))
	}
	return res
}

// waitEncrypted waits up to 3 s for gwA to list r's connection encrypted.
func (e *encEnv) waitEncrypted(t *testing.T, r *bgStream) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fl, ok, err := e.flowOf(topology.GwA, r.local, r.dst)
		if err == nil && ok && fl.Encrypted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gwA does not list %v -> %v encrypted: %+v %v", r.local, r.dst, fl, err)
		}
	}
}

// eachBackend runs fn as a subtest with each port backend, the daemons
// restarted on it first.
func (e *encEnv) eachBackend(t *testing.T, fn func(t *testing.T)) {
	for _, backend := range []string{"afpacket", "afxdp"} {
		t.Run(backend, func(t *testing.T) {
			e.backend = backend
			e.writeConf(t)
			e.restartDaemons(t)
			fn(t)
		})
	}
}
