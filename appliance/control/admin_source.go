package control

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Reconfigurer is a appliance.FrameHandler whose settings can change while it runs.
// AdminSource calls Reconfigure on the worker's goroutine between two
// rounds (through appliance.Appliance.Inspect) with a configuration that engine.New
// accepts; it must apply all of it or, returning an error, none of it.
type Reconfigurer interface {
	Reconfigure(engine.Config) error
}

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
	// PortPath returns the forwarding path of Ports[i] and why (it may
	// change while the daemon runs). Nil: the Ports entries say.
	PortPath func(i int) (path, reason string)
	// Warnings are shown in the status while the daemon runs (a key log
	// being written, for example).
	Warnings []string
}

// AdminSource implements admin.Source over a running appliance.Appliance and the
// Engines behind its workers. Engine state is only read on the workers'
// goroutines, through appliance.Appliance.Inspect; counters are atomics.
type AdminSource struct {
	a       *appliance.Appliance
	engines *Engines // nil: engine disabled
	info    AdminInfo
	status  admin.Status

	mu       sync.Mutex // serialises ApplyConfig; guards cfg and ec
	cfg      admin.Config
	ec       engine.Config // what the engines run, defaults filled in
	nonceLen int

	loadMu   sync.Mutex // guards the busy-ratio baseline
	lastAt   time.Time
	lastBusy []time.Duration
}

var _ admin.Source = (*AdminSource)(nil)

// NewAdminSource builds the Source. Call it after New and before Start (it
// reads the engines' configuration from the caller's goroutine).
func NewAdminSource(a *appliance.Appliance, engines *Engines, info AdminInfo) (*AdminSource, error) {
	s := &AdminSource{a: a, engines: engines, info: info, nonceLen: tcpcrypt.DefaultResumeNonceLen}
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
		Version:        info.Version,
		Started:        a.Started(),
		Ports:          info.Ports,
		CPUFeatures:    cpuFeatures(pref.Features),
		AEADPreference: suiteNames(pref.Order),
		FastPath:       info.FastPath,
		Workers:        a.Workers(),
		Warnings:       info.Warnings,
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
		e, err := engine.New(engine.Config{}, engine.Deps{})
		if err != nil {
			return nil, err
		}
		s.ec = e.Config()
	}
	s.cfg = adminConfig(s.ec, engines != nil && engines.Cache != nil, s.nonceLen)
	s.lastAt, s.lastBusy = a.Started(), make([]time.Duration, a.Workers())
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

// adminConfig is the admin view of the engines' configuration. The engine
// has no default policy: addresses no rule matches are opportunistic.
func adminConfig(ec engine.Config, resumption bool, nonceLen int) admin.Config {
	c := admin.Config{
		DefaultPolicy:  admin.PolicyOpportunistic,
		Policies:       []admin.PolicyRule{},
		Resumption:     resumption,
		ResumeNonceLen: nonceLen,
		Caps: admin.Caps{
			Flows:            ec.MaxFlows,
			RetransmitBytes:  uint64(ec.RetransmitBytes),
			ReassemblyBytes:  uint64(ec.ReassemblyBytes),
			PrekeyQueueBytes: uint64(ec.PreKeyBytes),
			DeliverBytes:     uint64(ec.DeliverBytes),
		},
	}
	for _, t := range ec.TEPs {
		c.TEPs = append(c.TEPs, t.String())
	}
	c.AEADs = suiteNames(ec.AEADs)
	if ec.RekeyBytes > 0 {
		c.RekeyBytes = uint64(ec.RekeyBytes)
	}
	if ec.RekeyAfter > 0 {
		c.RekeyInterval = admin.Duration(ec.RekeyAfter)
	}
	for _, r := range ec.Policies {
		c.Policies = append(c.Policies, admin.PolicyRule{Prefix: r.Prefix.String(), Policy: policyName(r.Policy)})
	}
	return c
}

func policyName(p engine.Policy) string {
	switch p {
	case engine.Require:
		return admin.PolicyRequire
	case engine.Bypass:
		return admin.PolicyBypass
	}
	return admin.PolicyOpportunistic
}

