package control

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// AdminInfo is what the daemon knows and the appliance does not: the facts
// of /api/v1/status and the kernel's counters.
type AdminInfo struct {
	Version string
	// Ports: the inside port, then the outside one.
	Ports    []admin.PortStatus
	FastPath bool
	// AEADs is the configured AEAD order (config engine.aeads); empty: the
	// CPU's preference.
	AEADs []string
	// KernelPath returns the frames the XDP program forwarded itself (the
	// "fast" path). Nil: no such path.
	KernelPath func() admin.PathCounters
	// Rings returns the occupancy of the ports' own rings. Nil: none.
	Rings func() []admin.RingLevel
	// FastPathEntries counts the entries of the kernel fast path's map,
	// one per direction of a flow (xsk.Bump.FastPathLen: a walk of the
	// map, which AdminSource does at most every fastPathEvery). Nil: no
	// fast path.
	FastPathEntries func() (int, error)
	// Backend returns the port backends' own counters. Nil: none.
	Backend func() []admin.BackendCounters
	// PortPath returns the forwarding path of Ports[i] and why (it may
	// change while the daemon runs). Nil: the Ports entries say.
	PortPath func(i int) (path, reason string)
	// PortMTU returns the interface MTU of Ports[i] and the segment cap
	// the engines use toward it (admin.PortStatus; they may change while
	// the daemon runs). Nil: the Ports entries say.
	PortMTU func(i int) (mtu, segment int)
	// PortLink returns the link of Ports[i] (admin.PortStatus.Link; it
	// goes down and up while the daemon runs). Nil: the Ports entries say.
	PortLink func(i int) string
	// Warnings are shown in the status while the daemon runs (a key log
	// being written, for example).
	Warnings []string
	// Warning are warnings that may come and go, each "" while it does
	// not hold: the negotiated set's disk copy not being written, a port
	// gone, a port's link down.
	Warning []func() string
	// Guards, when the engine is off, are the workers' guards over a
	// previous run's negotiated set (nil: none run). Their counters are
	// the engine counters the API reports.
	Guards *Guards
}

// AdminSource implements admin.Source over a running appliance.Appliance
// and the Engines behind its workers. Engine state is only read on the
// workers' goroutines, through Appliance.Inspect; counters are atomics.
type AdminSource struct {
	a       *appliance.Appliance
	engines *Engines // nil: engine disabled
	info    AdminInfo
	status  admin.Status

	mu       sync.Mutex // serialises ApplyConfig; guards cfg and ec
	cfg      admin.Config
	ec       engine.Config // what the engines run, defaults filled in
	aeadFrom string        // where ec.AEADs' order came from (admin.Status)
	nonceLen int

	busy     busyMeter
	fastPath fastPathCount

	pageMu sync.Mutex // one flow listing at a time (FlowPage)
}

var _ admin.Source = (*AdminSource)(nil)

// NewAdminSource builds the Source. Call it after appliance.New and before
// Start (it reads the engines' configuration from the caller's goroutine).
func NewAdminSource(a *appliance.Appliance, engines *Engines, info AdminInfo) (*AdminSource, error) {
	s := &AdminSource{a: a, engines: engines, info: info, nonceLen: tcpcrypt.DefaultResumeNonceLen}
	if engines != nil && engines.Cache != nil {
		s.nonceLen = engines.Cache.NonceLen() // engine.resumption_nonce_len
	}
	var configured []cryptopool.Suite
	for _, name := range info.AEADs {
		su, err := cryptopool.ParseSuite(name)
		if err != nil {
			return nil, err
		}
		configured = append(configured, su)
	}
	pref, err := cryptopool.DetectPreference(configured)
	if err != nil {
		return nil, err
	}
	s.status = admin.Status{
		Version:     info.Version,
		Started:     a.Started(),
		Ports:       info.Ports,
		CPUFeatures: cpuFeatures(pref.Features),
		FastPath:    info.FastPath,
		Workers:     a.Workers(),
		Warnings:    info.Warnings,
	}
	if engines != nil {
		err := a.Inspect(func(q int, h appliance.FrameHandler) {
			if e, ok := engineOf(h); ok && q == 0 {
				s.ec = e.Config()
			}
		})
		if err != nil {
			return nil, err
		}
		if s.ec.MaxFlows == 0 { // no worker runs an engine
			s.ec = engines.Config()
		}
	} else {
		// No engine runs: show the settings one would start with, and
		// refuse every change (ApplyConfig).
		ec, err := engine.Config{}.Validate()
		if err != nil {
			return nil, err
		}
		s.ec = ec
	}
	s.aeadFrom = "cpu"
	if engines != nil && len(info.AEADs) > 0 {
		s.aeadFrom = "config"
	}
	s.cfg = adminConfig(s.ec, engines != nil && engines.Cache != nil, s.nonceLen)
	s.busy.start(a.Started(), a.Workers())
	return s, nil
}

