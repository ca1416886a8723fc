package control

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// settings are the engine settings that both the configuration file's
// engine section and the admin API's /api/v1/config spell by name. One
// mapping (apply) turns them into engine.Config for tcpincd's start-up
// (EngineConfig) and for a change at run time (AdminSource.ApplyConfig).
type settings struct {
	TEPs, AEADs []string
	Policies    []config.Policy
	// DefaultPolicy is the API's default_policy: a /0 rule per family
	// that no rule covers. "" (the file has none): no such rules.
	DefaultPolicy string
	// RekeyBytes and RekeyInterval: 0 means never.
	RekeyBytes    int64
	RekeyInterval time.Duration
	// The caps, per worker (MaxFlows) and per flow.
	MaxFlows, RetransmitBytes, ReassemblyBytes, PreKeyBytes, DeliverBytes int
}

// spelling is how one side names the settings' keys and reports a bad one.
// Keys are given in the admin API's spelling ("teps[0]", "caps.flows";
// "caps" for what only the engine's own check refuses).
type spelling struct {
	field func(key string) string
	err   func(field, msg string) error
}

// apiSpelling: the admin API's keys, as admin.FieldErrors.
var apiSpelling = spelling{
	field: func(key string) string { return key },
	err:   func(field, msg string) error { return &admin.FieldError{Field: field, Msg: msg} },
}

// fileSpelling: the configuration file's keys (engine.teps[0],
// engine.max_flows), as config.FieldErrors.
var fileSpelling = spelling{field: fileKey, err: func(field, msg string) error { return &config.FieldError{Field: field, Msg: msg} }}

// fileKeys are the caps whose key in the file is not the API's.
var fileKeys = map[string]string{"caps": "engine", "caps.flows": "engine.max_flows", "caps.prekey_queue_bytes": "engine.prekey_bytes",
	"resume_nonce_len": "engine.resumption_nonce_len"}

func fileKey(key string) string {
	if k, ok := fileKeys[key]; ok {
		return k
	}
	return "engine." + strings.TrimPrefix(key, "caps.")
}

// policyByName maps the policy names of the file and the API (both
// "opportunistic", "require", "bypass": engine.Policy.String) to policies.
var policyByName = map[string]engine.Policy{
	engine.Opportunistic.String(): engine.Opportunistic,
	engine.Require.String():       engine.Require,
	engine.Bypass.String():        engine.Bypass,
}

