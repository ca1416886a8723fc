package xsk

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/tcpinc/tcpinc/flow"
	"golang.org/x/sys/unix"
)

// TupleMap is a BPF hash map pinned on a BPF file system that maps a TCP
// tuple (inside end, outside end) to a 64-bit value, and outlives the
// process: tcpincd keeps its set of negotiated tuples in one
// (engine.NegotiatedSet), so a restarted daemon finds them. Only user space
// reads it; no XDP program uses it. Safe for concurrent use (each call is
// one bpf(2) syscall).
type TupleMap struct {
	m     *ebpf.Map
	path  string
	lost  int  // entries of a pinned map of another size that did not fit
	found bool // a map was pinned at path
}

// A TupleMap key is a flow.Key whose source is the inside end and whose
// destination is the outside end (40 bytes: addresses in network byte
// order, IPv4 in the first 4 bytes, ports in host byte order, family 4 or
// 6).

const bpfFSMagic = 0xcafe4a11

// OpenTupleMap opens the map pinned at path, or creates and pins it with
// room for capacity entries. A pinned map of another size is replaced by
// one of the new size holding its entries: when they do not all fit, held
// ones (value 0) first, then those with the latest values (deadlines), and
// Lost says how many did not; the path is never without a pin meanwhile.
// The directory
// is created if needed; if it lies under /sys/fs/bpf and no BPF file
// system is mounted there, one is mounted (as systemd does at boot).
func OpenTupleMap(path string, capacity int) (*TupleMap, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("xsk: tuple map capacity %d", capacity)
	}
	dir := filepath.Dir(path)
	if err := ensureBPFFS(dir); err != nil {
		return nil, err
	}
	spec := &ebpf.MapSpec{
		Name: "tcpinc_tuples", Type: ebpf.Hash, KeySize: 40, ValueSize: 8,
		MaxEntries: uint32(capacity), Flags: unix.BPF_F_NO_PREALLOC,
	}
	_ = os.Remove(path + pinSuffix) // what a daemon killed while replacing the pin left
	old, err := ebpf.LoadPinnedMap(path, nil)
	switch {
	case err == nil:
		info, ierr := old.Info()
		if ierr == nil && info.Type == ebpf.Hash && info.KeySize == 40 && info.ValueSize == 8 && info.MaxEntries == uint32(capacity) {
			return &TupleMap{m: old, path: path, found: true}, nil
		}
		defer old.Close()
		if ierr != nil {
			return nil, fmt.Errorf("xsk: pinned tuple map %s: %w", path, ierr)
		}
		if info.KeySize != 40 || info.ValueSize != 8 {
			// Not a layout this daemon can read (another version's): its
			// tuples would be lost without a word, and their connections'
			// segments passed unchanged. The operator decides.
			return nil, fmt.Errorf("xsk: pinned tuple map %s has %d-byte keys and %d-byte values, not 40 and 8; "+
				"move it away to start without it (the connections it lists are then passed, not reset)", path, info.KeySize, info.ValueSize)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("xsk: open pinned tuple map %s: %w", path, err)
	}
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, fmt.Errorf("xsk: tuple map: %w", err)
	}
	lost := 0
	if old != nil {
		if lost, err = carryOver(old, m); err != nil {
			m.Close()
			return nil, fmt.Errorf("xsk: read pinned tuple map %s: %w", path, err)
		}
	}
	// The new map takes the path in one step, replacing the old pin if
	// any: pinned beside it first, then renamed over it, so that a
	// daemon killed in between, or a failure, leaves the old pin in
	// place (unpinning it first left nothing pinned, and the next daemon
	// passed the connections it listed).
	tmp := path + pinSuffix
	if err := m.Pin(tmp); err != nil {
		m.Close()
		return nil, fmt.Errorf("xsk: pin tuple map at %s: %w", tmp, err)
	}
	if err := renamePin(tmp, path); err != nil {
		_ = os.Remove(tmp)
		m.Close()
		return nil, fmt.Errorf("xsk: pin tuple map at %s: %w", path, err)
	}
	return &TupleMap{m: m, path: path, lost: lost, found: old != nil}, nil
}

