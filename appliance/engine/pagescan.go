package engine

// A flow listing in steps. FlowPage in one go visits every flow of the
// worker on its goroutine, which forwards nothing meanwhile: 1.5 ms at
// 65,536 flows and 34 ms at 2^20 with a filter that matches none
// (BenchmarkAdminScans), longer than the worker's receive ring lasts at
// line rate. FlowPageStep visits at most FlowScanStep flows per call, and
// the admin API calls it again, between batches, until the scan is done.

// FlowScanStep is the most flows one FlowPageStep visits: about 0.3 ms of
// the worker's time at 2^20 flows (a cache miss or two per record).
const FlowScanStep = 8192

// scanAbandoned is how many sweeps (sweepEvery apart) a paged listing may
// go without a step before the engine forgets it: its caller gave up.
const scanAbandoned = 100

// FlowScan is a paged listing: what FlowPage computes, in steps. Set its
// query, then call FlowPageStep until it reports the scan done; Page and
// Matched are its answer then. A scan lists the flows the worker holds
// when it begins: each is visited once, where the table is when its slice
// comes (a flow removed before goes unlisted, one that closed meanwhile is
// shown closed), and flows made while it runs are not visited.
type FlowScan struct {
	Filter FlowFilter
	After  uint64 // the lowest IDs above this
	Limit  int    // at most this many

	// Page is the snapshots of the matching flows with the lowest IDs
	// above After, at most Limit, in ascending ID order. Matched is how
	// many flows match in all: with no filter, or one of only State and
	// Encrypted, the count when the scan ends (kept by recount, exact);
	// else those the scan found matching.
	Page    []FlowInfo
	Matched int

	sel     lowest
	running bool
}

// FlowPageStep visits the next FlowScanStep flows of s and reports
// whether the scan is done. A scan started on another engine, or one
// interrupted by another scan of this one (one runs per engine at a time:
// the admin API runs one listing at a time), starts over. Call it between
// batches, on the worker's goroutine.
func (e *Engine) FlowPageStep(s *FlowScan) bool {
	if !s.running || e.scan != s {
		s.sel.max, s.sel.flows = s.Limit, s.sel.flows[:0]
		s.Page, s.Matched, s.running = nil, 0, true
		e.scan, e.scanAt = s, 0
	}
	end := min(e.scanAt+FlowScanStep, len(e.list))
	for _, f := range e.list[e.scanAt:end] {
		if !s.Filter.match(f) {
			continue
		}
		s.Matched++
		if f.id > s.After {
			s.sel.offer(f)
		}
	}
	e.scanAt, e.scanIdle = end, 0
	if end < len(e.list) {
		return false
	}
	e.scan, s.running = nil, false
	if s.Filter.Port == 0 && !s.Filter.Address.IsValid() {
		s.Matched = e.countMatching(&s.Filter)
	}
	s.Page = make([]FlowInfo, len(s.sel.flows))
	for i := len(s.sel.flows) - 1; i >= 0; i-- { // the heap's top is its highest ID
		s.Page[i] = s.sel.pop().info()
	}
	clear(s.sel.flows[:cap(s.sel.flows)]) // hold no record past the scan
	return true
}

// countMatching is how many listed flows a filter of only State and
// Encrypted matches, from the counts recount keeps.
func (e *Engine) countMatching(ff *FlowFilter) int {
	n := 0
	for b := 1; b < len(e.counts); b++ {
		st, enc := b%countEnc, b >= countEnc
		if st == 0 || ff.State != "" && stateNames[st] != ff.State || ff.Encrypted != nil && enc != *ff.Encrypted {
			continue
		}
		n += e.counts[b]
	}
	return n
}
