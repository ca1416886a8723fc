package negstate

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var ap = netip.MustParseAddrPort

func sample() []Entry {
	return []Entry{
		{In: ap("10.0.0.1:40000"), Out: ap("192.0.2.1:443"), Left: time.Minute},
		{In: ap("[fd00::1]:40001"), Out: ap("[2001:db8::1]:443")}, // held
		{In: ap("[::ffff:10.0.0.2]:40002"), Out: ap("[::ffff:192.0.2.2]:80"), Left: 7 * 24 * time.Hour},
		{In: ap("10.0.0.3:40003"), Out: ap("192.0.2.3:22"), Left: time.Nanosecond},
	}
}

func open(t testing.TB, dir string) *File {
	t.Helper()
	f, err := Open(dir, "", "in.5", "out-b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestRoundTrip: what Save writes, Load reads back in the same order,
// addresses of both families (IPv4-mapped IPv6 too, as the engine sees them) and ports
// intact; the file is not readable by others, and no temporary file stays.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	if _, _, err := f.Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of no file: %v, want fs.ErrNotExist", err)
	}
	written := time.Unix(1_700_000_000, 5)
	n, err := f.Save(sample(), written)
	if err != nil || n != 4 {
		t.Fatalf("Save: %d, %v", n, err)
	}
	got, info, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if want := sample(); !slices.Equal(got, want) {
		t.Fatalf("loaded\n%v\nwant\n%v", got, want)
	}
	if !info.Written.Equal(written) || info.Entries != 4 {
		t.Fatalf("info %+v", info)
	}
	st, err := os.Stat(f.Path())
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != headerSize+4*entrySize+4 {
		t.Fatalf("file %v, %v", st, err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
	if n, err := f.Save(nil, written); err != nil || n != 0 {
		t.Fatalf("Save of an empty set: %d, %v", n, err)
	}
	if got, _, err := f.Load(); err != nil || len(got) != 0 {
		t.Fatalf("empty set loaded as %v, %v", got, err)
	}
}

// TestSaveKeepsWhatMatters: a set larger than a copy holds is cut to the
// entries that matter most: held ones, then those with the most time left.
func TestSaveKeepsWhatMatters(t *testing.T) {
	f := open(t, t.TempDir())
	all := sample()
	for limit, want := range map[int][]Entry{
		1: {all[1]},
		2: {all[1], all[2]},
		3: {all[1], all[2], all[0]},
	} {
		f.max = limit
		if n, err := f.Save(sample(), time.Now()); err != nil || n != limit {
			t.Fatalf("Save at most %d: %d, %v", limit, n, err)
		}
		got, _, err := f.Load()
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("at most %d: the copy holds\n%v (%v)\nwant\n%v", limit, got, err, want)
		}
	}
}

// A copy that is not one this daemon wrote for its ports, or that is cut
// short or damaged, is refused whole, with a reason: it may list
// connections whose segments must not pass, so the operator decides. A
// header claiming more entries than a copy holds is refused before
// anything is read or allocated for them.
func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	if _, err := f.Save(sample(), time.Now()); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	// resum recomputes the checksum, so that only the damage named shows.
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc))
		return b
	}
	edit := func(fn func(b []byte) []byte) []byte { return fn(slices.Clone(good)) }
	for _, tc := range []struct {
		name, why string
		data      []byte
	}{
		{"empty", "truncated", nil},
		{"half a header", "truncated", good[:30]},
		{"foreign", "not a tcpincd copy", []byte(strings.Repeat("some other program's state\n", 20))},
		{"other version", "version 2", edit(func(b []byte) []byte { b[8] = 2; return resum(b) })},
		{"other entry size", "56-byte entries", edit(func(b []byte) []byte { b[12] = 56; return resum(b) })},
		{"other ports", `ports "in.6" and "out-b"`, edit(func(b []byte) []byte { b[35] = '6'; return resum(b) })},
		{"truncated", "truncated", good[:len(good)-10]},
		{"no checksum", "truncated", good[:len(good)-4]},
		{"appended", "truncated or damaged", append(slices.Clone(good), 0)},
		{"huge", "more than", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], 1<<40)
			return resum(b)
		})},
		{"count lies", "truncated or damaged", edit(func(b []byte) []byte { b[16]++; return resum(b) })},
		{"bit flip", "checksum", edit(func(b []byte) []byte { b[headerSize+9] ^= 1; return b })},
		{"bad family", "address family 5", edit(func(b []byte) []byte { b[headerSize] = 5; return resum(b) })},
		{"negative time", "negative time left", edit(func(b []byte) []byte { b[headerSize+47] = 0x80; return resum(b) })},
		{"IPv4 with more", "more than 4 address bytes", edit(func(b []byte) []byte {
			for i := headerSize; i < len(b)-4; i += entrySize {
				if b[i] == 4 {
					b[i+20] = 1
					break
				}
			}
			return resum(b)
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(f.Path(), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			es, _, err := f.Load()
			if err == nil || !strings.Contains(err.Error(), tc.why) || es != nil {
				t.Fatalf("Load: %d entries, %v; want an error saying %q", len(es), err, tc.why)
			}
			if !strings.Contains(err.Error(), f.Path()) {
				t.Fatalf("the error does not name the file: %v", err)
			}
		})
	}
}

// Only one daemon uses a copy at a time: a second Open of the same ports in
// the same directory (two daemons in two unnamed network namespaces with
// the same port names) is refused while the first holds it. Named
// namespaces have copies of their own.
func TestOpenLocks(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	if g, err := Open(dir, "", "in.5", "out-b"); err == nil || !strings.Contains(err.Error(), "in use by another tcpincd") {
		if err == nil {
			g.Close()
		}
		t.Fatalf("second Open: %v", err)
	}
	for _, o := range [][3]string{{"", "in.5", "out"}, {"gwA", "in.5", "out-b"}, {"gwB", "in.5", "out-b"}} {
		g, err := Open(dir, o[0], o[1], o[2])
		if err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		defer g.Close()
	}
	f.Close()
	g, err := Open(dir, "", "in.5", "out-b")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	g.Close()
}

// A write that fails leaves the previous copy whole, and no temporary file.
func TestSaveFailureKeepsCopy(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir)
	if _, err := f.Save(sample(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// A directory where the temporary file goes makes the write fail.
	if err := os.Mkdir(f.Path()+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Save(sample()[:1], time.Now()); err == nil {
		t.Fatal("Save succeeded")
	}
	if err := os.Remove(f.Path() + ".tmp"); err != nil {
		t.Fatal(err)
	}
	if es, _, err := f.Load(); err != nil || len(es) != 4 {
		t.Fatalf("after a failed write: %d entries, %v", len(es), err)
	}
}
