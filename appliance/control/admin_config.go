package control

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// Reconfigurer is an appliance.FrameHandler whose settings can change while
// it runs. AdminSource calls Reconfigure on the worker's goroutine between
// two rounds (through Appliance.Inspect) with a configuration that
// engine.New accepts; it must apply all of it or, returning an error, none
// of it.
type Reconfigurer interface {
	Reconfigure(engine.Config) error
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
		c.Policies = append(c.Policies, admin.PolicyRule{Prefix: r.Prefix.String(), Policy: r.Policy.String()})
	}
	return c
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
// Resumption on/off and the nonce length go to the shared cache last; a
// TEP or AEAD taken out flushes it.
//
// Refused with a *admin.FieldError, changing nothing: caps.flows above the
// value tcpincd started with (Engines.StartMaxFlows), turning resumption on
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
	ec, err := apiEngineConfig(s.ec, c)
	if err != nil {
		return err
	}
	if most := s.engines.StartMaxFlows(); ec.MaxFlows > most {
		// More live flows than the negotiated set holds would go
		// encrypted but unheld, their tuples unknown after a restart.
		return &admin.FieldError{Field: "caps.flows", Msg: fmt.Sprintf("at most %d while tcpincd runs: the negotiated set (and its pinned map) was sized at start for that many flows per worker; raise engine.max_flows in the config file and restart", most)}
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
		if cache != nil && (dropsAny(s.ec.AEADs, ec.AEADs) || dropsAny(s.ec.TEPs, ec.TEPs)) {
			// Secrets of sessions under a TEP or AEAD no longer
			// allowed can never be resumed again (the engines
			// refuse them, engine.mayResume): forget them now.
			cache.FlushAll()
		}
		if !slices.Equal(s.ec.AEADs, ec.AEADs) {
			s.aeadFrom = "api"
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

// dropsAny reports whether next lacks an element of prev.
func dropsAny[T comparable](prev, next []T) bool {
	return slices.ContainsFunc(prev, func(x T) bool { return !slices.Contains(next, x) })
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
