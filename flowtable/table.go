package flowtable

import (
	"hash/maphash"
	"math"

	"github.com/tcpinc/tcpinc/flow"
)

// Class is a caller-chosen flow state class (for example embryonic,
// negotiating, encrypted, closing). Each class has its own idle timeout.
// Values must be below MaxClasses; larger ones are taken modulo MaxClasses.
type Class uint8

// MaxClasses is the number of classes a Table supports.
const MaxClasses = 8

// Reason says why the table removed a flow on its own.
type Reason uint8

const (
	// Evicted: the table was full and this flow made room for a new one.
	Evicted Reason = iota + 1
	// Expired: the flow was idle longer than its class's timeout.
	Expired
)

func (r Reason) String() string {
	switch r {
	case Evicted:
		return "evicted"
	case Expired:
		return "expired"
	}
	return "unknown"
}

// Config configures a Table.
type Config[V any] struct {
	// Capacity is the hard cap on the number of flows (at least 1).
	Capacity int
	// IdleTimeout[c] is how long (in the caller's clock units, nanoseconds
	// by convention) a flow of class c may stay idle before Expire removes
	// it. Zero means the class never expires by age.
	IdleTimeout [MaxClasses]int64
	// OnRemove, if set, is called for every flow the table removes by itself
	// (eviction at capacity, expiry), before the flow is gone, so the owner
	// can clean up (for example remove the flow's fast-path BPF map entry).
	// It must not call methods of the table. Delete does not call it.
	OnRemove func(k flow.Key, v *V, why Reason)
}

const none = -1

type entry[V any] struct {
	key        flow.Key
	hash       uint64
	last       int64 // last seen, caller's clock
	prev, next int32 // class list: prev is newer, next is older
	class      Class
	val        V
}

// Table is a flow table owned by one worker: no locks, no allocation after
// New, a hard cap, and aging by a clock the caller passes in (the table never
// reads the time itself, so tests are deterministic).
//
// The index is open addressing with linear probing and backward-shift
// deletion (no tombstones, so lookups never slow down under churn), hashed with
// hash/maphash under a per-table random seed: remote hosts cannot predict
// which flows collide. It is kept at most half full. Entries live in one
// preallocated slice; per class, a doubly linked list (by index) orders flows
// from most to least recently seen.
//
// Expiry and eviction: within a class every flow has the same timeout, so the
// least recently seen flow of each class is the first to expire. Expire walks
// the class tails only. At capacity, Insert evicts the flow whose idle
// deadline (last seen + its class timeout) comes first, which is the oldest
// idle flow of the class with the shortest timeout: under a SYN flood, flows
// in a short-timeout embryonic class go before established ones. Flows of
// classes without a timeout go last, oldest first.
//
// Pointers returned by Lookup, Touch and Insert stay valid until the flow is
// removed.
type Table[V any] struct {
	cfg     Config[V]
	seed    maphash.Seed
	slots   []uint64 // low 32 bits of the hash << 32 | entry index + 1; 0 is empty
	mask    uint64
	ents    []entry[V]
	free    int32 // free list through entry.next
	n       int
	head    [MaxClasses]int32 // most recently seen
	tail    [MaxClasses]int32 // least recently seen
	evicted uint64
	expired uint64
}

// New returns an empty table. It allocates all memory up front: per flow of
// capacity, one entry (72 bytes plus the size of V) and 16 to 32 bytes of index.
func New[V any](cfg Config[V]) *Table[V] {
	if cfg.Capacity < 1 {
		cfg.Capacity = 1
	}
	if cfg.Capacity > math.MaxInt32/4 {
		cfg.Capacity = math.MaxInt32 / 4
	}
	size := 2
	for size < 2*cfg.Capacity {
		size *= 2
	}
	t := &Table[V]{
		cfg:   cfg,
		seed:  maphash.MakeSeed(),
		slots: make([]uint64, size),
		mask:  uint64(size - 1),
		ents:  make([]entry[V], cfg.Capacity),
	}
	for i := range t.ents {
		t.ents[i].next = int32(i + 1)
	}
	t.ents[len(t.ents)-1].next = none
	t.free = 0
	for c := range t.head {
		t.head[c], t.tail[c] = none, none
	}
	return t
}

// Len returns the number of flows.
func (t *Table[V]) Len() int { return t.n }

// Cap returns the capacity.
func (t *Table[V]) Cap() int { return len(t.ents) }

// Evictions returns how many flows were evicted at capacity so far.
func (t *Table[V]) Evictions() uint64 { return t.evicted }

// Expirations returns how many flows Expire removed so far.
func (t *Table[V]) Expirations() uint64 { return t.expired }

// find returns the slot of k and whether it holds k; if not, the slot is the
// empty one where k would go.
//
// Each slot carries the low half of its entry's hash, so a probe touches an
// entry (a likely cache miss in a big table) only when those 32 bits match, and
// deletion finds an entry's home slot without touching it at all.
func (t *Table[V]) find(k flow.Key, h uint64) (uint64, bool) {
	fp := h << 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return i, false
		}
		if s&^0xffffffff == fp && t.ents[slotIndex(s)].key == k {
			return i, true
		}
	}
}

func slotIndex(s uint64) int32 { return int32(uint32(s)) - 1 }

func (t *Table[V]) hash(k flow.Key) uint64 { return maphash.Comparable(t.seed, k) }

// Lookup returns the flow's value, without marking it seen.
func (t *Table[V]) Lookup(k flow.Key) (*V, bool) {
	i, ok := t.find(k, t.hash(k))
	if !ok {
		return nil, false
	}
	return &t.ents[slotIndex(t.slots[i])].val, true
}

