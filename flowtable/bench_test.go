package flowtable

import (
	"fmt"
	"testing"

	"github.com/tcpinc/tcpinc/flow"
)

type benchFlow struct {
	state    uint8
	seq, ack uint32
	ptr      *int // a flow value usually holds pointers
}

var sizes = []int{1000, 100000}

func filled(n int) *Table[benchFlow] {
	tb := New(Config[benchFlow]{Capacity: n, IdleTimeout: [MaxClasses]int64{60e9, 3600e9}})
	for i := range n {
		tb.Insert(keyN(i), benchFlow{}, 1, int64(i))
	}
	return tb
}

func BenchmarkTable(b *testing.B) {
	for _, n := range sizes {
		tb := filled(n)
		b.Run(fmt.Sprintf("LookupHit/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, ok := tb.Lookup(keyN(i % n)); !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run(fmt.Sprintf("LookupMiss/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := n
			for b.Loop() {
				i++
				if _, ok := tb.Lookup(keyN(i)); ok {
					b.Fatal("hit")
				}
			}
		})
		b.Run(fmt.Sprintf("Touch/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				tb.Touch(keyN(i%n), int64(n+i))
			}
		})
		b.Run(fmt.Sprintf("DeleteInsert/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keyN(i % n)
				tb.Delete(k)
				tb.Insert(k, benchFlow{}, 1, int64(i))
				i++
			}
		})
		b.Run(fmt.Sprintf("InsertEvict/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := n
			for b.Loop() {
				i++
				tb.Insert(keyN(i), benchFlow{}, 1, int64(i)) // full: evicts the oldest
			}
		})
	}
}

// BenchmarkGoMap is the alternative the Table was measured against: a Go map
// from Key to an entry index (the eviction lists would come on top).
func BenchmarkGoMap(b *testing.B) {
	for _, n := range sizes {
		m := make(map[flow.Key]int32, n)
		for i := range n {
			m[keyN(i)] = int32(i)
		}
		b.Run(fmt.Sprintf("LookupHit/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, ok := m[keyN(i%n)]; !ok {
					b.Fatal("miss")
				}
			}
		})
		b.Run(fmt.Sprintf("LookupMiss/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := n
			for b.Loop() {
				i++
				if _, ok := m[keyN(i)]; ok {
					b.Fatal("hit")
				}
			}
		})
		b.Run(fmt.Sprintf("DeleteInsert/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keyN(i % n)
				delete(m, k)
				m[k] = int32(i)
				i++
			}
		})
	}
}

type desc struct {
	addr uint64
	len  uint32
}

func BenchmarkRing(b *testing.B) {
	b.Run("PushPop", func(b *testing.B) {
		r := NewRing[desc](1024)
		b.ReportAllocs()
		for b.Loop() {
			r.Push(desc{1, 2})
			r.Pop()
		}
	})
	b.Run("PushPopBatch64", func(b *testing.B) {
		r := NewRing[desc](1024)
		in, out := make([]desc, 64), make([]desc, 64)
		b.ReportAllocs()
		for b.Loop() {
			r.PushBatch(in)
			r.PopBatch(out)
		}
	})
	// Two goroutines: a producer pushing batches of 32 and the consumer
	// (this goroutine) popping; ns/op is per element.
	b.Run("CrossGoroutineBatch32", func(b *testing.B) {
		r := NewRing[desc](1024)
		b.ReportAllocs()
		total := b.N
		done := make(chan struct{})
		go func() {
			defer close(done)
			in := make([]desc, 32)
			for sent := 0; sent < total; {
				sent += r.PushBatch(in[:min(32, total-sent)])
			}
		}()
		out := make([]desc, 32)
		b.ResetTimer()
		for got := 0; got < total; {
			got += r.PopBatch(out)
		}
		<-done
	})
}
