package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestAsymmetricRouting: the two directions of a connection take different
// paths, one of them around gwA, as with two appliances side by side
// (active/active, ECMP) or a return route that skips the box. Plain TCP
// carries such connections, so tcpinc must too. A bypass link joins hA and
// rtr directly (asymBypass); a route on rtr sends what is for hA over it
// (the return path skips gwA), or a route on hA sends what is for hB over it
// (the outbound path skips gwA). Real Linux stacks on hA and hB, 1 MB each
// way over IPv4 and IPv6, byte for byte and within a few seconds:
//
//   - return bypass, hA opens: gwA sees hA's SYN (it offers TCP-ENO) and
//     every later segment of hA, never hB's SYN-ACK. hA's first non-SYN
//     segment leaves without ENO, so gwB, which answered with ENO, disables
//     it (RFC 8547 §4.6).
//   - return bypass, hB opens: gwA sees hA's SYN-ACK and data, none of hB's.
//   - outbound bypass, hA opens: gwA sees hB's SYN-ACK and data only.
//   - outbound bypass, hB opens: gwA sees hB's SYN with ENO and every later
//     segment of hB, never hA's SYN-ACK (the mirror of the first case, at
//     gwA's outside port). hB's third segment, at its ISN+1, shows the
//     SYN-ACK went around: gwA's record turns plain (fallback asymmetric).
//
// Neither appliance may call such a connection encrypted (gwA never sees
// both directions), list it plain without a fallback reason, or still
// list it negotiating once it carried its bytes. Then
// an encrypted connection whose return path moves around gwA mid-transfer:
// what happens is logged (a host cannot read ciphertext without its
// appliance, so the connection may end); no byte of ciphertext may reach an
// application as data. A capture of rtr's links toward side A (through gwA
// and the bypass) must show no plaintext of any connection an appliance
// reports encrypted.
func TestAsymmetricRouting(t *testing.T) {
	e := newEncEnvOpts(t, encOpts{net: 69})
	by := e.addBypass(t)
	srvA := e.startTool(t, topology.HostA, "stream-server", "stream server ready", "-listen", "[::]:5001")
	wire, err := e.topo.StartCapture(filepath.Join(t.TempDir(), "asym.pcapng"), topology.RouterToA, asymBypassRtr)
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.topo.Addr(topology.HostA), e.topo.Addr(topology.HostB)
	var conns []asymConn
	const n = 1 << 20

	t.Run("symmetric", func(t *testing.T) {
		by.route(t, asymSymmetric)
		dst := netip.AddrPortFrom(b.V4, 5001)
		var r result
		d, ok := e.measure(t, func() { r = e.asymRun(t, topology.HostA, dst, e.streamB, n) })
		checkTransfer(t, r, n, n)
		if ok {
			for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
				encryptedDelta(t, gw, d[gw], 1)
			}
		}
		conns = append(conns, asymConn{name: t.Name(), a: r.local, b: dst, enc: true})
	})

	for _, c := range []struct {
		name  string
		mode  asymMode
		fromB bool
	}{
		{"return-bypass/hA-opens", asymReturn, false},
		{"return-bypass/hB-opens", asymReturn, true},
		{"outbound-bypass/hA-opens", asymOutbound, false},
		{"outbound-bypass/hB-opens", asymOutbound, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			by.route(t, c.mode)
			defer by.route(t, asymSymmetric)
			for _, fam := range []struct {
				name   string
				ha, hb netip.Addr
			}{{"v4", a.V4, b.V4}, {"v6", a.V6, b.V6}} {
				t.Run(fam.name, func(t *testing.T) {
					src, dst, srv := topology.HostA, netip.AddrPortFrom(fam.hb, 5001), e.streamB
					if c.fromB {
						src, dst, srv = topology.HostB, netip.AddrPortFrom(fam.ha, 5001), srvA
					}
					conns = append(conns, e.asymCase(t, src, dst, srv, n))
				})
			}
		})
	}

	t.Run("route-change/encrypted", func(t *testing.T) {
		by.route(t, asymSymmetric)
		defer by.route(t, asymSymmetric)
		conns = append(conns, e.routeChange(t, by, netip.AddrPortFrom(b.V4, 5001)))
	})

	if _, err := wire.Stop(); err != nil {
		t.Fatal(err)
	}
	asymMarkers(t, wire.Path, conns)
}

