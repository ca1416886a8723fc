package control

import (
	"fmt"
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
		Paths: map[string]admin.PathCounters{},
		Drops: map[string]uint64{},
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
	}
	if s.info.KernelPath != nil {
		c.Paths["fast"] = s.info.KernelPath()
	}
	if s.engines != nil {
		s.engineCounters(&c)
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

// load is each worker's busy time, and its busy share since the previous
// call (since the start for the first).
func (s *AdminSource) load() []admin.WorkerLoad {
	busy := s.a.BusyTime()
	now := time.Now()
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	span := now.Sub(s.lastAt)
	out := make([]admin.WorkerLoad, len(busy))
	for i, b := range busy {
		out[i] = admin.WorkerLoad{Worker: i, BusySeconds: b.Seconds()}
		if span > 0 {
			out[i].BusyRatio = min(max(float64(b-s.lastBusy[i])/float64(span), 0), 1)
		}
	}
	s.lastAt, s.lastBusy = now, busy
	return out
}

// engineCounters adds the engines' counters to c: handshakes, fallbacks,
// drops and fragments by reason, the frames sealed and opened, the
// resumption cache, the flow memory and the flows by state.
func (s *AdminSource) engineCounters(c *admin.Counters) {
	c.Handshakes = map[string]uint64{}
	c.Fallbacks = map[string]uint64{}
	c.Fragments = map[string]uint64{}
	c.Events = map[string]uint64{}
	s.engines.Each(func(_ int, ec *engine.Counters) {
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
	if s.engines.Cache != nil {
		c.CacheEntries = uint64(s.engines.Cache.Len())
	}
	if m := s.engines.Memory; m != nil {
		c.FlowMemoryBytes, c.FlowMemoryPeak, c.FlowMemoryLimit = uint64(max(m.Used(), 0)), uint64(m.Peak()), uint64(m.Limit())
	}
	byState := map[string]uint64{}
	if s.eachEngine(func(_ int, e *engine.Engine) {
		e.Flows(func(f engine.FlowInfo) { byState[f.State]++ })
	}) == nil {
		c.FlowsByState = byState
	}
}
