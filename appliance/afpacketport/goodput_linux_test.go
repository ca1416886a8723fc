package afpacketport

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/deploy/netns"
)

// iperf3 runs an iperf3 client with streams parallel streams in afpp-a
// against a server in afpp-b for secs seconds and returns the receiver's
// goodput in bit/s.
func iperf3(t *testing.T, streams, secs int) float64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", nsB, "iperf3", "-s", "-1", "-p", "5279")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out []byte
	var err error
	for try := 0; try < 20; try++ { // until the server listens
		time.Sleep(100 * time.Millisecond)
		out, err = exec.Command("ip", "netns", "exec", nsA, "iperf3", "-c", "10.79.0.2", "-p", "5279",
			"-P", fmt.Sprint(streams), "-t", fmt.Sprint(secs), "-O", "1", "-J").CombinedOutput()
		// Not listening yet: iperf3 says "unable to connect", with -J
		// sometimes on exit status 0.
		if !strings.Contains(string(out), "unable to connect") && (err == nil || !strings.Contains(string(out), "connect")) {
			break
		}
	}
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if r.End.SumReceived.Bytes == 0 {
		t.Fatalf("iperf3 moved no bytes\n%s", out)
	}
	return r.End.SumReceived.BitsPerSecond
}

// startAFXDP runs the same Passthrough worker over the AF_XDP backend
// (appliance/afxdp, as tcpincd opens it) in copy mode, fast path off, so
// every frame crosses user space as with the AF_PACKET ports.
func startAFXDP(t *testing.T) *appliance.Appliance {
	t.Helper()
	cfg := config.Default()
	cfg.Inside, cfg.Outside = "p0", "p1"
	cfg.BindMode = "copy"
	cfg.FastPath = false
	var x *afxdp.Ports
	if err := netns.Do(nsBump, func() (err error) { x, err = afxdp.Open(cfg); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	in, out := x.Queues()
	app, err := appliance.New(in, out, appliance.Options{BatchSize: cfg.BatchSize, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Stop)
	return app
}

// TestGoodputVersusAFXDP measures iperf3 goodput (1 and 4 streams, a to b)
// through a Passthrough bump over AF_PACKET ports, two ways, and over the
// AF_XDP backend in copy mode with the same worker, in one run; a kernel
// bridge in the bump's place gives the machine's ceiling. It only
// logs: the machine is shared, figures are comparable as ratios within one
// run. It runs with TCPINC_GOODPUT=1 (it takes about a minute).
func TestGoodputVersusAFXDP(t *testing.T) {
	if os.Getenv("TCPINC_GOODPUT") == "" {
		t.Skip("set TCPINC_GOODPUT=1 to measure")
	}
	const secs = 4
	type backend struct {
		name  string
		setup func(t *testing.T) (stats func() string)
	}
	portStats := func(r *bumpRun) func() string {
		return func() string {
			s0, s1 := r.ports[0].Stats(), r.ports[1].Stats()
			return fmt.Sprintf("p0 rx %d frames (%d super, %.1f segs each), p1 tx %d frames (%d merged in); drops rx %d/%d tx %d/%d, worker %v",
				s0.RxFrames, s0.RxSuperSegments, float64(s0.RxSegments)/float64(max(s0.RxSuperSegments, 1)), s1.TxFrames, s1.TxCoalesced,
				s0.RxKernelDrops, s0.RxBad, s1.TxDropped, s1.TxErrors, r.app.Stats()[0].Drops)
		}
	}
	backends := []backend{
		{"afpacket: GRO, senders' TSO", func(t *testing.T) func() string {
			enableGRO(t, nsBump, "p0")
			enableGRO(t, nsBump, "p1")
			return portStats(startBump(t, Options{}))
		}},
		{"afpacket: XDP_PASS + GRO", func(t *testing.T) func() string {
			for _, p := range []string{"p0", "p1"} {
				attachXDPPass(t, nsBump, p)
				enableGRO(t, nsBump, p)
			}
			return portStats(startBump(t, Options{}))
		}},
		{"afxdp: copy mode, fast path off", func(t *testing.T) func() string {
			// AF_XDP hands over a partial checksum as it is (no
			// virtio_net_hdr says so): the hosts must compute theirs.
			for _, ns := range []string{nsA, nsB} {
				ethtoolK(t, ns, "eth0", "tx", "off", "tso", "off", "gso", "off")
			}
			app := startAFXDP(t)
			return func() string {
				s := app.Stats()[0]
				return fmt.Sprintf("from inside %d frames, drops %v", s.Frames, s.Drops)
			}
		}},
		{"kernel bridge, no user space", func(t *testing.T) func() string {
			sh(t, "ip", "-n", nsBump, "link", "add", "br0", "type", "bridge")
			sh(t, "ip", "-n", nsBump, "link", "set", "p0", "master", "br0")
			sh(t, "ip", "-n", nsBump, "link", "set", "p1", "master", "br0")
			sh(t, "ip", "-n", nsBump, "link", "set", "br0", "up")
			return func() string { return "the ceiling of this machine" }
		}},
	}
	results := map[string][2]float64{}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			newTopo(t)
			stats := b.setup(t)
			var r [2]float64
			for i, streams := range []int{1, 4} {
				r[i] = iperf3(t, streams, secs)
			}
			results[b.name] = r
			t.Logf("%-34s 1 stream %6.2f Gbit/s, 4 streams %6.2f Gbit/s; %s", b.name, r[0]/1e9, r[1]/1e9, stats())
		})
	}
	ref := results[backends[2].name]
	for _, b := range backends {
		r := results[b.name]
		if ref[0] > 0 && ref[1] > 0 {
			t.Logf("%-34s %6.2f / %6.2f Gbit/s (1 / 4 streams), %.2fx / %.2fx AF_XDP copy mode", b.name, r[0]/1e9, r[1]/1e9, r[0]/ref[0], r[1]/ref[1])
		}
	}
}