// asymConn is one connection of TestAsymmetricRouting: hA's end, hB's end,
// and whether an appliance reported it encrypted (its frames must carry no
// plaintext) or whether it arrived intact in plain TCP (its frames show the
// marker, which proves the search works).
type asymConn struct {
	name       string
	a, b       netip.AddrPort
	enc, plain bool
}

// asymCase runs one transfer from src to dst under the current routes and
// checks it: intact, quick, and not encrypted by either appliance, whose
// records of it (if they keep one) are plain with a fallback reason.
func (e *encEnv) asymCase(t *testing.T, src topology.Node, dst netip.AddrPort, srv *netns.Process, n int64) asymConn {
	t.Helper()
	var r result
	d, ok := e.measure(t, func() { r = e.asymRun(t, src, dst, srv, n) })
	c := asymConn{name: t.Name(), a: r.local, b: dst}
	if src == topology.HostB {
		c.a, c.b = dst, r.local
	}
	checkTransfer(t, r, n, n)
	// 1 MB at 4 MB/s takes a quarter of a second: a few seconds means a
	// segment waited for a retransmission timeout.
	if r.clientErr == nil && r.elapsed > 5*time.Second {
		t.Errorf("the transfer took %v", r.elapsed.Round(time.Millisecond))
	}
	c.plain = r.clientErr == nil && !t.Failed()
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		fl, found, err := e.flowOf(gw, c.a, c.b)
		switch {
		case err != nil:
			t.Error(err)
		case !found:
			t.Logf("%s keeps no record of %v <-> %v", gw, c.a, c.b)
		default:
			t.Logf("%s: %s <-> %s state %s encrypted=%v fallback %q", gw, fl.Inside, fl.Outside, fl.State, fl.Encrypted, fl.FallbackReason)
			switch {
			case fl.Encrypted:
				c.enc = true
				t.Errorf("%s reports the connection encrypted: it never saw both directions", gw)
			case fl.State == "plain" && fl.FallbackReason == "":
				t.Errorf("%s reports the connection plain without a fallback reason", gw)
			case strings.HasPrefix(fl.State, "syn-"):
				t.Errorf("%s still lists the connection as %s after it carried its bytes", gw, fl.State)
			}
		}
		if ok {
			t.Logf("%s over the transfer: handshakes %v fallbacks %v drops %v", gw, nonZero(d[gw].Handshakes), nonZero(d[gw].Fallbacks), nonZero(d[gw].Drops))
			if n := d[gw].Handshakes["encrypted"]; n != 0 {
				c.enc = true
				t.Errorf("%s counted %d encrypted handshakes", gw, n)
			}
		}
	}
	if r.clientErr != nil {
		t.Logf("sockets at the end:\nhA: %s\nhB: %s", e.runIn(topology.HostA, "ss", "-tni", "dst", dst.String(), "or", "src", dst.String()),
			e.runIn(topology.HostB, "ss", "-tni", "dst", dst.String(), "or", "src", dst.String()))
	}
	return c
}

// asymRun runs one stream client on src to dst, n bytes each way at 4 MB/s
// (the capture of the whole test keeps up), failing after 10 s without
// progress (the tool's least idle time) and bounded by 20 s. Unlike
// transfer it waits for the server's line only briefly: a connection that
// never reached the server has none.
func (e *encEnv) asymRun(t *testing.T, src topology.Node, dst netip.AddrPort, srv *netns.Process, n int64) result {
	t.Helper()
	e.seed += 10
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0 := time.Now()
	out, err := e.topo.RunContext(ctx, src, e.toolArgs("stream-client", "-addr", dst.String(), "-n", fmt.Sprint(n), "-m", fmt.Sprint(n),
		"-seed", fmt.Sprint(e.seed), "-rate", "4000000", "-idle", "5s")...)
	r := result{clientOut: out, clientErr: err, elapsed: time.Since(t0)}
	if ctx.Err() != nil {
		r.clientErr = fmt.Errorf("client still running after 20 s (killed): %w\n%s", ctx.Err(), out)
	}
	parseClient(&r, out)
	wait := 5 * time.Second
	if r.clientErr != nil {
		wait = time.Second
	}
	parseServer(&r, srv, e.seed, wait)
	return r
}