var policyByName = map[string]engine.Policy{
	admin.PolicyOpportunistic: engine.Opportunistic,
	admin.PolicyRequire:       engine.Require,
	admin.PolicyBypass:        engine.Bypass,
}

// Status implements admin.Source.
func (s *AdminSource) Status() admin.Status {
	st := s.status
	st.Ports = slices.Clone(st.Ports)
	if s.info.PortPath != nil {
		for i := range st.Ports {
			st.Ports[i].Path, st.Ports[i].PathReason = s.info.PortPath(i)
		}
	}
	st.CPUFeatures = slices.Clone(st.CPUFeatures)
	st.AEADPreference = slices.Clone(st.AEADPreference)
	st.Warnings = slices.Clone(st.Warnings)
	return st
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

// Flows implements admin.Source: the snapshots are taken on the workers'
// goroutines, then handed to yield on the caller's.
func (s *AdminSource) Flows(yield func(admin.FlowInfo) bool) {
	var all []admin.FlowInfo
	if err := s.eachEngine(func(_ int, e *engine.Engine) {
		e.Flows(func(f engine.FlowInfo) { all = append(all, flowInfo(f)) })
	}); err != nil {
		return
	}
	for _, f := range all {
		if !yield(f) {
			return
		}
	}
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
		Started: f.Started, Transcript: slices.Clone(f.Transcript),
	}
}

// Config implements admin.Source.
func (s *AdminSource) Config() admin.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	c.Policies = slices.Clone(c.Policies)
	c.TEPs = slices.Clone(c.TEPs)
	c.AEADs = slices.Clone(c.AEADs)
	return c
}

// ApplyConfig implements admin.Source. It maps c to the engine's
// configuration, checks it as engine.New does, then reconfigures every
// worker's engine between two of its rounds; if one refuses, the ones
// already changed are put back, so all engines run c or none does.
// Resumption on/off and the nonce length go to the shared cache last.
//
// Refused with a *admin.FieldError, changing nothing: turning resumption on
// when tcpincd started with it off (the engines hold no cache), and any
// engine setting while the handlers cannot be reconfigured at run time.
func (s *AdminSource) ApplyConfig(c admin.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engines == nil {
		if f := changedField(s.cfg, c); f != "" {
			return &admin.FieldError{Field: f, Msg: "the engine is disabled (engine.enabled: false): there is nothing to reconfigure until tcpincd restarts with it on"}
		}
		return nil
	}
	ec, err := s.engineConfig(c)
	if err != nil {
		return err
	}
	cache := s.engines.Cache
	if c.Resumption && cache == nil {
		return &admin.FieldError{Field: "resumption", Msg: "resumption was off when tcpincd started (engine.resumption: false), so the engines hold no resumption cache; turn it on in the config file and restart"}
	}
	if c.ResumeNonceLen != s.nonceLen && cache == nil {
		return &admin.FieldError{Field: "resume_nonce_len", Msg: "resumption is off: there is no cache whose nonce length to set"}
	}
	if f := changedEngineField(s.ec, ec); f != "" {
		if err := s.reconfigure(ec, f); err != nil {
			return err
		}
		s.ec = ec
	}
	if cache != nil {
		if err := cache.SetNonceLen(c.ResumeNonceLen); err != nil {
			return &admin.FieldError{Field: "resume_nonce_len", Msg: err.Error()}
		}
		cache.SetEnabled(c.Resumption)
		s.nonceLen = c.ResumeNonceLen
	}
	s.cfg = c
	s.cfg.Policies = slices.Clone(c.Policies)
	s.cfg.TEPs = slices.Clone(c.TEPs)
	s.cfg.AEADs = slices.Clone(c.AEADs)
	return nil
}

