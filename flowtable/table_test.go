package flowtable

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/tcpinc/tcpinc/flow"
)

func keyN(i int) flow.Key {
	var k flow.Key
	k.Family = 4
	binary.BigEndian.PutUint32(k.Src[:], 0x0a000000|uint32(i>>16))
	binary.BigEndian.PutUint32(k.Dst[:], 0xc0000201)
	k.SrcPort, k.DstPort = uint16(i), 443
	return k
}

type removal struct {
	k   flow.Key
	v   int
	why Reason
}

func newTestTable(capacity int, timeouts ...int64) (*Table[int], *[]removal) {
	var got []removal
	cfg := Config[int]{Capacity: capacity, OnRemove: func(k flow.Key, v *int, why Reason) {
		got = append(got, removal{k, *v, why})
	}}
	copy(cfg.IdleTimeout[:], timeouts)
	return New(cfg), &got
}

func TestTableBasics(t *testing.T) {
	tb, removed := newTestTable(8)
	if _, ok := tb.Lookup(keyN(1)); ok {
		t.Fatal("lookup in empty table")
	}
	p, existed := tb.Insert(keyN(1), 10, 0, 100)
	if existed || *p != 10 || tb.Len() != 1 {
		t.Fatalf("Insert: %d %v len %d", *p, existed, tb.Len())
	}
	*p = 11 // values are updated in place through the pointer
	if v, ok := tb.Lookup(keyN(1)); !ok || *v != 11 {
		t.Fatalf("Lookup after update: %v %v", v, ok)
	}
	if _, ok := tb.Lookup(keyN(1).Reverse()); ok {
		t.Fatal("the reverse direction is a different key")
	}
	if p, existed := tb.Insert(keyN(1), 12, 1, 200); !existed || *p != 12 || tb.Len() != 1 {
		t.Fatalf("re-Insert: %d %v", *p, existed)
	}
	if v, ok := tb.Touch(keyN(1), 300); !ok || *v != 12 {
		t.Fatal("Touch")
	}
	if !tb.Delete(keyN(1)) || tb.Delete(keyN(1)) || tb.Len() != 0 {
		t.Fatal("Delete")
	}
	if _, ok := tb.Touch(keyN(1), 1); ok || tb.SetClass(keyN(1), 2, 1) {
		t.Fatal("Touch/SetClass on a deleted key")
	}
	if len(*removed) != 0 {
		t.Fatalf("Delete called OnRemove: %v", *removed)
	}
}

// TestTableMatchesMap runs random operations against a Go map as reference,
// with a small table so probe clusters wrap around and backward-shift
// deletion is exercised hard.
func TestTableMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const capacity = 50
	tb, removed := newTestTable(capacity)
	ref := map[flow.Key]int{}
	for i := 0; i < 200000; i++ {
		k := keyN(r.IntN(80))
		switch r.IntN(4) {
		case 0, 1:
			if _, ok := ref[k]; !ok && len(ref) == capacity {
				*removed = (*removed)[:0]
				tb.Insert(k, i, 0, int64(i))
				if len(*removed) != 1 {
					t.Fatalf("insert into full table removed %d", len(*removed))
				}
				delete(ref, (*removed)[0].k)
			} else {
				tb.Insert(k, i, 0, int64(i))
			}
			ref[k] = i
		case 2:
			_, want := ref[k]
			if got := tb.Delete(k); got != want {
				t.Fatalf("op %d: Delete %v, want %v", i, got, want)
			}
			delete(ref, k)
		case 3:
			v, ok := tb.Lookup(k)
			w, want := ref[k]
			if ok != want || ok && *v != w {
				t.Fatalf("op %d: Lookup %v, want %v", i, ok, want)
			}
		}
		if tb.Len() != len(ref) {
			t.Fatalf("op %d: Len %d, want %d", i, tb.Len(), len(ref))
		}
	}
	for k, w := range ref {
		if v, ok := tb.Lookup(k); !ok || *v != w {
			t.Fatalf("final: %v missing", k)
		}
	}
	n := 0
	tb.Range(func(flow.Key, *int, Class, int64) bool { n++; return true })
	if n != len(ref) {
		t.Fatalf("Range saw %d, want %d", n, len(ref))
	}
}

