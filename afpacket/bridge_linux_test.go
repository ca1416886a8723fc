package afpacket

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns/netnstest"
	"golang.org/x/sys/unix"
)

// The topology of the namespace tests, an appliance namespace between two
// hosts:
//
//	afpt-a eth0 10.78.0.1 fd78::1 —veth— afpt-bump [p0 | p1] —veth— eth0 10.78.0.2 fd78::2 afpt-b
//
// The test process opens AF_PACKET sockets on p0 and p1 and forwards
// between them in user space (a bridge), while real TCP stacks in the host
// namespaces talk through it.
const (
	nsA    = "afpt-a"
	nsBump = "afpt-bump"
	nsB    = "afpt-b"
)

func newTopo(t *testing.T) {
	t.Helper()
	requireRoot(t)
	for _, ns := range []string{nsA, nsBump, nsB} {
		newNetns(t, ns)
	}
	vethPair(t, nsA, "eth0", nsBump, "p0")
	vethPair(t, nsB, "eth0", nsBump, "p1")
	for _, p := range []string{"p0", "p1"} {
		sh(t, "ip", "netns", "exec", nsBump, "sysctl", "-qw", "net.ipv6.conf."+p+".disable_ipv6=1")
	}
	for i, ns := range []string{nsA, nsB} {
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", "eth0")
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("fd78::%d/64", i+1), "dev", "eth0", "nodad")
	}
}

// fwdMode is what the test bridge does with a frame.
type fwdMode int

const (
	// fwdPlain: sockets without virtio_net_hdr; frames go out as they came.
	fwdPlain fwdMode = iota
	// fwdGSO: TCP super-segments are checked (CheckTCP) and re-prepared with
	// PrepareGSO at their gso_size, so the kernel segments them on the way
	// out; other frames keep their header.
	fwdGSO
	// fwdSoftSeg: TCP super-segments are cut into MTU-sized frames by
	// Segment and sent without GSO.
	fwdSoftSeg
)

// fwdCounters are one direction's counts.
type fwdCounters struct {
	frames   atomic.Uint64 // frames read
	superIn  atomic.Uint64 // TCP frames read whose IP packet exceeds 1500 bytes
	maxIn    atomic.Uint64 // largest IP packet read
	superOut atomic.Uint64 // super-segments written with a GSO header
	segOut   atomic.Uint64 // segments made by Segment
	badHdr   atomic.Uint64 // CheckTCP errors other than ErrNotTCP
	badCsum  atomic.Uint64 // TCP checksums wrong after completion (verify only)
	partial  atomic.Uint64 // frames with FlagNeedsCsum
}