// Touch returns the flow's value and marks it seen at now.
func (t *Table[V]) Touch(k flow.Key, now int64) (*V, bool) {
	i, ok := t.find(k, t.hash(k))
	if !ok {
		return nil, false
	}
	idx := slotIndex(t.slots[i])
	e := &t.ents[idx]
	t.unlink(idx)
	t.pushFront(idx, e.class, now)
	return &e.val, true
}

// SetClass moves the flow to class c (a new state with its own timeout) and
// marks it seen at now. It reports whether the flow exists.
func (t *Table[V]) SetClass(k flow.Key, c Class, now int64) bool {
	c %= MaxClasses
	i, ok := t.find(k, t.hash(k))
	if !ok {
		return false
	}
	idx := slotIndex(t.slots[i])
	t.unlink(idx)
	t.pushFront(idx, c, now)
	return true
}

// Insert stores v for k in class c, seen at now, and returns a pointer to the
// stored value. If k is already present its value and class are replaced and
// existed is true. If the table is full, one flow is evicted first (see Table)
// and passed to OnRemove.
func (t *Table[V]) Insert(k flow.Key, v V, c Class, now int64) (p *V, existed bool) {
	c %= MaxClasses
	h := t.hash(k)
	i, ok := t.find(k, h)
	if ok {
		idx := slotIndex(t.slots[i])
		e := &t.ents[idx]
		e.val = v
		t.unlink(idx)
		t.pushFront(idx, c, now)
		return &e.val, true
	}
	if t.free == none {
		t.evict()
		i, _ = t.find(k, h) // eviction may have shifted slots
	}
	idx := t.free
	e := &t.ents[idx]
	t.free = e.next
	e.key, e.hash, e.val = k, h, v
	t.slots[i] = h<<32 | uint64(idx+1)
	t.n++
	t.pushFront(idx, c, now)
	return &e.val, false
}

// Delete removes k without calling OnRemove. It reports whether k was present.
func (t *Table[V]) Delete(k flow.Key) bool {
	i, ok := t.find(k, t.hash(k))
	if !ok {
		return false
	}
	t.remove(i)
	return true
}

// Expire removes flows idle for at least their class's timeout at now, at most
// max of them (max <= 0: no limit), calling OnRemove for each; it returns how
// many it removed. Call it between batches; a budget keeps each call short.
func (t *Table[V]) Expire(now int64, max int) int {
	removed := 0
	for c := range t.tail {
		to := t.cfg.IdleTimeout[c]
		if to <= 0 {
			continue
		}
		for t.tail[c] != none && now-t.ents[t.tail[c]].last >= to {
			if max > 0 && removed == max {
				return removed
			}
			t.drop(t.tail[c], Expired)
			t.expired++
			removed++
		}
	}
	return removed
}

// Range calls fn for each flow until fn returns false (for admin snapshots;
// fn must not change the table).
func (t *Table[V]) Range(fn func(k flow.Key, v *V, c Class, lastSeen int64) bool) {
	for c := range t.head {
		for idx := t.head[c]; idx != none; idx = t.ents[idx].next {
			e := &t.ents[idx]
			if !fn(e.key, &e.val, e.class, e.last) {
				return
			}
		}
	}
}

// evict removes the flow whose idle deadline comes first.
func (t *Table[V]) evict() {
	victim := int32(none)
	var best, bestLast int64
	for c := range t.tail {
		idx := t.tail[c]
		if idx == none {
			continue
		}
		last := t.ents[idx].last
		deadline := int64(math.MaxInt64)
		if to := t.cfg.IdleTimeout[c]; to > 0 && last <= math.MaxInt64-to {
			deadline = last + to
		}
		if victim == none || deadline < best || deadline == best && last < bestLast {
			victim, best, bestLast = idx, deadline, last
		}
	}
	t.drop(victim, Evicted)
	t.evicted++
}

// drop hands entry idx to OnRemove and removes it.
func (t *Table[V]) drop(idx int32, why Reason) {
	e := &t.ents[idx]
	if t.cfg.OnRemove != nil {
		t.cfg.OnRemove(e.key, &e.val, why)
	}
	i, _ := t.find(e.key, e.hash)
	t.remove(i)
}

// remove frees the entry in slot i and closes the gap in its probe cluster by
// shifting later entries back (Knuth, TAOCP vol. 3, 6.4, algorithm R).
func (t *Table[V]) remove(i uint64) {
	idx := slotIndex(t.slots[i])
	t.unlink(idx)
	var zero entry[V]
	t.ents[idx] = zero // drop references held by V
	t.ents[idx].next = t.free
	t.free = idx
	t.n--
	for j := (i + 1) & t.mask; t.slots[j] != 0; j = (j + 1) & t.mask {
		home := t.slots[j] >> 32 & t.mask
		// The entry at j may fill the hole at i unless its home lies in (i, j].
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
}

func (t *Table[V]) unlink(idx int32) {
	e := &t.ents[idx]
	if e.prev != none {
		t.ents[e.prev].next = e.next
	} else {
		t.head[e.class] = e.next
	}
	if e.next != none {
		t.ents[e.next].prev = e.prev
	} else {
		t.tail[e.class] = e.prev
	}
}

// pushFront puts idx at the head of class c, seen at now. A clock that steps
// back is clamped to the head's time so each list stays ordered by last seen.
func (t *Table[V]) pushFront(idx int32, c Class, now int64) {
	e := &t.ents[idx]
	h := t.head[c]
	if h != none && t.ents[h].last > now {
		now = t.ents[h].last
	}
	e.class, e.last, e.prev, e.next = c, now, none, h
	if h != none {
		t.ents[h].prev = idx
	} else {
		t.tail[c] = idx
	}
	t.head[c] = idx
}
