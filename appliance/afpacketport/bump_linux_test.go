package afpacketport

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/deploy/netns"
)

// The topology of the bump tests, an appliance namespace between two hosts:
//
//	afpp-a eth0 10.79.0.1 fd79::1 —veth— afpp-bump [p0 | p1] —veth— eth0 10.79.0.2 fd79::2 afpp-b
//
// A real appliance worker (appliance.New and Start, as tcpincd builds it,
// with the Passthrough handler) drives a Port on p0 (inside) and one on p1
// (outside), while the hosts' own TCP stacks talk through it.
const (
	nsA    = "afpp-a"
	nsBump = "afpp-bump"
	nsB    = "afpp-b"
)

func newTopo(t testing.TB) {
	t.Helper()
	requireRoot(t)
	for _, ns := range []string{nsA, nsBump, nsB} {
		newNetns(t, ns)
	}
	vethPair(t, nsA, "eth0", nsBump, "p0")
	vethPair(t, nsB, "eth0", nsBump, "p1")
	noIPv6(t, nsBump, "p0", "p1")
	for i, ns := range []string{nsA, nsB} {
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.79.0.%d/24", i+1), "dev", "eth0")
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("fd79::%d/64", i+1), "dev", "eth0", "nodad")
	}
}

// bumpRun is a running appliance over two Ports.
type bumpRun struct {
	app   *appliance.Appliance
	ports [2]*Port
	once  sync.Once
}

// startBump opens Ports on p0 and p1 and starts one worker over them.
func startBump(t testing.TB, o Options) *bumpRun {
	t.Helper()
	r := &bumpRun{}
	r.ports[0] = openPort(t, nsBump, "p0", o)
	r.ports[1] = openPort(t, nsBump, "p1", o)
	var err error
	r.app, err = appliance.New([]bump.Port{r.ports[0]}, []bump.Port{r.ports[1]},
		appliance.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *bumpRun) stop() { r.once.Do(r.app.Stop) }

// transferResult is one transfer's outcome.
type transferResult struct {
	name string
	err  error
}

// transfer sends size pseudo-random bytes over TCP from namespace src to
// dst at addr (an address of dst) and checks that they arrive intact.
func transfer(src, dst, addr string, size int, seed uint64) error {
	var ln net.Listener
	if err := netns.Do(dst, func() (err error) { ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0")); return }); err != nil {
		return err
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(120 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		done <- r
	}()
	var c net.Conn
	if err := netns.Do(src, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return
	}); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	buf := make([]byte, 256<<10)
	h := sha256.New()
	for left := size; left > 0; {
		b := buf[:min(len(buf), left)]
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(b)
		if _, err := c.Write(b); err != nil {
			c.Close()
			return fmt.Errorf("send: %w", err)
		}
		left -= len(b)
	}
	c.Close()
	r := <-done
	if r.err != nil {
		return fmt.Errorf("receive: %w", r.err)
	}
	if r.n != int64(size) || r.sum != [32]byte(h.Sum(nil)) {
		return fmt.Errorf("received %d bytes, sha256 %x; sent %d, %x", r.n, r.sum, size, h.Sum(nil))
	}
	return nil
}

// bothWays runs a transfer from A to B and one from B to A at once.
func bothWays(t *testing.T, v6 bool, size int) {
	t.Helper()
	addr := [2]string{"10.79.0.1", "10.79.0.2"}
	if v6 {
		addr = [2]string{"fd79::1", "fd79::2"}
	}
	errs := make(chan error, 2)
	go func() { errs <- transfer(nsA, nsB, addr[1], size, 1) }()
	go func() { errs <- transfer(nsB, nsA, addr[0], size, 2) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// checkBump stops the bump and checks its counters: super-segments in and
// out on both ports, nothing dropped or refused anywhere.
func checkBump(t *testing.T, r *bumpRun) {
	t.Helper()
	r.stop()
	for i, p := range r.ports {
		st := p.Stats()
		t.Logf("p%d: %+v", i, st)
		if st.RxSuperSegments == 0 || st.TxSuperSegments == 0 {
			t.Errorf("p%d: %d super-segments in, %d out; want some of each", i, st.RxSuperSegments, st.TxSuperSegments)
		}
		if st.RxBad != 0 || st.RxKernelDrops != 0 || st.RxTruncated != 0 || st.RxErrors != 0 || st.TxDropped != 0 || st.TxErrors != 0 {
			t.Errorf("p%d: drops or errors: %+v", i, st)
		}
	}
	for _, d := range r.app.Stats() {
		t.Logf("from %s: %d frames, %d bytes, tx %d frames, drops %v, kick errors %d, unparsed %d",
			d.From, d.Frames, d.Bytes, d.TxFrames, d.Drops, d.KickErrors, d.Unparsed)
		if d.Drops != [len(d.Drops)]uint64{} || d.KickErrors != 0 || d.BadCommits != 0 || d.Frames == 0 {
			t.Errorf("from %s: %+v", d.From, d)
		}
	}
}

// TestBumpGROAndTSO: the hosts send with TSO, so super-segments reach the
// ports as they are (GRO on, which a veth also needs for NAPI); the worker
// forwards them as GSO frames. Real TCP both ways, IPv4 and IPv6.
func TestBumpGROAndTSO(t *testing.T) {
	newTopo(t)
	enableGRO(t, nsBump, "p0")
	enableGRO(t, nsBump, "p1")
	r := startBump(t, Options{})
	bothWays(t, false, 200<<20)
	bothWays(t, true, 50<<20)
	checkBump(t, r)
}

// TestBumpXDPPassGRO: an XDP program returning XDP_PASS on the bump's ports
// takes TSO from the hosts (veth), so segments of at most the MTU arrive;
// GRO coalesces them after the program and the ports still get
// super-segments. This is how the appliance runs once its classifier
// passes the frames that need user space to the stack. The ports send past
// the qdisc here (QdiscBypass), the other test through it.
func TestBumpXDPPassGRO(t *testing.T) {
	newTopo(t)
	for _, p := range []string{"p0", "p1"} {
		attachXDPPass(t, nsBump, p)
		enableGRO(t, nsBump, p)
	}
	for _, ns := range []string{nsA, nsB} {
		if tso := feature(t, ns, "eth0", "tcp-segmentation-offload"); tso != "off" {
			t.Fatalf("%s eth0 keeps TSO %s with an XDP program on its peer", ns, tso)
		}
	}
	r := startBump(t, Options{QdiscBypass: true})
	bothWays(t, false, 200<<20)
	bothWays(t, true, 50<<20)
	checkBump(t, r)
}