func tepByName(name string) (tcpcrypt.TEP, bool) {
	for _, t := range tcpcrypt.AllTEPs {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}

// apply sets s over base and checks the result as engine.New would, naming
// a bad key in sp's spelling. Settings s does not hold keep base's values.
func (s *settings) apply(base engine.Config, sp spelling) (engine.Config, error) {
	bad := func(key, format string, args ...any) error {
		return sp.err(sp.field(key), fmt.Sprintf(format, args...))
	}
	ec := base
	ec.TEPs, ec.AEADs, ec.Policies = nil, nil, nil
	for i, name := range s.TEPs {
		t, ok := tepByName(name)
		if !ok {
			return ec, bad(fmt.Sprintf("teps[%d]", i), "unknown TEP %q", name)
		}
		ec.TEPs = append(ec.TEPs, t)
	}
	for i, name := range s.AEADs {
		su, err := cryptopool.ParseSuite(name)
		if err != nil {
			return ec, bad(fmt.Sprintf("aeads[%d]", i), "%v", err)
		}
		ec.AEADs = append(ec.AEADs, su)
	}
	if len(ec.AEADs) > 0 { // none: the engine orders them by this CPU
		if err := cryptopool.ValidateOrder(ec.AEADs); err != nil {
			return ec, bad("aeads", "%v", err)
		}
	}
	// Both say 0 for "never"; the engine reads 0 as the default and a
	// negative value as never.
	ec.RekeyBytes, ec.RekeyAfter = s.RekeyBytes, s.RekeyInterval
	if ec.RekeyBytes == 0 {
		ec.RekeyBytes = -1
	}
	if ec.RekeyAfter == 0 {
		ec.RekeyAfter = -1
	}
	ec.MaxFlows = s.MaxFlows
	ec.RetransmitBytes, ec.ReassemblyBytes = s.RetransmitBytes, s.ReassemblyBytes
	ec.PreKeyBytes, ec.DeliverBytes = s.PreKeyBytes, s.DeliverBytes
	if ec.RetransmitBytes < config.MinRetransmitBytes {
		return ec, bad("caps.retransmit_bytes", "must be at least %d: a full tcpcrypt frame split into wire segments must fit twice (got %d)", config.MinRetransmitBytes, ec.RetransmitBytes)
	}
	policies, err := s.policies(bad)
	if err != nil {
		return ec, err
	}
	ec.Policies = policies
	if _, err := ec.Validate(); err != nil {
		return ec, bad("caps", "%v", err)
	}
	return ec, nil
}

// policies maps the rules, then the default policy: a /0 rule per family
// unless a rule says otherwise (opportunistic is the engine's own default).
func (s *settings) policies(bad func(key, format string, args ...any) error) ([]engine.PolicyRule, error) {
	var out []engine.PolicyRule
	var covered [2]bool // an explicit /0 rule for IPv4, IPv6
	for i, r := range s.Policies {
		p, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			return nil, bad(fmt.Sprintf("policies[%d].prefix", i), "%v", err)
		}
		pol, ok := policyByName[r.Policy]
		if !ok {
			return nil, bad(fmt.Sprintf("policies[%d].policy", i), "unknown policy %q", r.Policy)
		}
		if p.Bits() == 0 {
			covered[boolIndex(p.Addr().Is6())] = true
		}
		out = append(out, engine.PolicyRule{Prefix: p.Masked(), Policy: pol})
	}
	if s.DefaultPolicy == "" {
		return out, nil
	}
	def, ok := policyByName[s.DefaultPolicy]
	if !ok {
		return nil, bad("default_policy", "unknown policy %q", s.DefaultPolicy)
	}
	if def != engine.Opportunistic {
		for fam, all := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			if !covered[fam] {
				out = append(out, engine.PolicyRule{Prefix: all, Policy: def})
			}
		}
	}
	return out, nil
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// EngineConfig maps the configuration file's engine section to
// engine.Config, and checks the result the way engine.New does. Errors name
// the key at fault.
func EngineConfig(c config.Engine) (engine.Config, error) {
	if c.MemoryLimit == 0 {
		c.MemoryLimit = AutoMemoryLimit(memTotal())
	}
	base := engine.Config{
		NoResumption:     !c.Resumption,
		MaxEmbryonic:     c.MaxEmbryonic,
		MemoryLimit:      c.MemoryLimit,
		InitRTO:          c.InitRTO,
		InitTries:        c.InitTries,
		SYNsWithENO:      synsWithENO(c.SYNsWithENO),
		HandshakeTimeout: c.HandshakeTimeout,
		IdleTimeout:      c.IdleTimeout,
		PlainRetention:   c.PlainRetention,
		Fragments: engine.FragConfig{Timeout: c.FragmentTimeout, MaxDatagrams: c.FragmentDatagrams,
			PerFlow: c.FragmentPerFlow, Memory: c.FragmentBytes},
	}
	s := settings{
		TEPs: c.TEPs, AEADs: c.AEADs, Policies: c.Policies,
		RekeyBytes: c.RekeyBytes, RekeyInterval: c.RekeyInterval,
		MaxFlows: c.MaxFlows, RetransmitBytes: c.RetransmitBytes, ReassemblyBytes: c.ReassemblyBytes,
		PreKeyBytes: c.PreKeyBytes, DeliverBytes: c.DeliverBytes,
	}
	ec, err := s.apply(base, fileSpelling)
	if err != nil {
		return ec, err
	}
	return ec, apiTakesBack(ec, c)
}

// apiTakesBack checks that the admin API would accept the configuration the
// file gives, as GET /api/v1/config shows it. A PUT sends that document
// whole (fields left out keep their values), so a value only the file
// allowed (rekey_bytes under the API's minimum, two rules for one prefix)
// made every later change fail on a field the operator never sent. The
// file is refused at start instead, naming its own key.
func apiTakesBack(ec engine.Config, c config.Engine) error {
	running, err := ec.Validate() // the defaults filled in, as the engines run it
	if err != nil {
		return &config.FieldError{Field: "engine", Msg: err.Error()}
	}
	view := adminConfig(running, c.Resumption, c.ResumptionNonceLen)
	err = view.Validate()
	if err == nil {
		return nil
	}
	var errs []error
	for _, e := range flatten(err) {
		if fe, ok := e.(*admin.FieldError); ok {
			e = &config.FieldError{Field: fileKey(fe.Field), Msg: fe.Msg}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// flatten lists the errors errors.Join put together (err itself if it is
// not such a list).
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// apiEngineConfig maps c (already through admin.Config.Validate) over the
// running engine configuration ec.
func apiEngineConfig(ec engine.Config, c admin.Config) (engine.Config, error) {
	if c.RekeyBytes > 1<<62 {
		return ec, &admin.FieldError{Field: "rekey_bytes", Msg: fmt.Sprintf("at most %d", int64(1)<<62)}
	}
	s := settings{
		TEPs: c.TEPs, AEADs: c.AEADs, DefaultPolicy: c.DefaultPolicy,
		RekeyBytes: int64(c.RekeyBytes), RekeyInterval: time.Duration(c.RekeyInterval),
		MaxFlows: c.Caps.Flows, RetransmitBytes: int(c.Caps.RetransmitBytes), ReassemblyBytes: int(c.Caps.ReassemblyBytes),
		PreKeyBytes: int(c.Caps.PrekeyQueueBytes), DeliverBytes: int(c.Caps.DeliverBytes),
	}
	for _, r := range c.Policies {
		s.Policies = append(s.Policies, config.Policy{Prefix: r.Prefix, Policy: r.Policy})
	}
	return s.apply(ec, apiSpelling)
}

// synsWithENO maps the configuration's syns_with_eno (0: every SYN keeps
// TCP-ENO) to engine.Config.SYNsWithENO (0 there means its default).
func synsWithENO(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
