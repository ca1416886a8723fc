package impair

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestInsertForwards splices the bump into a bridge-mode topology (no
// tcpincd: the gateways are kernel bridges) and moves a file over HTTP from
// hB to hA through it with reordering and duplication on: the sha256 must
// match, the counters must show held, overtaken and duplicated frames in
// both directions, and nothing lost by the bump itself.
func TestInsertForwards(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, AF_PACKET); CI runs it as root")
	}
	for _, tool := range []string{"ip", "nft", "ethtool", "tc", "curl", "python3", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
	}
	const prefix = "tei-imp-"
	bin := filepath.Join(t.TempDir(), "tcpinc-impair")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tcpinc/tcpinc/cmd/tcpinc-impair").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Namespaces are machine-wide: wait for another run of this test.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "tcpinc-netns-"+prefix+"lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // after the topology is down (cleanups run last-in first-out)
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_ = topology.Down(prefix)
	topo, err := topology.Up(topology.Options{Prefix: prefix, Net: 94})
	if err != nil {
		t.Fatal(err)
	}
	var link *Link
	t.Cleanup(func() {
		if link != nil {
			if err := link.Close(); err != nil {
				t.Error(err)
			}
		}
		if err := topo.Down(); err != nil {
			t.Error(err)
		}
	})
	link, err = Insert(prefix)
	if err != nil {
		t.Fatal(err)
	}
	b := topo.Addr(topology.HostB).V4
	if out, err := topo.Run(topology.HostA, "ping", "-c", "1", "-W", "1", b.String()); err == nil {
		t.Fatalf("the link forwards with no bump running:\n%s", out)
	}
	p, err := link.Start(bin, "--reorder", "0.05", "--hold-frames", "2", "--dup", "0.01", "--seed", "5")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := topo.Run(topology.HostA, "ping", "-c", "3", "-i", "0.2", "-W", "2", b.String()); err != nil {
		t.Fatalf("ping through the bump: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", "head -c 30000000 /dev/urandom > "+filepath.Join(dir, "blob")+" && sha256sum "+filepath.Join(dir, "blob")).Output(); err != nil {
		t.Fatal(err)
	} else {
		want := strings.Fields(string(out))[0]
		srv, err := topo.Start(topology.HostB, "http", "python3", "-u", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory", dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.WaitOutput("Serving HTTP", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		got, err := topo.Run(topology.HostA, "sh", "-c", "curl -sS --fail --max-time 60 http://"+b.String()+":8080/blob | sha256sum")
		if err != nil || strings.Fields(got)[0] != want {
			t.Fatalf("download through the bump: %v, sha256 %q, want %s", err, got, want)
		}
	}
	if err := p.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}
	out := p.Output()
	t.Log(out)
	re := regexp.MustCompile(`in=(\d+) out=(\d+) held=(\d+) overtaken=(\d+) duplicated=(\d+) full=(\d+) write_errors=(\d+) socket_drops=(\d+)`)
	ms := re.FindAllStringSubmatch(out, -1)
	if len(ms) != 2 {
		t.Fatalf("no counters at exit:\n%s", out)
	}
	for _, m := range ms {
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		if n(3) == 0 || n(4) == 0 || n(5) == 0 {
			t.Errorf("a direction was not impaired: %s", m[0])
		}
		if n(2) != n(1)+n(5) {
			t.Errorf("out %d != in %d + duplicated %d: the bump lost frames", n(2), n(1), n(5))
		}
		if n(7) != 0 || n(8) != 0 {
			t.Errorf("write errors or socket drops: %s", m[0])
		}
	}
}