// engineConfig maps c (already through admin.Config.Validate) over the
// running engine configuration and checks what only the engine knows.
func (s *AdminSource) engineConfig(c admin.Config) (engine.Config, error) {
	ec := s.ec
	ec.TEPs, ec.AEADs, ec.Policies = nil, nil, nil
	for i, name := range c.TEPs {
		t, ok := tepByName(name)
		if !ok {
			return ec, &admin.FieldError{Field: fmt.Sprintf("teps[%d]", i), Msg: fmt.Sprintf("unknown TEP %q", name)}
		}
		ec.TEPs = append(ec.TEPs, t)
	}
	for i, name := range c.AEADs {
		su, err := cryptopool.ParseSuite(name)
		if err != nil {
			return ec, &admin.FieldError{Field: fmt.Sprintf("aeads[%d]", i), Msg: err.Error()}
		}
		ec.AEADs = append(ec.AEADs, su)
	}
	if err := cryptopool.ValidateOrder(ec.AEADs); err != nil {
		return ec, &admin.FieldError{Field: "aeads", Msg: err.Error()}
	}
	// The file and the API say 0 for "never"; the engine reads 0 as the
	// default and a negative value as never.
	ec.RekeyBytes, ec.RekeyAfter = int64(c.RekeyBytes), time.Duration(c.RekeyInterval)
	if c.RekeyBytes > 1<<62 {
		return ec, &admin.FieldError{Field: "rekey_bytes", Msg: fmt.Sprintf("at most %d", int64(1)<<62)}
	}
	if ec.RekeyBytes == 0 {
		ec.RekeyBytes = -1
	}
	if ec.RekeyAfter == 0 {
		ec.RekeyAfter = -1
	}
	ec.MaxFlows = c.Caps.Flows
	ec.RetransmitBytes = int(c.Caps.RetransmitBytes)
	ec.ReassemblyBytes = int(c.Caps.ReassemblyBytes)
	ec.PreKeyBytes = int(c.Caps.PrekeyQueueBytes)
	ec.DeliverBytes = int(c.Caps.DeliverBytes)
	if ec.RetransmitBytes < config.MinRetransmitBytes {
		return ec, &admin.FieldError{Field: "caps.retransmit_bytes", Msg: fmt.Sprintf("must be at least %d: a full tcpcrypt frame split into wire segments must fit twice (got %d)", config.MinRetransmitBytes, ec.RetransmitBytes)}
	}
	covered := [2]bool{} // an explicit /0 rule for IPv4, IPv6
	for i, r := range c.Policies {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			return ec, &admin.FieldError{Field: fmt.Sprintf("policies[%d].prefix", i), Msg: err.Error()}
		}
		pol, ok := policyByName[r.Policy]
		if !ok {
			return ec, &admin.FieldError{Field: fmt.Sprintf("policies[%d].policy", i), Msg: fmt.Sprintf("unknown policy %q", r.Policy)}
		}
		if p.Bits() == 0 {
			covered[boolIndex(p.Addr().Is6())] = true
		}
		ec.Policies = append(ec.Policies, engine.PolicyRule{Prefix: p.Masked(), Policy: pol})
	}
	// The default policy is a /0 rule per family, unless a rule says
	// otherwise; opportunistic is the engine's own default.
	if def, ok := policyByName[c.DefaultPolicy]; ok && def != engine.Opportunistic {
		for fam, all := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			if !covered[fam] {
				ec.Policies = append(ec.Policies, engine.PolicyRule{Prefix: all, Policy: def})
			}
		}
	} else if !ok {
		return ec, &admin.FieldError{Field: "default_policy", Msg: fmt.Sprintf("unknown policy %q", c.DefaultPolicy)}
	}
	if _, err := engine.New(ec, engine.Deps{}); err != nil {
		return ec, &admin.FieldError{Field: "caps", Msg: err.Error()}
	}
	return ec, nil
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reconfigure gives ec to every worker's engine, all or none. field names
// the first changed setting, for the refusal when engines cannot change.
func (s *AdminSource) reconfigure(ec engine.Config, field string) error {
	var refused bool
	if err := s.a.Inspect(func(_ int, h appliance.FrameHandler) {
		if _, ok := h.(Reconfigurer); !ok {
			refused = true
		}
	}); err != nil {
		return err
	}
	if refused {
		return &admin.FieldError{Field: field, Msg: "cannot be changed while tcpincd runs: the engine takes its settings only when it starts; change it in the config file (engine section) and restart"}
	}
	old := s.ec
	var done []Reconfigurer
	var failed error
	if err := s.a.Inspect(func(q int, h appliance.FrameHandler) {
		if failed != nil {
			return
		}
		r := h.(Reconfigurer)
		if err := r.Reconfigure(ec); err != nil {
			failed = fmt.Errorf("worker %d: %w", q, err)
			return
		}
		done = append(done, r)
	}); err != nil {
		failed = err
	}
	if failed == nil {
		return nil
	}
	// Put back the engines already changed: each accepted old before.
	var rollback []error
	if err := s.a.Inspect(func(_ int, h appliance.FrameHandler) {
		r := h.(Reconfigurer)
		if slices.Contains(done, r) {
			if err := r.Reconfigure(old); err != nil {
				rollback = append(rollback, err)
			}
		}
	}); err != nil {
		rollback = append(rollback, err)
	}
	if len(rollback) > 0 {
		return fmt.Errorf("reconfigure engines: %w; restoring the previous configuration failed: %w", failed, errors.Join(rollback...))
	}
	return &admin.FieldError{Field: field, Msg: fmt.Sprintf("refused by the engine, nothing changed: %v", failed)}
}

