package control

import (
	"fmt"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// Counters implements admin.Source.
func (s *AdminSource) Counters() admin.Counters {
	st := s.a.Stats()
	in, out := &st[0], &st[1]
	c := admin.Counters{
		Ports: []admin.PortCounters{
			{Port: "inside", Direction: "rx", Frames: in.Frames, Bytes: in.Bytes},
			{Port: "inside", Direction: "tx", Frames: out.TxFrames, Bytes: out.TxBytes},
			{Port: "outside", Direction: "rx", Frames: out.Frames, Bytes: out.Bytes},
			{Port: "outside", Direction: "tx", Frames: in.TxFrames, Bytes: in.TxBytes},
		},
		Paths:        map[string]admin.PathCounters{},
		Drops:        map[string]uint64{},
		WorkerEvents: map[string]uint64{},
	}
	for _, d := range st {
		p := c.Paths["passthrough"]
		p.Frames += d.Verdict(engine.Passthrough)
		p.Bytes += d.VerdictBytes[engine.Passthrough]
		c.Paths["passthrough"] = p
		e := c.Paths["engine"]
		for _, v := range []appliance.Verdict{engine.Forwarded, engine.ForwardInPlace} {
			e.Frames += d.Verdict(v)
			e.Bytes += d.VerdictBytes[v]
		}
		c.Paths["engine"] = e
		for r := range d.Drops {
			c.Drops[appliance.DropReason(r).String()] += d.Drops[r]
		}
		c.Drops["handoff_full"] += d.HandoffDrops
		for name, n := range map[string]uint64{
			"fastpath_inserts": d.FastInserts, "fastpath_removes": d.FastRemoves, "fastpath_errors": d.FastErrors,
			"flow_table_evictions": d.FlowEvictions, "unparsed": d.Unparsed, "handoffs": d.Handoffs,
			"kick_errors": d.KickErrors, "bad_commits": d.BadCommits, "invalid_verdicts": d.Verdicts[0],
		} {
			c.WorkerEvents[name] += n
		}
	}
	if s.info.KernelPath != nil {
		c.Paths["fast"] = s.info.KernelPath()
	}
	if s.engines != nil || s.info.Guards != nil {
		s.engineCounters(&c)
	}
	c.FlowsByState = s.flowsByState()
	if s.info.FastPathEntries != nil {
		c.FastPathFlows, c.FastPathKnown = s.fastPath.read(time.Now(), s.info.FastPathEntries)
	}
	c.Rings = s.handoffLevels()
	if s.info.Backend != nil {
		c.Backend = s.info.Backend()
	}
	if s.info.Rings != nil {
		c.Rings = append(c.Rings, s.info.Rings()...)
	}
	c.Workers = s.load()
	return c
}

// handoffLevels are the occupancy of the lanes between workers, named by
// the sending worker (Queue) and the owner ("handoff_to_N").
func (s *AdminSource) handoffLevels() []admin.RingLevel {
	var out []admin.RingLevel
	for _, l := range s.a.HandoffLevels() {
		out = append(out, admin.RingLevel{Port: "handoff", Queue: l.From, Ring: fmt.Sprintf("to_worker_%d", l.To),
			Used: uint64(l.Used), Size: uint64(l.Size)})
	}
	return out
}

// load is each worker's busy time and busy ratio (busyMeter).
func (s *AdminSource) load() []admin.WorkerLoad {
	return s.busy.read(time.Now(), s.a.BusyTime())
}

// fastPathEvery is how long a count of the fast path's flows is reused:
// counting walks the kernel's map, and the status page asks every second.
const fastPathEvery = 5 * time.Second

// fastPathCount is the last count of the fast path's flows.
type fastPathCount struct {
	mu    sync.Mutex
	at    time.Time
	flows uint64
	ok    bool
}

// read returns the number of flows on the fast path, counting them with
// entries (one per direction) when the last count is fastPathEvery old;
// false when they cannot be counted.
func (c *fastPathCount) read(now time.Time, entries func() (int, error)) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= fastPathEvery {
		n, err := entries()
		c.at, c.flows, c.ok = now, uint64(n+1)/2, err == nil
	}
	return c.flows, c.ok
}

// busyWindow is the shortest span a busy ratio is measured over.
const busyWindow = 5 * time.Second

