package afpacketport

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
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

// bothWays runs a transfer from A to B and one from B to A at once.
func bothWays(t *testing.T, v6 bool, size int) {
	t.Helper()
	addr := [2]string{"10.79.0.1", "10.79.0.2"}
	if v6 {
		addr = [2]string{"fd79::1", "fd79::2"}
	}
	errs := make(chan error, 2)
	go func() { errs <- netnstest.Transfer(nsA, nsB, addr[1], size, 1, 120*time.Second) }()
	go func() { errs <- netnstest.Transfer(nsB, nsA, addr[0], size, 2, 120*time.Second) }()
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