// TestMergeRate measures what merging saves on the transmit side: batches
// of 64 full segments of one flow, as the engine builds them, sent through
// a Port on x with merging on and off in alternating rounds. The figure is
// the sending thread's CPU time (user and system: sendmmsg and the kernel's
// path down to the veth) per frame, which other load on the machine
// disturbs less than a rate. y's stack drops the frames (not addressed to
// it). It only logs; TCPINC_GOODPUT=1.
func TestMergeRate(t *testing.T) {
	if os.Getenv("TCPINC_GOODPUT") == "" {
		t.Skip("set TCPINC_GOODPUT=1 to measure")
	}
	newPair(t)
	px := openPort(t, nsPkt, "x", Options{})
	const batch = 64
	frames := buildAll(sameID(flowOf(seg{seq: 1, ack: 1, id: 1, tsval: 1}, repeat(1448, batch)...)))
	d := make([]bump.Desc, batch)
	cpu := func() time.Duration {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var spent [2]time.Duration
	var sent [2]int
	for range 20 {
		for m, merge := range []bool{false, true} {
			px.noMerge = !merge
			c0, start := cpu(), time.Now()
			for time.Since(start) < 100*time.Millisecond {
				k := px.GetTx(d)
				for i := range k {
					d[i].Len = uint32(copy(px.Frame(d[i])[:cap(px.Frame(d[i]))], frames[i]))
				}
				px.Transmit(d[:k])
				if err := px.Kick(); err != nil {
					t.Fatal(err)
				}
				sent[m] += k
			}
			spent[m] += cpu() - c0
		}
	}
	off, on := float64(spent[0])/float64(sent[0]), float64(spent[1])/float64(sent[1])
	st := px.Stats()
	t.Logf("CPU per engine frame (1448 B payload) through one Port, filling its slot included: merging off %.0f ns, on %.0f ns (%.2fx less); %+v",
		off, on, off/on, st)
	if st.TxDropped != 0 || st.TxErrors != 0 {
		t.Errorf("drops: %+v", st)
	}
}
