package afxdp

import (
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/xsk"
	"golang.org/x/sys/unix"
)

// TestOpenNegotiated: what one daemon's engines put in the pinned set, the
// next daemon finds: tuples the first still held (live records when it
// stopped) are kept engine.IdleLinger, released ones keep their deadline
// (on BootTime, which the wall clock's steps do not move), expired ones
// are deleted from the pin, and a wall-clock deadline an older tcpincd
// wrote is read as engine.IdleLinger, not as expired or as decades.
func TestOpenNegotiated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a BPF file system); CI runs as root")
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	log := slog.New(slog.DiscardHandler)
	ap := netip.MustParseAddrPort
	held, released, expired := [2]netip.AddrPort{ap("10.0.0.1:1000"), ap("192.0.2.1:80")},
		[2]netip.AddrPort{ap("[fd00::1]:1001"), ap("[2001:db8::1]:443")},
		[2]netip.AddrPort{ap("10.0.0.1:1002"), ap("192.0.2.1:80")}
	older := [2]netip.AddrPort{ap("10.0.0.1:1003"), ap("192.0.2.1:80")}

	// What tcpincd does with the map (cmd/tcpincd/negotiated.go).
	open := func(wantFound bool) (*engine.NegotiatedSet, *xsk.TupleMap) {
		t.Helper()
		m, prior, found, err := OpenNegotiated(dir, "in.5", "out", 64, log)
		if err != nil {
			t.Fatal(err)
		}
		if found != wantFound {
			t.Fatalf("found %v, want %v", found, wantFound)
		}
		set := engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: 64, Store: m, Mono: BootTime})
		for _, e := range prior {
			set.Restore(e.In, e.Out, e.Left)
		}
		return set, m
	}
	set, m := open(false)
	// What the first daemon's engines leave: a live record, a released
	// tuple, one whose deadline has passed.
	set.Add(held[0], held[1], time.Time{})
	for _, e := range []struct {
		k [2]netip.AddrPort
		v int64
	}{{held, 0}, {released, BootTime() + int64(time.Minute)}, {expired, BootTime() - int64(time.Second)},
		{older, time.Now().Add(time.Minute).UnixNano()}} {
		if err := m.Put(e.k[0], e.k[1], e.v); err != nil {
			t.Fatal(err)
		}
	}
	path := m.Path()
	m.Close()

	set, m = open(true)
	defer m.Remove()
	if m.Path() != path {
		t.Fatalf("pinned at %s, then %s", path, m.Path())
	}
	if !set.Contains(held[0], held[1]) || !set.Contains(released[0], released[1]) || set.Contains(expired[0], expired[1]) {
		t.Fatalf("restarted set: held %v released %v expired %v", set.Contains(held[0], held[1]),
			set.Contains(released[0], released[1]), set.Contains(expired[0], expired[1]))
	}
	pinned := map[[2]netip.AddrPort]int64{}
	if err := m.Entries(func(in, out netip.AddrPort, v int64) { pinned[[2]netip.AddrPort{in, out}] = v }); err != nil {
		t.Fatal(err)
	}
	if _, ok := pinned[expired]; ok || len(pinned) != 3 {
		t.Fatalf("pinned entries %v: the expired one stays", pinned)
	}
	for what, k := range map[string][2]netip.AddrPort{"a tuple the previous daemon held": held, "an older tcpincd's wall-clock deadline": older} {
		if d := time.Duration(pinned[k] - BootTime()); d < engine.IdleLinger-time.Minute || d > engine.IdleLinger {
			t.Fatalf("%s expires in %v, want engine.IdleLinger", what, d)
		}
	}
	if d := time.Duration(pinned[released] - BootTime()); d <= 0 || d > time.Minute {
		t.Fatalf("a released tuple expires in %v, want at most its minute", d)
	}
}
