package engine

import (
	"net/netip"
	"slices"
)

// Snapshots for the admin API. Each runs on the worker's goroutine between
// batches, so it stalls the worker for as long as it takes: those read at
// every status request, metrics scrape or flow listing copy no flow whole
// but those they return.

// StateNames are the states FlowInfo.State takes, in the order a
// connection goes through them (fallen back to plain TCP last).
func StateNames() []string { return slices.Clone(stateNames[1:]) }

// Flows calls fn with a snapshot of every flow. Call it between batches,
// on the worker's goroutine.
func (e *Engine) Flows(fn func(FlowInfo)) {
	for _, f := range e.list {
		fn(f.info())
	}
}

// CountStates adds the number of flows in each state to byState, without
// a snapshot of each (the admin API's flows by state, read at every status
// request and metrics scrape). Every state is there, those without flows
// at 0: a series that vanished at 0 would never meet an alert's "== 0".
// It reads the counts recount keeps, in O(states): the worker stalls for
// no scan of its table. Call it between batches.
func (e *Engine) CountStates(byState map[string]uint64) {
	for st := 1; st < len(stateNames); st++ {
		byState[stateNames[st]] += uint64(e.counts[st] + e.counts[st+countEnc])
	}
}

// Flow returns the snapshot of the flow with the given ID, copying no
// other, found through byID without a scan. Call it between batches.
func (e *Engine) Flow(id uint64) (FlowInfo, bool) {
	i, ok := e.byID[id]
	if !ok || int(i) >= len(e.list) || e.list[i].id != id {
		return FlowInfo{}, false
	}
	return e.list[i].info(), true
}

// CountFlows returns the number of flows and of encrypted ones, from the
// counts recount keeps (no scan).
func (e *Engine) CountFlows() (total, encrypted int) {
	for st := 1; st < len(stateNames); st++ {
		encrypted += e.counts[st+countEnc]
	}
	return len(e.list), encrypted
}

// FlowFilter selects flows for FlowPage (the admin API's flow listing).
// The engine tests it on each record's own fields, so a listing allocates
// nothing per flow and copies whole only the flows it returns. A zero
// field matches every flow.
type FlowFilter struct {
	// Encrypted, when set, keeps the flows whose FlowInfo.Encrypted is
	// *Encrypted.
	Encrypted *bool
	// State keeps the flows in this state (FlowInfo.State).
	State string
	// Address keeps the flows whose inside or outside address it contains
	// (IPv4 unmapped); valid when set.
	Address netip.Prefix
	// Port keeps the flows whose inside or outside port it is.
	Port uint16
}

func (ff *FlowFilter) match(f *flow) bool {
	if ff.State != "" && stateNames[f.shownState()] != ff.State {
		return false
	}
	if ff.Port != 0 && f.key.in.Port() != ff.Port && f.key.out.Port() != ff.Port {
		return false
	}
	if ff.Address.IsValid() && !ff.Address.Contains(f.key.in.Addr().Unmap()) && !ff.Address.Contains(f.key.out.Addr().Unmap()) {
		return false
	}
	return ff.Encrypted == nil || (f.sess != nil) == *ff.Encrypted
}

// FlowPage returns the snapshots of the flows ff matches with the lowest
// IDs above after, at most limit of them, in ascending ID order, and how
// many flows match in all: a FlowScan run to its end in one go, which
// stalls the worker for a visit of every flow. The admin API steps
// through the table instead (FlowPageStep).
func (e *Engine) FlowPage(ff FlowFilter, after uint64, limit int) (page []FlowInfo, matched int) {
	s := FlowScan{Filter: ff, After: after, Limit: limit}
	for !e.FlowPageStep(&s) {
	}
	return s.Page, s.Matched
}

// lowest keeps the max flows with the lowest IDs offered to it, as a
// max-heap on ID.
type lowest struct {
	max   int
	flows []*flow
}

func (h *lowest) offer(f *flow) {
	if len(h.flows) < h.max {
		h.flows = append(h.flows, f)
		h.up(len(h.flows) - 1)
		return
	}
	if h.max == 0 || f.id >= h.flows[0].id {
		return
	}
	h.flows[0] = f
	h.down(0)
}

// pop takes the flow with the highest ID.
func (h *lowest) pop() *flow {
	top := h.flows[0]
	n := len(h.flows) - 1
	h.flows[0] = h.flows[n]
	h.flows = h.flows[:n]
	h.down(0)
	return top
}

func (h *lowest) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.flows[p].id >= h.flows[i].id {
			return
		}
		h.flows[p], h.flows[i] = h.flows[i], h.flows[p]
		i = p
	}
}

func (h *lowest) down(i int) {
	n := len(h.flows)
	for {
		big, l, r := i, 2*i+1, 2*i+2
		if l < n && h.flows[l].id > h.flows[big].id {
			big = l
		}
		if r < n && h.flows[r].id > h.flows[big].id {
			big = r
		}
		if big == i {
			return
		}
		h.flows[i], h.flows[big] = h.flows[big], h.flows[i]
		i = big
	}
}
