package negstate

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the engine's TupleStore: where the set writes each change.
type Store interface {
	Put(in, out netip.AddrPort, deadline int64) error
	Delete(in, out netip.AddrPort) error
}

// Set is what a Saver reads of the set it keeps (engine.NegotiatedSet):
// a copy of every entry, taken under the set's lock, and its clock.
type Set interface {
	Each(fn func(in, out netip.AddrPort, deadline int64))
	Mono() int64
}

// Saver keeps a File up to date with a negotiated set. It is the set's
// store (engine.NegotiatedConfig.Store): it passes each change on to Next
// (the pinned map; nil: none) and notes it, and its goroutine (Start)
// applies the notes to a copy of its own and writes the file every
// interval in which something changed, and at Stop. So a worker that holds
// or releases a tuple waits neither for the disk nor for a copy of the set.
// When more changes come between two writes than the set has room for
// (the notes are bounded), they are dropped and the next write copies the
// set whole instead, which holds its lock for the copy.
type Saver struct {
	file  *File
	next  Store
	limit int

	mu      sync.Mutex
	notes   []note
	overrun bool

	// The writer's (Start's goroutine; Stop's once it ended).
	set   Set
	copy  map[tuple]int64
	es    []Entry // the entries of the last write, reused for the next
	dirty bool
	log   *slog.Logger

	saved    atomic.Int64 // entries in the last copy written
	failed   atomic.Pointer[string]
	copies   atomic.Uint64 // whole copies of the set (overruns)
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type tuple struct{ in, out netip.AddrPort }

// note is one change: a deadline on the set's clock (0: held), or a
// deletion.
type note struct {
	k        tuple
	deadline int64
	del      bool
}

// NewSaver returns a Saver writing f, passing changes on to next (may be
// nil), that notes up to limit changes between two writes (the set's
// capacity is a good limit; at least 1024).
func NewSaver(f *File, next Store, limit int) *Saver {
	return &Saver{file: f, next: next, limit: max(limit, 1024), copy: map[tuple]int64{}}
}

// Put notes the change and passes it on.
func (s *Saver) Put(in, out netip.AddrPort, deadline int64) error {
	s.note(note{k: tuple{in, out}, deadline: deadline})
	if s.next == nil {
		return nil
	}
	return s.next.Put(in, out, deadline)
}

// Delete notes the change and passes it on.
func (s *Saver) Delete(in, out netip.AddrPort) error {
	s.note(note{k: tuple{in, out}, del: true})
	if s.next == nil {
		return nil
	}
	return s.next.Delete(in, out)
}

func (s *Saver) note(n note) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overrun {
		return
	}
	if len(s.notes) >= s.limit {
		s.notes, s.overrun = nil, true
		return
	}
	s.notes = append(s.notes, n)
}

// Start writes the copy of set every interval in which it changed, until
// Stop. The set's entries so far must have reached the Saver as changes
// (engine.NegotiatedSet.Restore writes them to its store).
func (s *Saver) Start(set Set, every time.Duration, log *slog.Logger) {
	s.set, s.log = set, log
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.save(false)
			}
		}
	}()
}

// Stop ends Start's goroutine and writes the copy a last time (the
// workers have stopped: it is exact). It returns that write's error.
func (s *Saver) Stop() error {
	if s.stop == nil {
		return nil // never started
	}
	var err error
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		err = s.save(true)
	})
	return err
}

// Failed is the last write's error, "" if it succeeded.
func (s *Saver) Failed() string {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return ""
}

// Saved is how many entries the last copy written holds; Copies how many
// times the set was copied whole because its changes overran the notes.
func (s *Saver) Saved() int64   { return s.saved.Load() }
func (s *Saver) Copies() uint64 { return s.copies.Load() }

// save applies the notes and writes the file if the set changed (or
// always). It runs on the writer's goroutine only.
func (s *Saver) save(always bool) error {
	s.mu.Lock()
	notes, overrun := s.notes, s.overrun
	s.notes, s.overrun = nil, false
	s.mu.Unlock()
	if overrun {
		// The notes taken are older than this copy: drop them. A change
		// made since is noted again and applied on top, which leaves
		// each tuple as its last change made it.
		if s.copies.Add(1) == 1 {
			s.log.Warn("the negotiated set changed faster than its disk copy notes changes: copying it whole (under its lock) for this write", "limit", s.limit)
		}
		clear(s.copy)
		s.set.Each(func(in, out netip.AddrPort, d int64) { s.copy[tuple{in, out}] = d })
		s.dirty = true
	}
	for _, n := range notes {
		if n.del {
			delete(s.copy, n.k)
		} else {
			s.copy[n.k] = n.deadline
		}
		s.dirty = true
	}
	if !s.dirty && !always {
		return nil
	}
	now := s.set.Mono()
	es := s.es[:0]
	for k, d := range s.copy {
		switch {
		case d == 0:
			es = append(es, Entry{In: k.in, Out: k.out})
		case d > now:
			es = append(es, Entry{In: k.in, Out: k.out, Left: time.Duration(d - now)})
		default:
			delete(s.copy, k) // expired
		}
	}
	n, err := s.file.Save(es, time.Now())
	s.es = es[:0]
	if err != nil {
		msg := "negotiated set: disk copy " + s.file.Path() + " not written: " + err.Error()
		if old := s.failed.Swap(&msg); old == nil {
			s.log.Error("the negotiated set's disk copy was not written: after a reboot, connections encrypted since its last write would pass, not be reset", "file", s.file.Path(), "err", err)
		}
		return err
	}
	if old := s.failed.Swap(nil); old != nil {
		s.log.Info("the negotiated set's disk copy is written again", "file", s.file.Path(), "entries", n)
	}
	s.dirty = false
	s.saved.Store(int64(n))
	return nil
}
