package engine

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// Costs that grow with the number of flow records (a scale review). Each
// benchmark runs at the default engine.max_flows (65,536) and at 2^20
// records per worker, which the configuration allows (flows.max up to
// 2^24).

var scaleSizes = []int{65536, 1 << 20}

// openClones returns a gateway holding n records of open encrypted
// connections: one real connection made by a handshake, its record copied
// n-1 times under other tuples (the copies share its buffers, keys and
// session, which the sweep reads but, within bufIdle and far from any
// rekey or idle deadline, does not change). A record is about 2 KB, so
// 2^20 of them take about 2 GB.
func openClones(b testing.TB, n int) *gw {
	b.Helper()
	ga, gb := newGW(b, Config{TEPs: testTEPs, MaxFlows: n}), newGW(b, Config{TEPs: testTEPs})
	handshakeOn(b, ga, gb)
	e := ga.e
	if len(e.list) != 1 || e.list[0].state != stOpen || e.list[0].keys == nil {
		b.Fatalf("no open encrypted record after the handshake")
	}
	src := e.list[0]
	for i := 1; i < n; i++ {
		f := new(flow)
		*f = *src
		f.key = flowKey{in: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000), out: src.key.out}
		f.id = uint64(i + 1)
		f.held, f.charged, f.ahead, f.embIn, f.prev = false, false, false, false, nil
		e.flows[f.key] = f
		e.listAdd(f)
	}
	return ga
}

// BenchmarkSweepOpen is the sweep on a worker whose table holds n open
// encrypted connections, all quiet (the usual state of most of a big
// table: long-lived, mostly idle connections). sweepDue once gave an open
// encrypted record 0 (keepFresh), so every sweep (every 10 ms) visited
// len/20 records through tickFlow: the sweep's cost per second, and its
// stall of the worker per sweep, grew linearly with the table. It now
// gives each its earliest timer, and the sweep skips it until then.
// Reported: ns per sweep (one Tick that sweeps), and the share of a core
// it costs at one sweep every 10 ms.
func BenchmarkSweepOpen(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g := openClones(b, n)
			now := g.now
			end := now + int64(5*time.Second) // within bufIdle of every record's last segment
			for b.Loop() {
				now += sweepEvery
				if now > end {
					b.StopTimer()
					now = g.now + sweepEvery
					for _, f := range g.e.list {
						f.last = now // start over
					}
					end = now + int64(5*time.Second)
					b.StartTimer()
				}
				g.e.Tick(now, g.tx)
			}
			b.StopTimer()
			if got := g.e.NumFlows(); got != n {
				b.Fatalf("%d flows left of %d", got, n)
			}
			perSweep := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perSweep/1e6, "ms/sweep")
			b.ReportMetric(100*perSweep/float64(sweepEvery), "%core")
		})
	}
}

// BenchmarkAdminScans is what every status request and metrics scrape
// runs on each worker's goroutine (CountFlows for /api/v1/status,
// CountStates for the counters), and a flow lookup by ID
// (/api/v1/flows/{id}, engine.Flow: a scan for the ID, here one that is
// not there), each a walk of every record: the worker forwards nothing
// meanwhile. (CountFlows, CountStates and Flow now read counts and an ID
// index; a listing visits FlowScanStep flows per step.)
func BenchmarkAdminScans(b *testing.B) {
	for _, n := range scaleSizes {
		g := openClones(b, n)
		byState := map[string]uint64{}
		no := false
		step := FlowScan{Filter: FlowFilter{Encrypted: &no}, Limit: 501}
		for _, c := range []struct {
			name string
			fn   func()
		}{
			{"CountFlows", func() { g.e.CountFlows() }},
			{"CountStates", func() { clear(byState); g.e.CountStates(byState) }},
			{"FlowByID", func() { g.e.Flow(uint64(n + 10)) }},
			{"FlowPageNone", func() { yes := false; g.e.FlowPage(FlowFilter{Encrypted: &yes}, 0, 501) }},
			// One step of the same listing in steps (FlowPageStep): the
			// stall per call the admin API makes.
			{"FlowPageStepNone", func() {
				if g.e.FlowPageStep(&step) {
					step = FlowScan{Filter: FlowFilter{Encrypted: &no}, Limit: 501}
				}
			}},
		} {
			b.Run(fmt.Sprintf("%s/%d", c.name, n), func(b *testing.B) {
				for b.Loop() {
					c.fn()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
			})
		}
		g.e = nil
		runtime.GC()
	}
}

// BenchmarkGCWithFlows is a full garbage collection with n flow records
// live (records are ~2 KB objects full of pointers, held by a map keyed
// by netip.AddrPort, whose unique.Handle is a pointer too): the mark work
// every GC cycle does, on the GC's workers, of which the mark assists and
// the 25 % background worker take a 2-core box's worker time.
func BenchmarkGCWithFlows(b *testing.B) {
	for _, n := range scaleSizes {
		g := openClones(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/GC")
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heapMiB")
		})
		g.e = nil
		runtime.GC()
	}
}

// BenchmarkGCNegotiatedSet is a full garbage collection with a negotiated
// set of n released entries live: its map and deadline heap are keyed by
// the pointer-free setKey, so the collector does not scan them (keyed by
// flowKey, whose netip.Addr values hold a pointer each, they took 5.8 ms
// at 131,072 entries and 155 ms at 4,194,304: bench/RESULTS.md, session
// 31).
// 131,072 is the default capacity with one queue; 4,194,304 is two queues
// at max_flows 1,048,576.
func BenchmarkGCNegotiatedSet(b *testing.B) {
	for _, n := range []int{131072, 1 << 22} {
		key := func(i int) flowKey {
			return flowKey{in: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i)),
				out: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 24)}), 443)}
		}
		b.Run(fmt.Sprintf("set/%d", n), func(b *testing.B) {
			s := NewNegotiatedSet(NegotiatedConfig{Capacity: n})
			for i := range n {
				s.Add(key(i).in, key(i).out, time.Now().Add(time.Hour))
			}
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/GC")
			runtime.KeepAlive(s)
		})
	}
}
