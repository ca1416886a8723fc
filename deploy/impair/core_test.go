package impair

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// frame i is 60..1500 bytes whose content is derived from i, so a
// corrupted or truncated frame is recognised.
func mkFrame(i int) []byte {
	n := 60 + (i*7919)%1441
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	for j := 4; j < n; j++ {
		b[j] = byte(i*31 + j)
	}
	return b
}

func frameID(t *testing.T, b []byte) int {
	t.Helper()
	i := int(binary.BigEndian.Uint32(b))
	if !bytes.Equal(b, mkFrame(i)) {
		t.Fatalf("frame %d corrupted", i)
	}
	return i
}

type run struct {
	order      []int
	counts     map[int]int
	inversions int // frames that went out after a later-numbered one
}

// drive pushes n frames 1 µs apart, then flushes.
func drive(t *testing.T, cfg Config, n int) (run, *Core) {
	t.Helper()
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := run{counts: map[int]int{}}
	emit := func(b []byte) {
		id := frameID(t, b)
		r.order = append(r.order, id)
		r.counts[id]++
	}
	now := int64(0)
	for i := range n {
		f := mkFrame(i)
		c.Push(now, f, emit)
		for j := range f { // the caller reuses its buffer: held frames must be copies
			f[j] = 0xee
		}
		now += int64(time.Microsecond)
	}
	c.Flush(emit)
	maxSeen := -1
	for _, id := range r.order {
		if id < maxSeen {
			r.inversions++
		}
		maxSeen = max(maxSeen, id)
	}
	return r, c
}

func TestReorderLosesNothing(t *testing.T) {
	cfg := Config{Reorder: 0.1, HoldFrames: 3, HoldTime: time.Second, Seed: 7}
	r, c := drive(t, cfg, 5000)
	for i := range 5000 {
		if r.counts[i] != 1 {
			t.Fatalf("frame %d went out %d times, want 1", i, r.counts[i])
		}
	}
	if len(r.order) != 5000 {
		t.Fatalf("%d frames out, want 5000", len(r.order))
	}
	if r.inversions < 300 {
		t.Errorf("only %d frames reordered with Reorder 0.1", r.inversions)
	}
	if c.C.Held.Load() != c.C.Overtaken.Load() || c.C.Held.Load() == 0 {
		t.Errorf("held %d, overtaken %d: every held frame should have been overtaken", c.C.Held.Load(), c.C.Overtaken.Load())
	}
	if c.C.Duplicated.Load() != 0 || c.C.Out.Load() != 5000 || c.C.In.Load() != 5000 {
		t.Errorf("counters in %d out %d dup %d", c.C.In.Load(), c.C.Out.Load(), c.C.Duplicated.Load())
	}
	// A held frame is overtaken by exactly HoldFrames frames (unless other
	// held frames are released in between, which only adds distance).
	pos := map[int]int{}
	for p, id := range r.order {
		pos[id] = p
	}
	late := 0
	for i := range 5000 {
		if d := pos[i] - i; d > 0 {
			late++
			if d > 3+64 {
				t.Errorf("frame %d went out %d places late", i, d)
			}
		}
	}
	if late == 0 {
		t.Error("no frame went out late")
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Reorder: 0.2, HoldFrames: 2, Duplicate: 0.05, Seed: 42}
	a, _ := drive(t, cfg, 2000)
	b, _ := drive(t, cfg, 2000)
	if len(a.order) != len(b.order) {
		t.Fatalf("same seed, different lengths %d, %d", len(a.order), len(b.order))
	}
	for i := range a.order {
		if a.order[i] != b.order[i] {
			t.Fatalf("same seed, different order at %d", i)
		}
	}
	cfg.Seed = 43
	c, _ := drive(t, cfg, 2000)
	same := len(c.order) == len(a.order)
	for i := 0; same && i < len(a.order); i++ {
		same = a.order[i] == c.order[i]
	}
	if same {
		t.Error("another seed gave the same order")
	}
}

func TestDuplicatesOnlyWhenAsked(t *testing.T) {
	r, c := drive(t, Config{Seed: 1}, 3000)
	if r.inversions != 0 || len(r.order) != 3000 || c.C.Duplicated.Load() != 0 {
		t.Fatalf("zero config changed the stream: %d inversions, %d frames", r.inversions, len(r.order))
	}
	for i, id := range r.order {
		if id != i {
			t.Fatalf("frame %d at %d", id, i)
		}
	}
	r, c = drive(t, Config{Duplicate: 0.1, Seed: 1}, 3000)
	dups := 0
	for i := range 3000 {
		switch r.counts[i] {
		case 1:
		case 2:
			dups++
		default:
			t.Fatalf("frame %d went out %d times", i, r.counts[i])
		}
	}
	if dups < 200 || dups > 400 || uint64(dups) != c.C.Duplicated.Load() {
		t.Errorf("%d duplicates of 3000 at 10%% (counter %d)", dups, c.C.Duplicated.Load())
	}
	if r.inversions != 0 {
		t.Errorf("duplication alone reordered %d frames", r.inversions)
	}
}

// With HoldFrames 0 a held frame waits for its time: Tick releases it, and
// frames pushed meanwhile overtake it.
func TestHoldTime(t *testing.T) {
	c, err := NewCore(Config{Reorder: 1, HoldTime: time.Millisecond, MaxHeld: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	emit := func(b []byte) { out = append(out, frameID(t, b)) }
	c.Push(0, mkFrame(0), emit)
	c.Push(10, mkFrame(1), emit)
	c.Push(20, mkFrame(2), emit) // no slot left: goes out at once
	if len(out) != 1 || out[0] != 2 || c.C.Full.Load() != 1 {
		t.Fatalf("out %v, full %d", out, c.C.Full.Load())
	}
	if d, ok := c.NextDeadline(); !ok || d != int64(time.Millisecond) {
		t.Fatalf("deadline %d %v", d, ok)
	}
	c.Tick(int64(time.Millisecond)-1, emit)
	if len(out) != 1 {
		t.Fatalf("released early: %v", out)
	}
	c.Tick(int64(time.Millisecond), emit)
	if len(out) != 2 || out[1] != 0 {
		t.Fatalf("out %v", out)
	}
	c.Tick(int64(time.Millisecond)+10, emit)
	if len(out) != 3 || out[2] != 1 || c.Held() != 0 {
		t.Fatalf("out %v", out)
	}
	if _, ok := c.NextDeadline(); ok {
		t.Fatal("deadline with nothing held")
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Reorder: -0.1}, {Reorder: 1.1}, {Duplicate: 2}, {HoldFrames: -1}, {HoldTime: -1}} {
		if _, err := NewCore(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestPushAllocatesNothing(t *testing.T) {
	c, err := NewCore(Config{Reorder: 0.3, HoldFrames: 2, Duplicate: 0.1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	f := mkFrame(5)
	n := 0
	emit := func(b []byte) { n += len(b) }
	now := int64(0)
	if a := testing.AllocsPerRun(1000, func() { now += 1000; c.Push(now, f, emit) }); a != 0 {
		t.Errorf("Push allocates %v per frame", a)
	}
}

func BenchmarkPush(b *testing.B) {
	c, _ := NewCore(Config{Reorder: 0.05, HoldFrames: 3, Duplicate: 0.01, Seed: 9})
	f := mkFrame(5)
	emit := func([]byte) {}
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	now := int64(0)
	for b.Loop() {
		now += 1000
		c.Push(now, f, emit)
	}
}
