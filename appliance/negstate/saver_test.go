package negstate

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeSet stands for engine.NegotiatedSet: it writes each change to its
// store, as the set does under its lock.
type fakeSet struct {
	mu    sync.Mutex
	m     map[tuple]int64
	now   int64
	store Store
	eachs int
}

func newFakeSet(store Store) *fakeSet { return &fakeSet{m: map[tuple]int64{}, now: 1, store: store} }

func (f *fakeSet) put(in, out netip.AddrPort, d int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[tuple{in, out}] = d
	f.store.Put(in, out, d)
}

func (f *fakeSet) del(in, out netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, tuple{in, out})
	f.store.Delete(in, out)
}

func (f *fakeSet) Each(fn func(in, out netip.AddrPort, deadline int64)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eachs++
	for k, d := range f.m {
		fn(k.in, k.out, d)
	}
}

func (f *fakeSet) Mono() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// recorder is the pinned map behind a Saver.
type recorder struct {
	mu sync.Mutex
	m  map[tuple]int64
}

func (r *recorder) Put(in, out netip.AddrPort, d int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[tuple{in, out}] = d
	return nil
}

func (r *recorder) Delete(in, out netip.AddrPort) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, tuple{in, out})
	return nil
}

var quiet = slog.New(slog.DiscardHandler)

func port(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(i))
}

var far = ap("192.0.2.1:443")

// waitFile waits until the copy holds want (ordered by inside port: a
// Saver writes the set in no particular order).
func waitFile(t *testing.T, f *File, want []Entry) {
	t.Helper()
	var got []Entry
	for range 500 {
		var err error
		got, _, err = f.Load()
		slices.SortFunc(got, func(a, b Entry) int { return int(a.In.Port()) - int(b.In.Port()) })
		if err == nil && slices.Equal(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the copy holds\n%v\nwant\n%v", got, want)
}

// TestSaver: every change reaches the store behind the Saver at once, and
// the disk copy within an interval, each entry with the time it has left
// when written (held ones as held, expired ones not at all); a last write
// at Stop. Nothing is written while nothing changes.
func TestSaver(t *testing.T) {
	f := open(t, t.TempDir())
	pin := &recorder{m: map[tuple]int64{}}
	s := NewSaver(f, pin, 64)
	set := newFakeSet(s)
	set.put(port(1), far, 0)    // restored: held
	set.put(port(2), far, 1001) // released
	s.Start(set, 20*time.Millisecond, quiet)
	defer s.Stop()
	waitFile(t, f, []Entry{{In: port(1), Out: far}, {In: port(2), Out: far, Left: 1000}})

	set.put(port(3), far, 0)
	set.del(port(1), far)
	set.put(port(2), far, 11) // expires before the next write
	set.mu.Lock()
	set.now = 500
	set.mu.Unlock()
	waitFile(t, f, []Entry{{In: port(3), Out: far}})
	if len(pin.m) != 2 || pin.m[tuple{port(3), far}] != 0 || pin.m[tuple{port(2), far}] != 11 {
		t.Fatalf("the store behind the Saver holds %v", pin.m)
	}
	if err := os.Remove(f.Path()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(f.Path()); !os.IsNotExist(err) {
		t.Fatalf("written again although nothing changed: %v", err)
	}
	set.put(port(4), far, 600)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, f, []Entry{{In: port(3), Out: far}, {In: port(4), Out: far, Left: 100}})
	if set.eachs != 0 || s.Saved() != 2 {
		t.Fatalf("the set was copied whole %d times; %d entries saved", set.eachs, s.Saved())
	}
}

// More changes between two writes than the Saver notes: it copies the set
// whole for the next write, and the changes made after the copy still
// reach the file.
func TestSaverOverrun(t *testing.T) {
	f := open(t, t.TempDir())
	s := NewSaver(f, nil, 0) // notes 1024 changes
	set := newFakeSet(s)
	s.Start(set, time.Hour, quiet)
	for i := range 1500 {
		set.put(port(i), far, 0)
	}
	for i := range 1400 {
		set.del(port(i), far)
	}
	s.save(false) // the writer's round
	set.put(port(5000), far, 0)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	var want []Entry
	for i := 1400; i < 1500; i++ {
		want = append(want, Entry{In: port(i), Out: far})
	}
	want = append(want, Entry{In: port(5000), Out: far})
	got, _, err := f.Load()
	slices.SortFunc(got, func(a, b Entry) int { return int(a.In.Port()) - int(b.In.Port()) })
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("after an overrun the copy holds %d entries (%v), want %d", len(got), err, len(want))
	}
	if set.eachs != 1 || s.Copies() != 1 {
		t.Fatalf("%d whole copies of the set (%d counted), want 1", set.eachs, s.Copies())
	}
}

// A write that fails says so (Failed, for the status) until one succeeds,
// and is tried again at the next interval although nothing changed since.
func TestSaverFailure(t *testing.T) {
	f := open(t, t.TempDir())
	s := NewSaver(f, nil, 64)
	set := newFakeSet(s)
	if err := os.Mkdir(f.Path()+".tmp", 0o700); err != nil { // the write fails
		t.Fatal(err)
	}
	s.Start(set, 20*time.Millisecond, quiet)
	defer s.Stop()
	set.put(port(1), far, 0)
	for i := 0; s.Failed() == ""; i++ {
		if i == 500 {
			t.Fatal("a failed write is not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.Remove(f.Path() + ".tmp"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, f, []Entry{{In: port(1), Out: far}})
	for i := 0; s.Failed() != ""; i++ {
		if i == 500 {
			t.Fatalf("still reported after a write succeeded: %s", s.Failed())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkSaverWrite times one write of a set of n tuples, half held, half
// released with distinct deadlines: what the writer's goroutine spends
// every state_interval on a busy appliance (the default set holds up to
// 131,072 tuples per queue pair).
func BenchmarkSaverWrite(b *testing.B) {
	for _, n := range []int{10_000, 131_072} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := open(b, b.TempDir())
			s := NewSaver(f, nil, n)
			set := newFakeSet(s)
			for i := range n {
				in := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 16), byte(i >> 8)}), uint16(i))
				d := int64(0)
				if i%2 == 1 {
					d = int64(1e9 + i)
				}
				set.put(in, far, d)
			}
			s.set, s.log = set, quiet
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.save(true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