// pinSuffix names the pin a new map gets before it takes its path: bpffs
// refuses names with a dot, and interface names (which the pins' names
// hold) cannot have a colon.
const pinSuffix = ":new"

// renamePin is rename(2), which bpffs supports (a variable for tests).
var renamePin = os.Rename

// Found reports whether a map was pinned at the path already (by an
// earlier process since the boot: a reboot empties the BPF file system).
func (t *TupleMap) Found() bool { return t.found }

// Lost is how many entries of a pinned map of another size OpenTupleMap
// could not carry over into this one.
func (t *TupleMap) Lost() int { return t.lost }

// carryOver copies old's entries into m and returns how many did not fit.
// Held entries (value 0: a live connection's) go first, then the latest
// deadlines: an entry in hash order could take the place of a held one and
// leave a live encrypted connection unknown to the new daemon.
func carryOver(old, m *ebpf.Map) (int, error) {
	type entry struct {
		k flow.Key
		v uint64
	}
	var all []entry
	var e entry
	it := old.Iterate()
	for it.Next(&e.k, &e.v) {
		all = append(all, e)
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	slices.SortFunc(all, func(a, b entry) int {
		switch {
		case a.v == b.v:
			return 0
		case a.v == 0:
			return -1
		case b.v == 0:
			return 1
		case a.v > b.v:
			return -1
		}
		return 1
	})
	for i := range all {
		if m.Update(&all[i].k, all[i].v, ebpf.UpdateAny) != nil {
			return len(all) - i, nil // full
		}
	}
	return 0, nil
}

// ensureBPFFS makes dir, mounting a BPF file system at /sys/fs/bpf first if
// dir is below it and none is there.
func ensureBPFFS(dir string) error {
	const root = "/sys/fs/bpf"
	if dir == root || strings.HasPrefix(dir, root+"/") {
		var st unix.Statfs_t
		if err := unix.Statfs(root, &st); err != nil || uint32(st.Type) != bpfFSMagic {
			if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("xsk: mount a BPF file system at %s: %w", root, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("xsk: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("xsk: %w", err)
	}
	if uint32(st.Type) != bpfFSMagic {
		return fmt.Errorf("xsk: %s is not on a BPF file system (mount -t bpf bpf <dir>)", dir)
	}
	return nil
}

// Path is where the map is pinned.
func (t *TupleMap) Path() string { return t.path }

// Put sets the tuple's value.
func (t *TupleMap) Put(in, out netip.AddrPort, v int64) error {
	k := flow.KeyFrom(in, out)
	return t.m.Update(&k, uint64(v), ebpf.UpdateAny)
}

// Delete removes the tuple; an absent one is not an error.
func (t *TupleMap) Delete(in, out netip.AddrPort) error {
	k := flow.KeyFrom(in, out)
	if err := t.m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// Entries calls fn with every entry.
func (t *TupleMap) Entries(fn func(in, out netip.AddrPort, v int64)) error {
	var k flow.Key
	var v uint64
	it := t.m.Iterate()
	for it.Next(&k, &v) {
		in, out := k.AddrPorts()
		fn(in, out, int64(v))
	}
	return it.Err()
}

// Close releases this process's handle; the pinned map stays.
func (t *TupleMap) Close() error { return t.m.Close() }

// Remove unpins the map (it goes once no process holds it) and closes it.
func (t *TupleMap) Remove() error {
	err := os.Remove(t.path) // not t.m.Unpin: a new map was renamed into place
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, t.m.Close())
}

// NetnsID identifies the calling thread's network namespace (its inode
// number): stable while the namespace exists, so a daemon restarted in it
// finds what the previous one pinned under a name that includes it.
func NetnsID() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
