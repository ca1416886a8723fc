package flowtable

import (
	"sync"
	"testing"
)

func TestRingSingleGoroutine(t *testing.T) {
	r := NewRing[int](5)
	if r.Cap() != 8 {
		t.Fatalf("Cap %d, want 8", r.Cap())
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("Pop on empty ring")
	}
	for i := range 8 {
		if !r.Push(i) {
			t.Fatalf("Push %d failed", i)
		}
	}
	if r.Push(8) || r.Len() != 8 {
		t.Fatal("Push on full ring succeeded")
	}
	for i := range 3 {
		if v, ok := r.Pop(); !ok || v != i {
			t.Fatalf("Pop = %d %v, want %d", v, ok, i)
		}
	}
	// Batches across the wrap-around point.
	if n := r.PushBatch([]int{8, 9, 10, 11, 12}); n != 3 {
		t.Fatalf("PushBatch into 3 free slots = %d", n)
	}
	out := make([]int, 10)
	if n := r.PopBatch(out); n != 8 {
		t.Fatalf("PopBatch = %d", n)
	}
	for i, v := range out[:8] {
		if v != i+3 {
			t.Fatalf("out[%d] = %d", i, v)
		}
	}
	if n := r.PopBatch(out); n != 0 || r.Len() != 0 {
		t.Fatal("PopBatch on empty ring")
	}
	if n := r.PushBatch(nil); n != 0 {
		t.Fatal("empty PushBatch")
	}
}

// TestRingClearsSlots: popped slots hold no references (frames must not stay
// reachable from the ring).
func TestRingClearsSlots(t *testing.T) {
	r := NewRing[[]byte](2)
	r.Push(make([]byte, 10))
	r.PushBatch([][]byte{make([]byte, 10)})
	r.Pop()
	r.PopBatch(make([][]byte, 1))
	for i, s := range r.buf {
		if s != nil {
			t.Fatalf("slot %d still holds a slice", i)
		}
	}
}

// TestRingTwoGoroutines: one producer, one consumer, mixed single and batch
// operations; every value arrives once, in order. Run with -race.
func TestRingTwoGoroutines(t *testing.T) {
	const total = 100000
	r := NewRing[uint64](64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := uint64(0)
		batch := make([]uint64, 7)
		for next < total {
			if next%3 == 0 {
				if r.Push(next) {
					next++
				}
				continue
			}
			n := 0
			for n < len(batch) && next+uint64(n) < total {
				batch[n] = next + uint64(n)
				n++
			}
			next += uint64(r.PushBatch(batch[:n]))
		}
	}()
	want := uint64(0)
	out := make([]uint64, 5)
	for want < total {
		if want%2 == 0 {
			if v, ok := r.Pop(); ok {
				if v != want {
					t.Fatalf("got %d, want %d", v, want)
				}
				want++
			}
			continue
		}
		n := r.PopBatch(out)
		for _, v := range out[:n] {
			if v != want {
				t.Fatalf("got %d, want %d", v, want)
			}
			want++
		}
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Fatalf("%d left", r.Len())
	}
}

func TestRingZeroAllocs(t *testing.T) {
	type desc struct {
		addr uint64
		len  uint32
	}
	r := NewRing[desc](16)
	in := make([]desc, 8)
	out := make([]desc, 8)
	n := testing.AllocsPerRun(1000, func() {
		r.Push(desc{1, 2})
		r.Pop()
		r.PushBatch(in)
		r.PopBatch(out)
	})
	if n != 0 {
		t.Fatalf("%v allocs per run", n)
	}
}
