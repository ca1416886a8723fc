package bench

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// The wireguard-go anchor: build, start and configure it in the gateways.

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildWireguard builds wireguard-go from the Go module proxy into the temp
// dir (never into the repository).
func (h *harness) buildWireguard(ctx context.Context) error {
	if h.wgBin != "" || h.wgErr != "" {
		if h.wgErr != "" {
			return errors.New(h.wgErr)
		}
		return nil
	}
	dir := filepath.Join(h.tmp, "wg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	h.cfg.Logf("   building golang.zx2c4.com/wireguard@%s", h.cfg.WireguardVersion)
	cmd := exec.CommandContext(ctx, goTool(), "install", "golang.zx2c4.com/wireguard@"+h.cfg.WireguardVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		h.wgErr = fmt.Sprintf("building wireguard-go %s failed: %v: %s", h.cfg.WireguardVersion, err, strings.TrimSpace(string(out)))
		return errors.New(h.wgErr)
	}
	h.wgBin = filepath.Join(dir, "wireguard")
	return nil
}

type wgGateway struct{ procs []*netns.Process }

func (g *wgGateway) pids() []int { return procPids(g.procs) }

func (g *wgGateway) check() error {
	for _, p := range g.procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v): %s", p.Name, err, p.Output())
		}
	}
	return nil
}

// startWireguard runs wireguard-go in gwA and gwB (routed mode), configures
// both over the UAPI socket and routes each enclave to the other through the
// tunnel.
func (h *harness) startWireguard(topo *topology.Topology, res *Result) (gateway, error) {
	type end struct {
		gw, side, peerSide topology.Node
		name               string
		tunAddr            string
		key                *ecdh.PrivateKey
	}
	base := strings.NewReplacer("-", "", ".", "", "_", "").Replace(h.cfg.Prefix)
	ends := []*end{
		{gw: topology.GwA, side: topology.HostA, peerSide: topology.HostB, name: base + "wgA", tunAddr: fmt.Sprintf("10.%d.20.1/24", h.cfg.Net)},
		{gw: topology.GwB, side: topology.HostB, peerSide: topology.HostA, name: base + "wgB", tunAddr: fmt.Sprintf("10.%d.20.2/24", h.cfg.Net)},
	}
	for _, e := range ends {
		if len(e.name) > 15 {
			return nil, fmt.Errorf("wireguard interface name %q too long (shorten the prefix)", e.name)
		}
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		e.key = k
	}
	const port = 51820
	g := &wgGateway{}
	env := topo.Env()
	for i, e := range ends {
		peer := ends[1-i]
		sock := "/var/run/wireguard/" + e.name + ".sock"
		_ = os.Remove(sock) // stale socket of a crashed run
		p, err := topo.Start(e.gw, "wireguard-go "+e.name, h.wgBin, "-f", e.name)
		if err != nil {
			return nil, err
		}
		g.procs = append(g.procs, p)
		env.Defer("wireguard socket "+sock, func() error {
			if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
		if err := waitFile(sock, 10*time.Second, p); err != nil {
			return nil, err
		}
		peerV4, _ := topo.GatewayOutsideAddr(peer.gw)
		pv4, pv6 := topo.SideNets(e.peerSide)
		cfg := WireguardConfig(e.key.Bytes(), peer.key.PublicKey().Bytes(), port,
			netip.AddrPortFrom(peerV4, port), []netip.Prefix{pv4, pv6})
		if err := uapiSet(sock, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", e.name, err)
		}
		ns := topo.NS(e.gw)
		if err := env.AddAddr(ns, e.name, e.tunAddr); err != nil {
			return nil, err
		}
		if err := env.LinkUp(ns, e.name); err != nil {
			return nil, err
		}
		if err := env.AddRoute(ns, pv4.String(), "dev", e.name); err != nil {
			return nil, err
		}
		if err := env.AddRoute(ns, pv6.String(), "dev", e.name); err != nil {
			return nil, err
		}
	}
	mtu, _ := topo.Run(topology.GwA, "cat", "/sys/class/net/"+ends[0].name+"/mtu")
	res.Notes = append(res.Notes, fmt.Sprintf("golang.zx2c4.com/wireguard@%s built with %s; tunnel MTU %s; endpoints on the transit subnets through rtr",
		h.cfg.WireguardVersion, runtime.Version(), strings.TrimSpace(mtu)))
	return g, nil
}

func waitFile(path string, timeout time.Duration, p *netns.Process) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v): %s", p.Name, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: no %s after %v: %s", p.Name, path, timeout, p.Output())
}

// uapiSet sends one "set" request over a wireguard UAPI socket.
func uapiSet(sock, body string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("set=1\n" + body + "\n")); err != nil {
		return err
	}
	var resp []byte
	buf := make([]byte, 512)
	for !bytes.HasSuffix(resp, []byte("\n\n")) {
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil {
			break
		}
	}
	errno, err := ParseUAPIErrno(string(resp))
	if err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("uapi set: errno %d", errno)
	}
	return nil
}