// parseClient fills r from the stream client's output.
func parseClient(r *result, out string) {
	if mm := connectedRe.FindStringSubmatch(out); mm != nil {
		r.local, _ = netip.ParseAddrPort(mm[1])
		r.local = netip.AddrPortFrom(r.local.Addr().Unmap(), r.local.Port())
	}
	if mm := clientRe.FindStringSubmatch(out); mm != nil {
		fmt.Sscan(mm[1], &r.recvBytes)
		r.recvSHA, r.sentSHA = mm[2], mm[3]
	}
}

// parseServer fills r from the stream server's line for seed, waiting up to
// wait for it (the server prints it when both directions ended).
func parseServer(r *result, srv *netns.Process, seed uint64, wait time.Duration) {
	tag := fmt.Sprintf("conn seed=%d ", seed)
	_ = srv.WaitOutput(tag, wait)
	for _, line := range strings.Split(srv.Output(), "\n") {
		if strings.HasPrefix(line, tag) {
			r.serverLine = line
			f := fields(line)
			fmt.Sscan(f["recv_bytes"], &r.srvRecvBytes)
			r.srvRecvSHA, r.srvSentSHA = f["recv_sha"], f["sent_sha"]
		}
	}
}

// flowOf finds gw's record of the connection between hA's end a and hB's
// end b (gwA: inside a, outside b; gwB the other way round).
func (e *encEnv) flowOf(gw topology.Node, a, b netip.AddrPort) (flowDoc, bool, error) {
	var page struct {
		Flows []flowDoc `json:"flows"`
	}
	if err := e.admin(gw, "/api/v1/flows?limit=1000", &page); err != nil {
		return flowDoc{}, false, err
	}
	in, out := a, b
	if gw != topology.GwA {
		in, out = b, a
	}
	for _, f := range page.Flows {
		if sameEnd(f.Inside, in) && sameEnd(f.Outside, out) {
			return f, true, nil
		}
	}
	return flowDoc{}, false, nil
}

func sameEnd(s string, want netip.AddrPort) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr().Unmap() == want.Addr().Unmap() && ap.Port() == want.Port()
}

// asymMarkers: no frame of a connection an appliance reported encrypted
// carries the marker on the captured links; the plain ones that arrived
// do (so the search would find it).
func asymMarkers(t *testing.T, path string, conns []asymConn) {
	t.Helper()
	var enc, plain []string
	for _, c := range conns {
		if !c.a.IsValid() || !c.b.IsValid() {
			continue
		}
		filter := fmt.Sprintf("(tcp.port == %d && tcp.port == %d)", c.a.Port(), c.b.Port())
		if c.enc {
			enc = append(enc, filter)
		} else if c.plain {
			plain = append(plain, c.name)
		}
	}
	if len(plain) > 0 {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), marker) {
			t.Errorf("the plain connections (%s) show no marker on the link: the marker check would prove nothing", strings.Join(plain, ", "))
		}
	}
	if len(enc) == 0 {
		// Only when a -run pattern left out the symmetric and
		// route-change subtests, which fail on their own otherwise.
		t.Log("no connection was reported encrypted: no marker check")
		return
	}
	encPath := strings.TrimSuffix(path, ".pcapng") + "-enc.pcapng"
	if out, err := exec.Command("tshark", "-r", path, "-Y", strings.Join(enc, " || "), "-w", encPath).CombinedOutput(); err != nil {
		t.Fatalf("tshark filter: %v\n%s", err, out)
	}
	noMarker(t, encPath, 1<<20)
}