// changedField names the first field of b that differs from a, or "".
func changedField(a, b admin.Config) string {
	if a.DefaultPolicy != b.DefaultPolicy {
		return "default_policy"
	}
	if !reflect.DeepEqual(orNil(a.Policies), orNil(b.Policies)) {
		return "policies"
	}
	if !slices.Equal(a.TEPs, b.TEPs) {
		return "teps"
	}
	if !slices.Equal(a.AEADs, b.AEADs) {
		return "aeads"
	}
	switch {
	case a.RekeyBytes != b.RekeyBytes:
		return "rekey_bytes"
	case a.RekeyInterval != b.RekeyInterval:
		return "rekey_interval"
	case a.Resumption != b.Resumption:
		return "resumption"
	case a.ResumeNonceLen != b.ResumeNonceLen:
		return "resume_nonce_len"
	}
	return capsField(a.Caps, b.Caps)
}

func orNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func capsField(a, b admin.Caps) string {
	switch {
	case a.Flows != b.Flows:
		return "caps.flows"
	case a.RetransmitBytes != b.RetransmitBytes:
		return "caps.retransmit_bytes"
	case a.ReassemblyBytes != b.ReassemblyBytes:
		return "caps.reassembly_bytes"
	case a.PrekeyQueueBytes != b.PrekeyQueueBytes:
		return "caps.prekey_queue_bytes"
	case a.DeliverBytes != b.DeliverBytes:
		return "caps.deliver_bytes"
	}
	return ""
}

// changedEngineField names, in the API's spelling, the first engine setting
// that differs between a and b, or "".
func changedEngineField(a, b engine.Config) string {
	switch {
	case !reflect.DeepEqual(orNil(a.Policies), orNil(b.Policies)):
		return "policies"
	case !slices.Equal(a.TEPs, b.TEPs):
		return "teps"
	case !slices.Equal(a.AEADs, b.AEADs):
		return "aeads"
	case a.RekeyBytes != b.RekeyBytes:
		return "rekey_bytes"
	case a.RekeyAfter != b.RekeyAfter:
		return "rekey_interval"
	case a.MaxFlows != b.MaxFlows:
		return "caps.flows"
	case a.RetransmitBytes != b.RetransmitBytes:
		return "caps.retransmit_bytes"
	case a.ReassemblyBytes != b.ReassemblyBytes:
		return "caps.reassembly_bytes"
	case a.PreKeyBytes != b.PreKeyBytes:
		return "caps.prekey_queue_bytes"
	case a.DeliverBytes != b.DeliverBytes:
		return "caps.deliver_bytes"
	}
	return ""
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
		c.Handshakes = map[string]uint64{}
		c.Fallbacks = map[string]uint64{}
		c.Fragments = map[string]uint64{}
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
	c.Rings = s.handoffLevels()
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
