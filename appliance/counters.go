package appliance

import "sync/atomic"

// DropReason says why a worker did not forward a frame.
type DropReason int

// Drop reasons.
const (
	DropNoTxFrame  DropReason = iota // the other port had no free TX frame
	DropTxRingFull                   // the other port's TX ring took fewer frames than given
	DropTooBig                       // the frame is larger than a TX frame of the other port, or a hand-off slot
	DropFragHold                     // an IP fragment held for its datagram's first fragment: no room, or timed out (fragsteer.go)
	numDropReasons
)

var dropNames = [numDropReasons]string{"no_tx_frame", "tx_ring_full", "too_big", "frag_hold"}

func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// counters is what one worker counts. The worker is the only writer; it adds
// its per-batch tallies once per batch, and readers (the admin API, the
// shutdown log) load the atomics at any time.
type counters struct {
	frames, bytes     atomic.Uint64 // received and handled by the worker
	txFrames, txBytes atomic.Uint64 // transmitted on the other port
	unparsed          atomic.Uint64 // frames the parser rejected (still forwarded)
	fastInserts       atomic.Uint64 // flows entered into the fast-path map
	fastRemoves       atomic.Uint64 // flows removed from it (close or reuse)
	fastErrors        atomic.Uint64 // fast-path map updates that failed
	handoffs          atomic.Uint64 // frames handed to the worker owning their flow
	handoffDrops      atomic.Uint64 // frames lost to a full hand-off lane
	badCommits        atomic.Uint64 // TxSink.Commit calls without a Buffer or out of range
	verdicts          [numVerdicts]atomic.Uint64
	verdictBytes      [numVerdicts]atomic.Uint64
	kickErrors        atomic.Uint64 // Kick calls that failed
	flowEvictions     atomic.Uint64 // flows evicted from a full table
	drops             [numDropReasons]atomic.Uint64
	_                 [64]byte // keep workers' counters off each other's cache lines
}

// tally is a worker's per-batch scratch copy of counters.
type tally struct {
	frames, bytes, txFrames, txBytes, unparsed, handoffs, handoffDrops, badCommits uint64
	drops                                                                          [numDropReasons]uint64
	verdicts, verdictBytes                                                         [numVerdicts]uint64
}

func (c *counters) add(t *tally) {
	c.frames.Add(t.frames)
	c.bytes.Add(t.bytes)
	if t.txFrames != 0 {
		c.txFrames.Add(t.txFrames)
		c.txBytes.Add(t.txBytes)
	}
	if t.unparsed != 0 {
		c.unparsed.Add(t.unparsed)
	}
	if t.handoffs != 0 {
		c.handoffs.Add(t.handoffs)
	}
	if t.handoffDrops != 0 {
		c.handoffDrops.Add(t.handoffDrops)
	}
	if t.badCommits != 0 {
		c.badCommits.Add(t.badCommits)
	}
	for i, n := range t.drops {
		if n != 0 {
			c.drops[i].Add(n)
		}
	}
	for i, n := range t.verdicts {
		if n != 0 {
			c.verdicts[i].Add(n)
			c.verdictBytes[i].Add(t.verdictBytes[i])
		}
	}
	*t = tally{}
}

// DirStats are the counters of one direction of the bump (frames received on
// From and sent out of the other port), summed over its queues.
type DirStats struct {
	From     PortID // the port the frames arrived on
	Frames   uint64 // frames that reached user space
	Bytes    uint64
	TxFrames uint64 // frames transmitted on the other port
	TxBytes  uint64
	Unparsed uint64 // frames the parser rejected; forwarded unchanged all the same
	// Flow-level counts (a flow has both directions) are in the inside
	// direction's DirStats only: FastInserts, FastRemoves, FastErrors,
	// FlowEvictions.
	FastInserts   uint64 // flows entered into the fast path
	FastRemoves   uint64
	FastErrors    uint64
	Handoffs      uint64
	HandoffDrops  uint64
	KickErrors    uint64
	FlowEvictions uint64
	BadCommits    uint64                 // TxSink misuse by the handler
	Drops         [numDropReasons]uint64 // indexed by DropReason
	// Verdicts counts the handler's verdicts on frames that arrived on
	// From, indexed by Verdict (slot 0: values a handler must not return,
	// dropped). Dropped frames' reasons are the handler's own counters.
	Verdicts [numVerdicts]uint64
	// VerdictBytes are the bytes of those frames, as they arrived.
	VerdictBytes [numVerdicts]uint64
}

// Verdict returns how many frames got verdict v.
func (s *DirStats) Verdict(v Verdict) uint64 {
	if int(v) >= numVerdicts {
		return 0
	}
	return s.Verdicts[v]
}

// Drop returns the number of frames dropped for reason r.
func (s *DirStats) Drop(r DropReason) uint64 { return s.Drops[r] }

func (s *DirStats) addFrom(c *counters) {
	s.Frames += c.frames.Load()
	s.Bytes += c.bytes.Load()
	s.TxFrames += c.txFrames.Load()
	s.TxBytes += c.txBytes.Load()
	s.Unparsed += c.unparsed.Load()
	s.FastInserts += c.fastInserts.Load()
	s.FastRemoves += c.fastRemoves.Load()
	s.FastErrors += c.fastErrors.Load()
	s.Handoffs += c.handoffs.Load()
	s.HandoffDrops += c.handoffDrops.Load()
	s.KickErrors += c.kickErrors.Load()
	s.FlowEvictions += c.flowEvictions.Load()
	s.BadCommits += c.badCommits.Load()
	for i := range s.Drops {
		s.Drops[i] += c.drops[i].Load()
	}
	for i := range s.Verdicts {
		s.Verdicts[i] += c.verdicts[i].Load()
		s.VerdictBytes[i] += c.verdictBytes[i].Load()
	}
}