// busyMeter turns the workers' busy time into busy ratios that mean the
// same to every reader. A ratio is measured from a baseline sample that
// only moves once a newer sample is busyWindow old: with frequent readers
// (the status page polls every second) each sees the share of the last 5
// to 10 seconds, a rarer one (a Prometheus scrape) the share since about
// its previous reading, and no reader shortens what another sees. (One
// baseline that every reading moved let each status poll cut the next
// scrape's ratio down to the second since the poll.)
type busyMeter struct {
	mu         sync.Mutex
	base, next busySample
}

type busySample struct {
	at   time.Time
	busy []time.Duration
}

// start sets the first sample: workers idle so far, at t.
func (m *busyMeter) start(t time.Time, workers int) {
	m.base = busySample{at: t, busy: make([]time.Duration, workers)}
	m.next = m.base
}

// read returns the loads at now, the workers having been busy for busy.
func (m *busyMeter) read(now time.Time, busy []time.Duration) []admin.WorkerLoad {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.next.at) >= busyWindow {
		m.base, m.next = m.next, busySample{at: now, busy: busy}
	}
	span := now.Sub(m.base.at)
	out := make([]admin.WorkerLoad, len(busy))
	for i, b := range busy {
		out[i] = admin.WorkerLoad{Worker: i, BusySeconds: b.Seconds()}
		if span > 0 && i < len(m.base.busy) {
			out[i].BusyRatio = min(max(float64(b-m.base.busy[i])/float64(span), 0), 1)
		}
	}
	return out
}

// engineCounters adds the engines' (or, with the engine off, the guards')
// counters to c: handshakes, fallbacks, drops and fragments by reason, the
// frames sealed and opened, the resumption cache, the flow memory and the
// negotiated set.
func (s *AdminSource) engineCounters(c *admin.Counters) {
	c.Handshakes = map[string]uint64{}
	c.Fallbacks = map[string]uint64{}
	c.Fragments = map[string]uint64{}
	c.Events = map[string]uint64{}
	var each func(func(int, *engine.Counters))
	var neg *engine.NegotiatedSet
	if s.engines != nil {
		each, neg = s.engines.Each, s.engines.Negotiated
	} else {
		each, neg = s.info.Guards.Each, s.info.Guards.Negotiated
	}
	each(func(_ int, ec *engine.Counters) {
		c.Handshakes["encrypted"] += ec.Encrypted.Load()
		c.Handshakes["failed"] += ec.HandshakeFailures.Load()
		c.Handshakes["evicted"] += ec.EmbryonicEvicted.Load()
		for i, name := range engine.FallbackNames {
			n := ec.Fallbacks[i].Load()
			c.Fallbacks[name] += n
			c.Handshakes["fallback"] += n
		}
		for i, name := range engine.DropNames {
			c.Drops[name] += ec.Drops[i].Load()
		}
		for i, name := range engine.FragNames {
			c.Fragments[name] += ec.Frag[i].Load()
		}
		ec.EachEvent(func(name string, n uint64) { c.Events[name] += n })
		c.AuthFailures += ec.AuthFailures.Load()
		c.StrayResets += ec.StrayResets.Load()
		c.Rekeys += ec.Rekeys.Load()
		c.Resumptions += ec.Resumed.Load()
		c.InitRetransmit += ec.InitRetransmits.Load()
		c.DupACKs += ec.DupAcksOriginated.Load()
		c.FramesSealed += ec.FramesSealed.Load()
		c.FramesOpened += ec.FramesOpened.Load()
	})
	if s.engines != nil && s.engines.Cache != nil {
		c.CacheEntries = uint64(s.engines.Cache.Len())
	}
	if s.engines != nil && s.engines.Memory != nil {
		m := s.engines.Memory
		c.FlowMemoryBytes, c.FlowMemoryPeak, c.FlowMemoryLimit = uint64(max(m.Used(), 0)), uint64(m.Peak()), uint64(m.Limit())
		c.FlowMemoryRefused = m.Refused()
	}
	if n := neg; n != nil {
		c.NegotiatedEntries, c.NegotiatedOverflows, c.NegotiatedStoreErrors = uint64(n.Len()), n.Overflows(), n.StoreErrors()
	}
}

// flowsByState counts the workers' flows by state, every state included,
// at 0 when none is in it (with the engine off, all are): nil when the
// workers could not be asked.
func (s *AdminSource) flowsByState() map[string]uint64 {
	byState := map[string]uint64{}
	for _, st := range engine.StateNames() {
		byState[st] = 0
	}
	if s.eachEngine(func(_ int, e *engine.Engine) { e.CountStates(byState) }) != nil {
		return nil
	}
	return byState
}