func TestEviction(t *testing.T) {
	const embryonic, established, pinned = 0, 1, 2
	tb, removed := newTestTable(3, 10, 1000, 0) // timeouts per class; class 2 never ages
	tb.Insert(keyN(1), 1, established, 0)
	tb.Insert(keyN(2), 2, embryonic, 5)
	tb.Insert(keyN(3), 3, established, 6)
	// Full: the embryonic flow has the earliest deadline (5+10) and goes first,
	// though flow 1 is older.
	tb.Insert(keyN(4), 4, established, 7)
	if len(*removed) != 1 || (*removed)[0] != (removal{keyN(2), 2, Evicted}) {
		t.Fatalf("evicted %v, want flow 2", *removed)
	}
	// Among equal classes the least recently seen goes: flow 1 (seen at 0)
	// unless touched. Touch it; then flow 3 (6) is the oldest.
	tb.Touch(keyN(1), 8)
	tb.Insert(keyN(5), 5, pinned, 9)
	if len(*removed) != 2 || (*removed)[1].k != keyN(3) {
		t.Fatalf("evicted %v, want flow 3", *removed)
	}
	// Flows without a timeout go last.
	tb.Insert(keyN(6), 6, established, 10)
	tb.Insert(keyN(7), 7, established, 11)
	if (*removed)[2].k != keyN(4) || (*removed)[3].k != keyN(1) {
		t.Fatalf("evicted %v", *removed)
	}
	if _, ok := tb.Lookup(keyN(5)); !ok {
		t.Fatal("pinned flow evicted")
	}
	if tb.Evictions() != 4 || tb.Len() != 3 {
		t.Fatalf("evictions %d len %d", tb.Evictions(), tb.Len())
	}
}

func TestExpire(t *testing.T) {
	const syn, est, closing = 0, 1, 2
	tb, removed := newTestTable(100, 30, 3600, 60)
	tb.Insert(keyN(1), 1, syn, 0)
	tb.Insert(keyN(2), 2, est, 0)
	tb.Insert(keyN(3), 3, closing, 10)
	tb.Insert(keyN(4), 4, syn, 20)
	tb.Insert(keyN(5), 5, 7, 0) // class 7: no timeout
	if n := tb.Expire(29, 0); n != 0 {
		t.Fatalf("expired %d at 29", n)
	}
	if n := tb.Expire(30, 0); n != 1 || (*removed)[0] != (removal{keyN(1), 1, Expired}) {
		t.Fatalf("at 30: %d %v", n, *removed)
	}
	// Touch keeps a flow alive; SetClass moves it to another timeout.
	tb.Touch(keyN(4), 45)
	tb.SetClass(keyN(2), closing, 40)
	if n := tb.Expire(69, 0); n != 0 {
		t.Fatalf("expired %d at 69: %v", n, *removed)
	}
	if n := tb.Expire(74, 0); n != 1 || (*removed)[1].k != keyN(3) { // closing, seen 10
		t.Fatalf("at 74: %v", *removed)
	}
	if n := tb.Expire(75, 0); n != 1 || (*removed)[2].k != keyN(4) { // syn, touched at 45
		t.Fatalf("at 75: %v", *removed)
	}
	if n := tb.Expire(99, 0); n != 0 {
		t.Fatalf("at 99: %d", n)
	}
	if n := tb.Expire(100, 0); n != 1 || (*removed)[3].k != keyN(2) { // moved to closing at 40
		t.Fatalf("at 100: %d %v", n, *removed)
	}
	if tb.Len() != 1 || tb.Expirations() != 4 {
		t.Fatalf("left %d, expirations %d", tb.Len(), tb.Expirations())
	}
	// A budget bounds the work per call.
	for i := 10; i < 20; i++ {
		tb.Insert(keyN(i), i, syn, 200)
	}
	if n := tb.Expire(1000, 4); n != 4 || tb.Len() != 7 {
		t.Fatalf("budgeted expire %d, len %d", n, tb.Len())
	}
	// A clock that steps back does not break the order.
	tb.Touch(keyN(15), 100)
	if n := tb.Expire(1000, 0); n != 6 {
		t.Fatalf("expire after backwards clock: %d", n)
	}
}

func TestTableZeroAllocs(t *testing.T) {
	tb := New(Config[[4]uint64]{Capacity: 1000, IdleTimeout: [MaxClasses]int64{1e9}, OnRemove: func(flow.Key, *[4]uint64, Reason) {}})
	for i := range 1000 {
		tb.Insert(keyN(i), [4]uint64{}, 0, 0)
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		i++
		tb.Lookup(keyN(i % 1000))
		tb.Lookup(keyN(i + 5000))
		tb.Touch(keyN(i%1000), int64(i))
		tb.Delete(keyN(i % 1000))
		tb.Insert(keyN(i%1000), [4]uint64{1}, 0, int64(i))
		tb.Insert(keyN(i+2000), [4]uint64{2}, 0, int64(i)) // evicts
		tb.Expire(int64(i), 1)
	})
	if n != 0 {
		t.Fatalf("%v allocs per run", n)
	}
}

func TestReasonString(t *testing.T) {
	if Evicted.String() != "evicted" || Expired.String() != "expired" || Reason(0).String() != "unknown" {
		t.Error("Reason.String")
	}
}
