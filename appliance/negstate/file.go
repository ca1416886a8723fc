// Package negstate keeps a copy of the negotiated set (engine.NegotiatedSet)
// on disk. The set is pinned in the BPF file system, which lives in memory:
// a reboot of the appliance empties it, while the hosts behind the
// appliance keep their connections. The copy lets the first daemon after a
// boot reset those connections' segments instead of passing them
// (docs/architecture.md §2, invariant 5).
//
// The package does not import the engine: the set reaches it through the
// engine's TupleStore interface, which a Saver implements, and Set.
package negstate

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Entry is one tuple of the set: its inside and outside ends, and the time
// it had left when it was written; 0 means a live record held it.
type Entry struct {
	In, Out netip.AddrPort
	Left    time.Duration
}

// SortEntries puts the entries that matter most first, for when not all
// fit: held ones, then those with the most time left. Entries of equal
// rank keep no particular order.
func SortEntries(es []Entry) {
	rank := func(e Entry) time.Duration {
		if e.Left == 0 {
			return 1<<63 - 1
		}
		return e.Left
	}
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(rank(b), rank(a)) })
}

// The file: a header, count entries, and the CRC-32C of all that. Integers
// are little-endian.
//
//	header (64 bytes): magic "TCPINCNS", version (uint32) 1, entry size
//	  (uint32) 48, count (uint64), written (int64, Unix nanoseconds: the
//	  wall clock, for the log only), inside and outside port names (16
//	  bytes each, NUL-padded)
//	entry (48 bytes): family (4 or 6), 0, inside port, outside port
//	  (uint16 each), 0, 0, inside address, outside address (16 bytes each;
//	  IPv4 in the first 4), time left (int64 nanoseconds, 0: held)
const (
	magic      = "TCPINCNS"
	version    = 1
	headerSize = 64
	entrySize  = 48
	nameSize   = 16 // IFNAMSIZ
)

// MaxEntries bounds a file: a larger count is refused as damaged, and Save
// writes at most this many (the ones SortEntries puts first).
const MaxEntries = 1 << 24

var crc = crc32.MakeTable(crc32.Castagnoli)

// File is the disk copy of one daemon's set, in its state directory, named
// after its network namespace and two ports. Open locks it, so that two
// daemons never share one.
type File struct {
	path, inside, outside string
	lock                  *os.File
	max                   int // entries Save writes at most: MaxEntries (tests lower it)
}

// Open returns the disk copy for the ports inside and outside in dir,
// making dir if needed, and locks it until Close. netns names the network
// namespace (as ip-netns(8) does; "" for one without a name, such as the
// initial one): the names outlive a reboot, where namespaces' identities
// do not. A copy locked by another process is an error.
func Open(dir, netns, inside, outside string) (*File, error) {
	if len(inside) >= nameSize || len(outside) >= nameSize {
		return nil, fmt.Errorf("port names %q and %q: longer than an interface name", inside, outside)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Interface names cannot hold a colon: no two pairs share a name.
	base := "negotiated-" + inside + ":" + outside
	if netns != "" {
		base = "negotiated-" + netns + ":" + inside + ":" + outside
	}
	path := filepath.Join(dir, base)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another tcpincd (one in another unnamed network namespace with the same port names?): give each its own state_dir", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = os.Remove(path + ".tmp") // a write a crash interrupted
	return &File{path: path, inside: inside, outside: outside, lock: lock, max: MaxEntries}, nil
}

// Path is the file's name.
func (f *File) Path() string { return f.path }

// Close releases the lock.
func (f *File) Close() error { return f.lock.Close() }

// Info describes a loaded file.
type Info struct {
	Written time.Time // by the wall clock of the daemon that wrote it
	Entries int
}

// Load reads the copy. A missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist). A file that is not a copy this daemon
// wrote for these ports (another program's, another version's, other
// ports'), or that is truncated or damaged, is refused whole: it may list
// connections whose segments must not pass, and the operator decides.
func (f *File) Load() ([]Entry, Info, error) {
	fd, err := os.Open(f.path)
	if err != nil {
		return nil, Info{}, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, Info{}, err
	}
	refuse := func(format string, a ...any) ([]Entry, Info, error) {
		return nil, Info{}, fmt.Errorf("%s: "+format, append([]any{f.path}, a...)...)
	}
	h := crc32.New(crc)
	r := bufio.NewReaderSize(fd, 64<<10)
	read := func(b []byte) error { // into the checksum as they are read
		_, err := io.ReadFull(r, b)
		h.Write(b)
		return err
	}
	var hdr [headerSize]byte
	if err := read(hdr[:]); err != nil {
		return refuse("truncated: %d bytes, not even a header", st.Size())
	}
	if string(hdr[:8]) != magic {
		return refuse("not a tcpincd copy of the negotiated set (it starts %q)", hdr[:8])
	}
	if v, es := binary.LittleEndian.Uint32(hdr[8:]), binary.LittleEndian.Uint32(hdr[12:]); v != version || es != entrySize {
		return refuse("format version %d (%d-byte entries), written by another version of tcpincd; this one reads version %d", v, es, version)
	}
	if in, out := name(hdr[32:48]), name(hdr[48:64]); in != f.inside || out != f.outside {
		return refuse("written for the ports %q and %q, not %q and %q", in, out, f.inside, f.outside)
	}
	count := binary.LittleEndian.Uint64(hdr[16:])
	if count > MaxEntries {
		return refuse("damaged: it claims %d entries, more than the %d a copy holds", count, MaxEntries)
	}
	if want := headerSize + int64(count)*entrySize + 4; st.Size() != want {
		return refuse("truncated or damaged: %d bytes, where %d entries take %d", st.Size(), count, want)
	}
	es := make([]Entry, 0, count)
	var b [entrySize]byte
	var bad error
	for i := range count {
		if err := read(b[:]); err != nil {
			return refuse("read: %v", err)
		}
		e, err := decode(b)
		if err != nil && bad == nil {
			bad = fmt.Errorf("entry %d: %w", i, err)
		}
		es = append(es, e)
	}
	sum := h.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(r, tail[:]); err != nil {
		return refuse("read: %v", err)
	}
	switch {
	case binary.LittleEndian.Uint32(tail[:]) != sum:
		return refuse("damaged: its checksum does not match")
	case bad != nil:
		return refuse("damaged: %v", bad)
	}
	return es, Info{Written: time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[24:]))), Entries: len(es)}, nil
}

