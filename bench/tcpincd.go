package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/deploy/netns"
	"github.com/tcpinc/tcpinc/deploy/topology"
)

// The tcpincd cases: build the daemon (also from another tree, -baseline), start it in the gateways and read its log.

// repoOf is the module root a case's tcpincd is built from.
func (h *harness) repoOf(tc *TcpincdCase) string {
	if tc.Repo != "" {
		return tc.Repo
	}
	return h.cfg.RepoDir
}

// buildTcpincd builds ./cmd/tcpincd of the module root repo into the temp
// dir, once per root.
func (h *harness) buildTcpincd(ctx context.Context, repo string) (*tcpincdBuild, error) {
	if b := h.builds[repo]; b != nil {
		if b.skip != "" {
			return nil, errors.New(b.skip)
		}
		return b, nil
	}
	if h.builds == nil {
		h.builds = map[string]*tcpincdBuild{}
	}
	b := &tcpincdBuild{}
	h.builds[repo] = b
	if _, err := os.Stat(filepath.Join(repo, "cmd", "tcpincd")); err != nil {
		b.skip = "cmd/tcpincd does not exist yet in this tree"
		return nil, errors.New(b.skip)
	}
	bin := filepath.Join(h.tmp, fmt.Sprintf("tcpincd-%d", len(h.builds)))
	h.cfg.Logf("   building ./cmd/tcpincd in %s", repo)
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/tcpincd")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		b.skip = fmt.Sprintf("go build ./cmd/tcpincd failed: %v: %s", err, firstLines(string(out), 5))
		return nil, errors.New(b.skip)
	}
	b.bin, b.rev = bin, revision(repo)
	return b, nil
}

// revision names the source tcpincd was built from: the commit, and whether
// the daemon's packages had uncommitted changes.
func revision(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown revision (not a git checkout)"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--", "cmd/tcpincd", "appliance", "xsk", "flowtable", "cryptopool").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " plus uncommitted changes in the daemon's packages"
	}
	return rev
}

type tcpincdGateway struct {
	procs  []*netns.Process
	admins []*admin.Client // gwA's, gwB's
	socks  []string        // their admin sockets
}

func (g *tcpincdGateway) pids() []int { return procPids(g.procs) }

func (g *tcpincdGateway) check() error {
	for _, p := range g.procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v): %s", p.Name, err, firstLines(p.Output(), 10))
		}
	}
	return nil
}

// passthroughConfig turns the TCP-ENO/tcpcrypt engine off (cases c and d).
const passthroughConfig = "engine:\n  enabled: false\n"

func (h *harness) startTcpincd(topo *topology.Topology, res *Result, tc *TcpincdCase) (gateway, error) {
	engine := tc.Engine
	build, err := h.buildTcpincd(context.Background(), h.repoOf(tc)) // built by runCase
	if err != nil {
		return nil, err
	}
	args := []string{build.bin, "--inside", topology.InsidePort, "--outside", topology.OutsidePort, "--admin", "<unix socket>"}
	if !tc.FastPath {
		args = append(args, "--no-fast-path")
	}
	if !engine {
		path := filepath.Join(h.tmp, "passthrough.yaml")
		if err := os.WriteFile(path, []byte(passthroughConfig), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config", path)
	}
	configAt := len(args) - 1 // the passthrough config's path, shown by its content
	args = append(args, tc.Args...)
	args = append(args, h.cfg.TcpincdArgs...)
	g := &tcpincdGateway{}
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		// The admin API on a unix socket in the temp dir: reachable from
		// here whatever the namespace, and how the harness switches
		// resumption and reads the engine's counters.
		sock := filepath.Join(h.tmp, "admin-"+string(gw)+".sock")
		_ = os.Remove(sock)
		a := append([]string(nil), args...)
		a[6] = "unix:" + sock
		p, err := topo.Start(gw, "tcpincd@"+string(gw), a...)
		if err != nil {
			return nil, err
		}
		g.procs = append(g.procs, p)
		c, err := admin.NewClient("unix:"+sock, "")
		if err != nil {
			return nil, err
		}
		g.admins = append(g.admins, c)
		g.socks = append(g.socks, sock)
	}
	// Give a daemon that rejects its flags or cannot attach a moment to say so.
	time.Sleep(time.Second)
	if err := g.check(); err != nil {
		return nil, err
	}
	if engine && !strings.Contains(g.procs[0].Output(), "engine enabled") {
		res.Notes = append(res.Notes, "the daemon did not log \"engine enabled\": this build may not encrypt")
	}
	if !engine {
		args[configAt] = "<file: engine.enabled false>"
	}
	shown := []string{"tcpincd"}
	for _, a := range args[1:] {
		if a == "" {
			a = "''"
		}
		shown = append(shown, a)
	}
	res.Notes = append(res.Notes, "`"+strings.Join(shown, " ")+"` in gwA and gwB, built from "+build.rev)
	if modes := portModes(g.procs[0].Output()); modes != "" {
		res.Notes = append(res.Notes, "gwA's daemon reports: "+modes)
	}
	return g, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, " / ")
}

// portModes picks the XDP attach and AF_XDP bind modes out of tcpincd's log
// ("port ready ... xdp_mode=native bind_mode=copy").
func portModes(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "xdp_mode=") {
			continue
		}
		var kv []string
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "port=") || strings.HasPrefix(f, "backend=") || strings.HasPrefix(f, "xdp_mode=") || strings.HasPrefix(f, "bind_mode=") || strings.HasPrefix(f, "queues=") {
				kv = append(kv, f)
			}
		}
		out = append(out, strings.Join(kv, " "))
	}
	return strings.Join(out, "; ")
}

// engineCounters picks the per-queue engine counters out of tcpincd's
// shutdown log (msg=engine queue=0 flows=.. handshakes=..).
func engineCounters(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=engine ") {
			continue
		}
		if i := strings.Index(line, "queue="); i >= 0 {
			out = append(out, line[i:])
		}
	}
	return strings.Join(out, "; ")
}
