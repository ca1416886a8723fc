package xsk

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/tcpinc/tcpinc/flow"
	"golang.org/x/sys/unix"
)

// bpffs mounts a BPF file system on a temporary directory for the test.
func bpffs(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestTupleMapOutlivesHandle: entries written through one handle are found
// by a later OpenTupleMap of the same path (a restarted daemon), also after
// a change of capacity; Delete of an absent tuple is no error.
func TestTupleMapOutlivesHandle(t *testing.T) {
	path := filepath.Join(bpffs(t), "sub", "negotiated")
	m, err := OpenTupleMap(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	v4in, v4out := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.2:80")
	v6in, v6out := netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:443")
	if err := m.Put(v4in, v4out, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(v6in, v6out, 12345); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(v6out, v6in); err != nil {
		t.Fatalf("delete of an absent tuple: %v", err)
	}
	m.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("not pinned: %v", err)
	}
	for _, capacity := range []int{8, 16} {
		m, err = OpenTupleMap(path, capacity)
		if err != nil {
			t.Fatal(err)
		}
		got := map[[2]netip.AddrPort]int64{}
		if err := m.Entries(func(in, out netip.AddrPort, v int64) { got[[2]netip.AddrPort{in, out}] = v }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[[2]netip.AddrPort{v4in, v4out}] != 0 || got[[2]netip.AddrPort{v6in, v6out}] != 12345 {
			t.Fatalf("capacity %d: entries %v", capacity, got)
		}
		m.Close()
	}
	m, err = OpenTupleMap(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("still pinned after Remove: %v", err)
	}
}

// TestTupleMapRefusesOtherFS: a directory that is not on a BPF file system
// is an error naming it, not a silent in-memory map.
func TestTupleMapRefusesOtherFS(t *testing.T) {
	requireRoot(t)
	if _, err := OpenTupleMap(filepath.Join(t.TempDir(), "negotiated"), 8); err == nil {
		t.Fatal("pinned a map outside a BPF file system")
	}
}

// A pinned map reopened smaller (fewer queues or max_flows after a
// restart) keeps the entries that matter: every held one (a live
// connection's) and then the latest deadlines; Lost counts the rest. In
// hash order, expired entries took the places of held ones.
func TestTupleMapShrinkKeepsHeld(t *testing.T) {
	path := filepath.Join(bpffs(t), "negotiated")
	m, err := OpenTupleMap(path, 200)
	if err != nil {
		t.Fatal(err)
	}
	out := netip.MustParseAddrPort("198.51.100.2:443")
	port := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i))
	}
	for i := range 200 {
		v := int64(0) // held
		if i >= 50 {
			v = int64(i) // released, the later i the later the deadline
		}
		if err := m.Put(port(i), out, v); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	if m, err = OpenTupleMap(path, 60); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	got := map[netip.AddrPort]int64{}
	if err := m.Entries(func(in, _ netip.AddrPort, v int64) { got[in] = v }); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if v, ok := got[port(i)]; !ok || v != 0 {
			t.Fatalf("held entry %d lost (%d entries kept)", i, len(got))
		}
	}
	for i := 190; i < 200; i++ {
		if _, ok := got[port(i)]; !ok {
			t.Fatalf("entry %d (among the latest deadlines) lost", i)
		}
	}
	if len(got) != 60 || m.Lost() != 140 {
		t.Fatalf("%d entries kept, %d counted lost; want 60 and 140", len(got), m.Lost())
	}
}

// A pinned map in a layout this daemon cannot read (another version's keys
// or values) is refused by name and left in place. Before, its entries
// failed to read, nothing was carried over, Lost said 0, and the old pin
// was replaced: the connections it listed became unknown, and a restarted
// daemon passed their segments unchanged.
func TestTupleMapRefusesOtherLayout(t *testing.T) {
	path := filepath.Join(bpffs(t), "negotiated")
	other, err := ebpf.NewMap(&ebpf.MapSpec{Name: "tcpinc_tuples", Type: ebpf.Hash, KeySize: 44, ValueSize: 8, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Put(make([]byte, 44), uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(path); err != nil {
		t.Fatal(err)
	}
	if m, err := OpenTupleMap(path, 8); err == nil || !strings.Contains(err.Error(), "44-byte keys") {
		if err == nil {
			m.Close()
		}
		t.Fatalf("OpenTupleMap of a 44-byte-key map: %v", err)
	}
	again, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatalf("the old pin is gone: %v", err)
	}
	defer again.Close()
	if info, err := again.Info(); err != nil || info.KeySize != 44 {
		t.Fatalf("the old pin was replaced: %+v, %v", info, err)
	}
}

// Resizing the pinned map never leaves its path empty: the new map is
// pinned beside the old one and renamed over it. Before, the old pin was
// removed first, so a daemon killed before the new pin, or a pin that
// failed, left nothing pinned, and the next daemon passed the connections
// the old map listed. Here the last step fails: the old pin, with its
// entries, stays; and a new map a killed daemon left beside it goes at
// the next open.
func TestTupleMapResizeKeepsPin(t *testing.T) {
	path := filepath.Join(bpffs(t), "negotiated")
	m, err := OpenTupleMap(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	in, out := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.2:443")
	if err := m.Put(in, out, 0); err != nil {
		t.Fatal(err)
	}
	m.Close()

	renamePin = func(string, string) error { return unix.EIO }
	_, err = OpenTupleMap(path, 16)
	renamePin = os.Rename
	if err == nil {
		t.Fatal("the resize succeeded although its last step failed")
	}
	pinned := func(capacity uint32) {
		t.Helper()
		p, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			t.Fatalf("nothing pinned at %s: %v", path, err)
		}
		defer p.Close()
		var v uint64
		k := flow.KeyFrom(in, out)
		if info, err := p.Info(); err != nil || info.MaxEntries != capacity || p.Lookup(&k, &v) != nil {
			t.Fatalf("pinned: %+v, %v; the entry found: %v", info, err, p.Lookup(&k, &v) == nil)
		}
	}
	pinned(8)
	if _, err := os.Stat(path + pinSuffix); !os.IsNotExist(err) {
		t.Fatalf("the new map stays pinned beside the old one: %v", err)
	}

	// A daemon killed between the two steps left its new map pinned
	// beside the old one.
	left, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 40, ValueSize: 8, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := left.Pin(path + pinSuffix); err != nil {
		t.Fatal(err)
	}
	left.Close()
	if m, err = OpenTupleMap(path, 16); err != nil {
		t.Fatal(err)
	}
	pinned(16)
	if _, err := os.Stat(path + pinSuffix); !os.IsNotExist(err) {
		t.Fatalf("the map a killed daemon left stays pinned: %v", err)
	}
	if err := m.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("still pinned after Remove: %v", err)
	}
}