func name(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }

func decode(b [entrySize]byte) (Entry, error) {
	if b[1] != 0 || b[6] != 0 || b[7] != 0 {
		return Entry{}, errors.New("reserved bytes set")
	}
	var in, out netip.Addr
	switch b[0] {
	case 4:
		if !allZero(b[12:24]) || !allZero(b[28:40]) {
			return Entry{}, errors.New("IPv4 entry with more than 4 address bytes")
		}
		in, out = netip.AddrFrom4([4]byte(b[8:12])), netip.AddrFrom4([4]byte(b[24:28]))
	case 6:
		in, out = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return Entry{}, fmt.Errorf("address family %d", b[0])
	}
	left := time.Duration(binary.LittleEndian.Uint64(b[40:]))
	if left < 0 {
		return Entry{}, fmt.Errorf("negative time left %v", left)
	}
	return Entry{
		In:   netip.AddrPortFrom(in, binary.LittleEndian.Uint16(b[2:])),
		Out:  netip.AddrPortFrom(out, binary.LittleEndian.Uint16(b[4:])),
		Left: left,
	}, nil
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// encodable says whether e is a tuple the engine makes: both ends of one
// family.
func encodable(e Entry) bool {
	return e.In.Addr().Is4() && e.Out.Addr().Is4() || e.In.Addr().Is6() && e.Out.Addr().Is6()
}

func encode(b *[entrySize]byte, e Entry) {
	*b = [entrySize]byte{}
	if e.In.Addr().Is4() {
		b[0] = 4
		a, c := e.In.Addr().As4(), e.Out.Addr().As4()
		copy(b[8:], a[:])
		copy(b[24:], c[:])
	} else {
		b[0] = 6
		a, c := e.In.Addr().As16(), e.Out.Addr().As16()
		copy(b[8:], a[:])
		copy(b[24:], c[:])
	}
	binary.LittleEndian.PutUint16(b[2:], e.In.Port())
	binary.LittleEndian.PutUint16(b[4:], e.Out.Port())
	binary.LittleEndian.PutUint64(b[40:], uint64(max(e.Left, 0)))
}

// Save replaces the copy with es and returns how many entries it wrote. At
// most MaxEntries fit: of more, it keeps those SortEntries puts first, and
// only then sorts (es is reordered), because a sort of the whole set every
// write would cost the writer more than the write itself. The file is
// written beside the copy, synced, renamed over it, and the directory
// synced: a crash or a power loss at any point leaves the old copy or the
// new one, whole.
func (f *File) Save(es []Entry, written time.Time) (int, error) {
	es = slices.DeleteFunc(es, func(e Entry) bool { return !encodable(e) })
	if len(es) > f.max {
		SortEntries(es)
		es = es[:f.max]
	}
	tmp := f.path + ".tmp"
	fd, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	err = write(fd, es, written, f.inside, f.outside)
	if err == nil {
		err = fd.Sync()
	}
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	return len(es), syncDir(filepath.Dir(f.path))
}

func write(w io.Writer, es []Entry, written time.Time, inside, outside string) error {
	h := crc32.New(crc)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	var hdr [headerSize]byte
	copy(hdr[:], magic)
	binary.LittleEndian.PutUint32(hdr[8:], version)
	binary.LittleEndian.PutUint32(hdr[12:], entrySize)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(es)))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(written.UnixNano()))
	copy(hdr[32:48], inside)
	copy(hdr[48:64], outside)
	bw.Write(hdr[:])
	var b [entrySize]byte // one buffer: a fresh one per entry escapes to the heap
	for _, e := range es {
		encode(&b, e)
		bw.Write(b[:])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], h.Sum32())
	_, err := w.Write(tail[:])
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