// cpuFeatures names the features that chose the AEAD order.
func cpuFeatures(f cryptopool.Features) []string {
	aes, clmul := "aes", "pclmulqdq"
	if f.Arch == "arm64" {
		clmul = "pmull"
	}
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.AES, aes}, {f.CLMUL, clmul}, {f.AVX2, "avx2"}, {f.BMI2, "bmi2"}, {f.VAES, "vaes"}, {f.VPCLMULQDQ, "vpclmulqdq"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

func suiteNames(ss []cryptopool.Suite) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

// Status implements admin.Source.
func (s *AdminSource) Status() admin.Status {
	st := s.status
	st.Ports = slices.Clone(st.Ports)
	for i := range st.Ports {
		if s.info.PortPath != nil {
			st.Ports[i].Path, st.Ports[i].PathReason = s.info.PortPath(i)
		}
		if s.info.PortMTU != nil {
			st.Ports[i].MTU, st.Ports[i].SegmentMTU = s.info.PortMTU(i)
		}
		if s.info.PortLink != nil {
			st.Ports[i].Link = s.info.PortLink(i)
		}
	}
	st.CPUFeatures = slices.Clone(st.CPUFeatures)
	// The order the engines use now: PUT /api/v1/config may have changed
	// the one tcpincd started with.
	s.mu.Lock()
	st.AEADPreference = suiteNames(s.ec.AEADs)
	st.AEADPreferenceFrom = s.aeadFrom
	s.mu.Unlock()
	st.Warnings = slices.Clone(st.Warnings)
	if w := s.keyLogWarning(); w != "" {
		st.Warnings = append(st.Warnings, w)
	}
	if w := s.panicWarning(); w != "" {
		st.Warnings = append(st.Warnings, w)
	}
	for _, warn := range s.info.Warning {
		if w := warn(); w != "" {
			st.Warnings = append(st.Warnings, w)
		}
	}
	return st
}

// panicWarning says when the engines recovered from panics (a bug in
// tcpinc: each cost the connections it hit, recover.go in the engine), so
// that the operator looks in the log for the stacks and reports them.
func (s *AdminSource) panicWarning() string {
	if s.engines == nil {
		return ""
	}
	var n uint64
	s.engines.Each(func(_ int, c *engine.Counters) { n += c.Panics.Load() })
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("engine bug: %d panics recovered, each ending the connection it hit (panics in the engine events; the log has the stacks)", n)
}

// keyLogWarning says when the key log is missing lines: its file failed
// (after a write error it takes no more) or did not keep up, so a capture
// may not decrypt although the key log is on.
func (s *AdminSource) keyLogWarning() string {
	if s.engines == nil || s.engines.KeyLog == nil {
		return ""
	}
	var lost uint64
	s.engines.Each(func(_ int, c *engine.Counters) { lost += c.KeyLogLost.Load() })
	if s.engines.KeyLogLost != nil {
		lost = max(lost, s.engines.KeyLogLost()) // the writer also counts lines a write error lost after it took them
	}
	if lost == 0 {
		return ""
	}
	return fmt.Sprintf("key log incomplete: %d lines lost (its file failed or did not keep up; key_log_lost in the engine events)", lost)
}

// engines calls fn with each worker's engine on that worker's goroutine.
func (s *AdminSource) eachEngine(fn func(q int, e *engine.Engine)) error {
	return s.a.Inspect(func(q int, h appliance.FrameHandler) {
		if e, ok := engineOf(h); ok {
			fn(q, e)
		}
	})
}

// engineOf finds the engine in a handler (itself, or one a wrapper exposes).
func engineOf(h appliance.FrameHandler) (*engine.Engine, bool) {
	switch x := h.(type) {
	case *engine.Engine:
		return x, true
	case interface{ Engine() *engine.Engine }:
		return x.Engine(), true
	}
	return nil, false
}

// FlowPage implements admin.Source: each worker selects its own page of
// matching flows (engine.FlowPageStep, which tests the filter on its
// records without a copy or an allocation per flow), and the pages are
// merged here. A worker visits at most engine.FlowScanStep flows per
// Inspect call, and forwards between them: a listing of a large table
// takes several calls, never a stall for the whole table. One listing
// runs at a time (an engine keeps one scan's place).
func (s *AdminSource) FlowPage(filter admin.FlowFilter, after uint64, limit int) ([]admin.FlowInfo, int) {
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	var scans []*engine.FlowScan // by queue
	var done []bool
	for pending := true; pending; {
		pending = false
		if err := s.eachEngine(func(q int, e *engine.Engine) {
			for len(scans) <= q {
				scans, done = append(scans, nil), append(done, false)
			}
			if scans[q] == nil {
				scans[q] = &engine.FlowScan{Filter: engine.FlowFilter(filter), After: after, Limit: limit}
			}
			if !done[q] {
				done[q] = e.FlowPageStep(scans[q])
				pending = pending || !done[q]
			}
		}); err != nil {
			return nil, 0
		}
	}
	var page []admin.FlowInfo
	matched := 0
	for _, sc := range scans {
		if sc == nil {
			continue
		}
		matched += sc.Matched
		for _, f := range sc.Page {
			page = append(page, flowInfo(f))
		}
	}
	slices.SortFunc(page, func(a, b admin.FlowInfo) int { return cmp.Compare(a.ID, b.ID) })
	return page[:min(len(page), limit)], matched
}

// FlowCounts implements admin.Source, counting on the workers.
func (s *AdminSource) FlowCounts() (total, encrypted int) {
	_ = s.eachEngine(func(_ int, e *engine.Engine) {
		t, n := e.CountFlows()
		total += t
		encrypted += n
	})
	return total, encrypted
}

// Flow implements admin.Source: each worker looks for the ID among its
// flows and copies only that one.
func (s *AdminSource) Flow(id uint64) (admin.FlowInfo, bool) {
	var found admin.FlowInfo
	ok := false
	_ = s.eachEngine(func(_ int, e *engine.Engine) {
		if ok {
			return
		}
		if f, hit := e.Flow(id); hit {
			found, ok = flowInfo(f), true
		}
	})
	return found, ok
}

// Lookup implements admin.Source: a or b may be the inside end.
func (s *AdminSource) Lookup(a, b netip.AddrPort) (admin.FlowInfo, bool) {
	var found admin.FlowInfo
	ok := false
	_ = s.eachEngine(func(_ int, e *engine.Engine) {
		if ok {
			return
		}
		f, hit := e.Lookup(a, b)
		if !hit {
			f, hit = e.Lookup(b, a)
		}
		if hit {
			found, ok = flowInfo(f), true
		}
	})
	return found, ok
}

func flowInfo(f engine.FlowInfo) admin.FlowInfo {
	return admin.FlowInfo{
		ID: f.ID, Inside: f.Inside, Outside: f.Outside, State: f.State, Encrypted: f.Encrypted,
		FallbackReason: f.FallbackReason, Role: f.Role, TEP: f.TEP, AEAD: f.AEAD, SessionID: f.SessionID,
		KeyGeneration: f.KeyGeneration, Resumed: f.Resumed,
		BytesIn: f.BytesIn, BytesOut: f.BytesOut, PacketsIn: f.PacketsIn, PacketsOut: f.PacketsOut,
		Started: f.Started, Transcript: slices.Clone(f.Transcript), Stream: streamInfo(f.Stream),
	}
}

func streamInfo(s *engine.StreamInfo) *admin.Stream {
	if s == nil {
		return nil
	}
	return &admin.Stream{Out: admin.StreamOut(s.Out), In: admin.StreamIn(s.In)}
}

// FlushCache implements admin.Source (TCP_CRYPT_CACHE_FLUSH, TC-41).
func (s *AdminSource) FlushCache(far netip.Addr) (int, error) {
	if s.engines == nil || s.engines.Cache == nil {
		return 0, nil // nothing cached: resumption is off
	}
	c := s.engines.Cache
	before := c.Len()
	if far.IsValid() {
		c.Flush(far.Unmap())
	} else {
		c.FlushAll()
	}
	return max(before-c.Len(), 0), nil
}

// CPUs lists the CPU each queue's worker is pinned to (cpus[q % len]), or
// nil when the workers are not pinned: for admin.PortStatus.
func CPUs(queues int, cpus []int) []int {
	if len(cpus) == 0 {
		return nil
	}
	out := make([]int, queues)
	for q := range out {
		out[q] = cpus[q%len(cpus)]
	}
	return out
}