type bridge struct {
	t     *testing.T
	mode  fwdMode
	socks [2]*Socket // p0, p1
	c     [2]fwdCounters
	stop  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

// startBridge opens the sockets on p0 and p1 and forwards both ways until
// close (or the test's end). With verify, every TCP frame's checksum is
// checked (after completing a partial one in a scratch copy).
func startBridge(t *testing.T, mode fwdMode, verify bool) *bridge {
	return startBridgeOpts(t, mode, verify, Options{})
}

// startBridgeOpts is startBridge with socket options (VnetHdr is set by mode).
func startBridgeOpts(t *testing.T, mode fwdMode, verify bool, o Options) *bridge {
	t.Helper()
	o.VnetHdr = mode != fwdPlain
	br := &bridge{t: t, mode: mode}
	br.socks[0] = openIn(t, nsBump, "p0", o)
	br.socks[1] = openIn(t, nsBump, "p1", o)
	for d := range 2 {
		br.wg.Add(1)
		go func() {
			defer br.wg.Done()
			if err := br.run(br.socks[d], br.socks[1-d], &br.c[d], verify); err != nil {
				br.mu.Lock()
				br.err = errors.Join(br.err, err)
				br.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { br.close() })
	return br
}

// close stops the forwarding and fails the test on a forwarding error.
func (br *bridge) close() {
	if br.stop.Swap(true) {
		return
	}
	br.wg.Wait()
	for _, s := range br.socks {
		s.Close()
	}
	if br.err != nil {
		br.t.Errorf("bridge: %v", br.err)
	}
}

const bridgeOff = 16 // buffer offset: room for the virtio_net_hdr before the frame

func (br *bridge) run(from, to *Socket, c *fwdCounters, verify bool) error {
	bufs := make([][]byte, DefaultBatch)
	for i := range bufs {
		bufs[i] = make([]byte, bridgeOff+MaxFrame)
	}
	sizes := make([]int, len(bufs))
	out := make([][]byte, 0, len(bufs))
	outSizes := make([]int, 0, len(bufs))
	segBufs := make([][]byte, 64)
	segView := make([][]byte, len(segBufs))
	for i := range segBufs {
		segBufs[i] = make([]byte, bridgeOff+1600) // headers stay zero: no GSO, no partial checksum
		segView[i] = segBufs[i][bridgeOff:]
	}
	segSizes := make([]int, len(segBufs))
	scratch := make([]byte, MaxFrame)
	for !br.stop.Load() {
		if _, err := from.Wait(20*time.Millisecond, false); err != nil {
			return err
		}
		n, err := from.Read(bufs, sizes, bridgeOff)
		if err != nil {
			return err
		}
		out, outSizes = out[:0], outSizes[:0]
		for i := range n {
			c.frames.Add(1)
			f := bufs[i][bridgeOff : bridgeOff+sizes[i]]
			if br.mode == fwdPlain {
				out, outSizes = append(out, bufs[i]), append(outSizes, sizes[i])
				continue
			}
			hb := bufs[i][bridgeOff-VnetHdrLen : bridgeOff]
			var h VnetHdr
			_ = h.Decode(hb)
			p, err := CheckTCP(&h, f)
			if err == ErrNotTCP {
				out, outSizes = append(out, bufs[i]), append(outSizes, sizes[i])
				continue
			}
			if err != nil {
				c.badHdr.Add(1)
				continue
			}
			if ipLen := uint64(p.End - p.L3); ipLen > 1500 {
				c.superIn.Add(1)
				for m := c.maxIn.Load(); ipLen > m && !c.maxIn.CompareAndSwap(m, ipLen); m = c.maxIn.Load() {
				}
			}
			if h.Flags&FlagNeedsCsum != 0 {
				c.partial.Add(1)
			}
			if verify {
				g := scratch[:p.End]
				copy(g, f)
				h2 := h
				if h2.CompleteChecksum(g) != nil || !TCPChecksumOK(g, p) {
					c.badCsum.Add(1)
				}
			}
			switch {
			case !h.IsGSO():
				_ = h.Encode(hb) // CheckTCP's hdr_len
			case br.mode == fwdGSO:
				nh, err := PrepareGSO(f[:p.End], int(h.GSOSize))
				if err != nil {
					c.badHdr.Add(1)
					continue
				}
				_ = nh.Encode(hb)
				c.superOut.Add(1)
			case br.mode == fwdSoftSeg:
				// Keep the flow's order: what is queued goes first.
				if err := br.writeAll(to, out, outSizes); err != nil {
					return err
				}
				out, outSizes = out[:0], outSizes[:0]
				k, err := Segment(f[:p.End], int(h.GSOSize), segView, segSizes)
				if err != nil {
					c.badHdr.Add(1)
					continue
				}
				c.segOut.Add(uint64(k))
				if err := br.writeAll(to, segBufs[:k], segSizes[:k]); err != nil {
					return err
				}
				continue
			}
			out, outSizes = append(out, bufs[i]), append(outSizes, sizes[i])
		}
		if err := br.writeAll(to, out, outSizes); err != nil {
			return err
		}
	}
	return nil
}

// writeAll writes every frame, waiting for room when the socket is full.
func (br *bridge) writeAll(to *Socket, bufs [][]byte, sizes []int) error {
	for len(bufs) > 0 && !br.stop.Load() {
		k, err := to.Write(bufs, sizes, bridgeOff)
		if err != nil {
			return err
		}
		bufs, sizes = bufs[k:], sizes[k:]
		if len(bufs) > 0 {
			if _, err := to.Wait(20*time.Millisecond, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// transfer sends size pseudo-random bytes over TCP from afpt-a to afpt-b
// (IPv6 if v6) and checks that they arrive intact.
func transfer(t *testing.T, v6 bool, size int) {
	t.Helper()
	addr := "10.78.0.2"
	if v6 {
		addr = "fd78::2"
	}
	if err := netnstest.Transfer(nsA, nsB, addr, size, uint64(size), 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// sniffer counts the TCP frames arriving at afpt-b's eth0 through a plain
// socket: how many, the largest IP packet and how many had a bad checksum.
type sniffer struct {
	s                  *Socket
	stop               atomic.Bool
	done               chan struct{}
	tcp, maxIP, badSum uint64
}

func startSniffer(t *testing.T) *sniffer {
	sn := &sniffer{s: openIn(t, nsB, "eth0", Options{}), done: make(chan struct{})}
	go func() {
		defer close(sn.done)
		bufs := [][]byte{make([]byte, MaxFrame)}
		sizes := []int{0}
		for !sn.stop.Load() {
			if ok, _ := sn.s.Wait(20*time.Millisecond, false); !ok {
				continue
			}
			for {
				n, err := sn.s.Read(bufs, sizes, 0)
				if n == 0 || err != nil {
					break
				}
				f := bufs[0][:sizes[0]]
				p, err := ParseTCP(f)
				if err != nil {
					continue
				}
				sn.tcp++
				sn.maxIP = max(sn.maxIP, uint64(p.End-p.L3))
				if !TCPChecksumOK(f, p) {
					sn.badSum++
				}
			}
		}
	}()
	t.Cleanup(sn.close)
	return sn
}

func (sn *sniffer) close() {
	if !sn.stop.Swap(true) {
		<-sn.done
	}
}

// TestGROSuperSegmentsIn: the hosts send MTU-sized segments (no TSO or GSO)
// and GRO on the bump's veth ports coalesces them; the socket on p0 must
// receive TCP super-segments larger than the MTU, each with a virtio_net_hdr
// that CheckTCP accepts and a partial checksum that completes to the right
// one. The bridge forwards them with GSO, and the bytes arrive intact.
func TestGROSuperSegmentsIn(t *testing.T) {
	newTopo(t)
	for _, ns := range []string{nsA, nsB} {
		ethtoolK(t, ns, "eth0", "tso", "off", "gso", "off")
	}
	for _, p := range []string{"p0", "p1"} {
		ethtoolK(t, nsBump, p, "gro", "on") // veth: also gives p0/p1 NAPI, which GRO needs
	}
	br := startBridge(t, fwdGSO, true)
	transfer(t, false, 16<<20)
	transfer(t, true, 16<<20)
	br.close()
	c := &br.c[0]
	t.Logf("a->b: %d frames read, %d super-segments (largest IP packet %d B), %d partial checksums, %d re-sent with GSO",
		c.frames.Load(), c.superIn.Load(), c.maxIn.Load(), c.partial.Load(), c.superOut.Load())
	if c.superIn.Load() == 0 || c.maxIn.Load() <= 1500 {
		t.Error("no GRO super-segment reached the socket")
	}
	for d := range 2 {
		if b, s := br.c[d].badHdr.Load(), br.c[d].badCsum.Load(); b != 0 || s != 0 {
			t.Errorf("direction %d: %d bad virtio_net_hdrs, %d bad checksums", d, b, s)
		}
	}
}

// TestGROSuperSegmentsWithOptionHeaders is TestGROSuperSegmentsIn over
// IPv6 with a destination options header on every segment a sends
// (IPV6_DSTOPTS, RFC 3542 §4.1): GRO coalesces behind it, so the
// super-segments reach the socket with it, and ParseTCP must step over it
// for the bridge to take them and send them on. Before it did, every one
// was refused as malformed and the transfer stalled.
func TestGROSuperSegmentsWithOptionHeaders(t *testing.T) {
	// Next header (the kernel fills it in), length 0 (8 bytes), PadN of 4.
	groBehindHeader(t, unix.IPV6_DSTOPTS, []byte{0, 0, 1, 4, 0, 0, 0, 0})
}

// TestGROSuperSegmentsWithRoutingHeader is TestGROSuperSegmentsWithOptionHeaders
// with a segment routing header (IPV6_RTHDR, RFC 8754) with no segments
// left, its one segment b's address: the IPv6 header's destination is the
// final one, so the checksum is over it, and GRO coalesces behind it (the
// kernel's exthdrs_offload). Before ParseTCP stepped over a routing header,
// every super-segment was refused as malformed and the transfer stalled.
func TestGROSuperSegmentsWithRoutingHeader(t *testing.T) {
	// Next header, length 2 (24 bytes), type 4, segments left 0, last
	// entry 0, flags, tag, then the segment list.
	srh := append([]byte{0, 2, 4, 0, 0, 0, 0, 0}, net.ParseIP("fd78::2")...)
	groBehindHeader(t, unix.IPV6_RTHDR, srh)
}

// groBehindHeader runs a 16 MB transfer from a to b over IPv6 with the
// extension header ext (socket option opt) on every segment a sends, GRO
// coalescing on the bump's ports, through a bridge that takes the
// super-segments with CheckTCP and sends them on with PrepareGSO.
func groBehindHeader(t *testing.T, opt int, ext []byte) {
	t.Helper()
	newTopo(t)
	for _, ns := range []string{nsA, nsB} {
		ethtoolK(t, ns, "eth0", "tso", "off", "gso", "off")
		// A segment routing header is dropped on arrival without it.
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.seg6_enabled=1", "net.ipv6.conf.eth0.seg6_enabled=1")
	}
	for _, p := range []string{"p0", "p1"} {
		ethtoolK(t, nsBump, p, "gro", "on")
	}
	br := startBridge(t, fwdGSO, true)
	control := func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, opt, string(ext))
		}); err != nil {
			return err
		}
		return serr
	}
	err := netnstest.TransferWith(nsA, nsB, "fd78::2", 16<<20, 16<<20, 20*time.Second, control)
	br.close()
	c := &br.c[0]
	t.Logf("a->b: %d frames read, %d super-segments (largest IP packet %d B), %d re-sent with GSO, %d bad headers",
		c.frames.Load(), c.superIn.Load(), c.maxIn.Load(), c.superOut.Load(), c.badHdr.Load())
	if err != nil {
		t.Fatal(err)
	}
	if c.superIn.Load() == 0 || c.maxIn.Load() <= 1500 {
		t.Error("no GRO super-segment reached the socket")
	}
	for d := range 2 {
		if b, s := br.c[d].badHdr.Load(), br.c[d].badCsum.Load(); b != 0 || s != 0 {
			t.Errorf("direction %d: %d bad virtio_net_hdrs, %d bad checksums", d, b, s)
		}
	}
}

// TestGSOOutSegmentedByKernel: the host sends with TSO, so super-segments
// reach p0; the bridge sends them out of p1 with a GSO header made by
// PrepareGSO. p1 has no TSO, GSO or checksum offload, so the kernel
// segments them in software: a plain socket on the receiving host must see
// only frames of at most the MTU, every checksum right, and the bytes must
// arrive intact.
func TestGSOOutSegmentedByKernel(t *testing.T) {
	testSegmentedOut(t, fwdGSO)
}

// TestSoftwareSegmentOut is TestGSOOutSegmentedByKernel with the cut done by
// Segment in user space and the segments sent without GSO.
func TestSoftwareSegmentOut(t *testing.T) {
	testSegmentedOut(t, fwdSoftSeg)
}

func testSegmentedOut(t *testing.T, mode fwdMode) {
	newTopo(t)
	ethtoolK(t, nsBump, "p1", "tx", "off", "tso", "off", "gso", "off")
	sn := startSniffer(t)
	br := startBridge(t, mode, false)
	transfer(t, false, 16<<20)
	transfer(t, true, 16<<20)
	br.close()
	sn.close()
	c := &br.c[0]
	t.Logf("a->b: %d frames read, %d super-segments (largest %d B), %d sent with GSO, %d segments by Segment; at b: %d TCP frames, largest IP packet %d B, %d bad checksums; p1 %+v",
		c.frames.Load(), c.superIn.Load(), c.maxIn.Load(), c.superOut.Load(), c.segOut.Load(), sn.tcp, sn.maxIP, sn.badSum, br.socks[1].Stats())
	if c.superIn.Load() == 0 {
		t.Error("no super-segment reached the socket (is TSO on at the sender?)")
	}
	if mode == fwdGSO && c.superOut.Load() == 0 || mode == fwdSoftSeg && c.segOut.Load() == 0 {
		t.Error("the bridge cut no super-segment")
	}
	if sn.tcp == 0 || sn.maxIP > 1500 || sn.badSum != 0 {
		t.Errorf("receiving host saw %d TCP frames, largest %d B, %d bad checksums", sn.tcp, sn.maxIP, sn.badSum)
	}
	if st := br.socks[1].Stats(); st.TxErrors != 0 {
		t.Errorf("p1 refused %d frames", st.TxErrors)
	}
}

// iperf3 runs an iperf3 client in afpt-a against a server in afpt-b for
// secs seconds and returns the receiver's goodput in bit/s.
func iperf3(t *testing.T, secs int) float64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", nsB, "iperf3", "-s", "-1", "-p", "5278")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out []byte
	var err error
	for try := 0; try < 20; try++ { // until the server listens
		time.Sleep(100 * time.Millisecond)
		out, err = exec.Command("ip", "netns", "exec", nsA, "iperf3", "-c", "10.78.0.2", "-p", "5278",
			"-t", fmt.Sprint(secs), "-O", "1", "-J").CombinedOutput()
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

// TestBridgeGoodput carries an iperf3 TCP stream through the user-space
// bridge three ways in one run and logs the goodputs: super-segments with
// virtio_net_hdr from senders with TSO, super-segments made by GRO on the
// ports from senders without TSO, and frame by frame without virtio_net_hdr
// (hosts' offloads off, as an AF_XDP copy-mode port needs). It asserts only
// that each stream ran; the figures are for the log (no wall-clock
// assertions, and the machine may be shared).
func TestBridgeGoodput(t *testing.T) {
	newTopo(t)
	const secs = 3
	run := func(name string, mode fwdMode, bypass bool, hostFeat []string, gro string) float64 {
		for _, ns := range []string{nsA, nsB} {
			ethtoolK(t, ns, "eth0", hostFeat...)
		}
		for _, p := range []string{"p0", "p1"} {
			ethtoolK(t, nsBump, p, "gro", gro)
		}
		br := startBridgeOpts(t, mode, false, Options{QdiscBypass: bypass})
		bps := iperf3(t, secs)
		br.close()
		t.Logf("%-38s %6.2f Gbit/s  (a->b: %d frames read, %d > MTU; p1 %+v)", name, bps/1e9, br.c[0].frames.Load(), br.c[0].superIn.Load(), br.socks[1].Stats())
		return bps
	}
	on := []string{"tx", "on", "tso", "on", "gso", "on"}
	tso := run("vnet_hdr, senders' TSO", fwdGSO, false, on, "off")
	bypass := run("vnet_hdr, senders' TSO, qdisc bypass", fwdGSO, true, on, "off")
	soft := run("vnet_hdr in, Segment in user space", fwdSoftSeg, false, on, "off")
	gro := run("vnet_hdr, GRO on the ports", fwdGSO, false, []string{"tx", "on", "tso", "off", "gso", "off"}, "on")
	plain := run("plain frames, offloads off", fwdPlain, false, []string{"tx", "off", "tso", "off", "gso", "off"}, "off")
	t.Logf("goodput vs plain frames (one run, shared machine): TSO %.2fx, TSO+bypass %.2fx, user-space Segment %.2fx, GRO %.2fx",
		tso/plain, bypass/plain, soft/plain, gro/plain)
}
