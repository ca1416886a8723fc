package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Config is the runtime configuration served at /api/v1/config: the policy
// and protocol settings that can change while the daemon runs. (Ports,
// queues and rings are fixed at start and belong to the config file.)
type Config struct {
	// DefaultPolicy applies to destinations no Policies entry matches.
	DefaultPolicy string `json:"default_policy"`
	// Policies map destination prefixes to a policy; the longest prefix
	// that contains the far side's address wins.
	Policies []PolicyRule `json:"policies"`
	// TEPs are the tcpcrypt key-exchange schemes offered, most preferred
	// first (x25519, x448, p256, p521).
	TEPs []string `json:"teps"`
	// AEADs are the AEADs offered as A and accepted as B, most preferred
	// first (aes128gcm, aes256gcm, chacha20poly1305).
	AEADs []string `json:"aeads"`
	// RekeyBytes and RekeyInterval start a rekey (RFC 8548 §3.8) after this
	// many bytes or this much time under one key; 0 turns each off.
	RekeyBytes    uint64   `json:"rekey_bytes"`
	RekeyInterval Duration `json:"rekey_interval"`
	// Resumption turns session resumption (RFC 8548 §3.5) on or off.
	Resumption bool `json:"resumption"`
	// ResumeNonceLen is the length of the resumption nonces sent, 0..8
	// bytes (TC-15, TC-17; docs/protocol.md §17).
	ResumeNonceLen int  `json:"resume_nonce_len"`
	Caps           Caps `json:"caps"`
}

// PolicyRule is one destination prefix and its policy.
type PolicyRule struct {
	Prefix string `json:"prefix"`
	Policy string `json:"policy"`
}

// Caps bound what the engine keeps per worker and per flow.
type Caps struct {
	Flows            int    `json:"flows"`              // flows per worker
	RetransmitBytes  uint64 `json:"retransmit_bytes"`   // ciphertext kept per flow until ACKed
	ReassemblyBytes  uint64 `json:"reassembly_bytes"`   // out-of-order wire bytes held per flow
	PrekeyQueueBytes uint64 `json:"prekey_queue_bytes"` // host data queued per flow before keys exist
	DeliverBytes     uint64 `json:"deliver_bytes"`      // plaintext kept per flow for re-delivery to the inside host
}

// Policies.
const (
	PolicyOpportunistic = "opportunistic" // encrypt when the far side speaks TCP-ENO, else fall back to plain TCP
	PolicyRequire       = "require"       // encrypt or refuse (reset, or drop the SYN): never fall back
	PolicyBypass        = "bypass"        // never touch the flow
)

// Limits Validate applies.
const (
	MinRekeyBytes    = 1 << 16
	MinRekeyInterval = time.Second
	MaxCapFlows      = 1 << 24
	MinCapBytes      = 1 << 12
	MaxCapBytes      = 1 << 30
	MaxPolicies      = 4096
)

// Duration is a time.Duration that JSON spells as a Go duration string
// ("1h30m", "0s").
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json does for other types: no change
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "1h" or "90s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"1h\" or \"90s\" (got %q)", s)
	}
	*d = Duration(v)
	return nil
}

// Validate checks every field and returns the problems found, joined; each
// is a *FieldError. It checks what can be checked without the daemon.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if !validPolicy(c.DefaultPolicy) {
		bad("default_policy", "must be opportunistic, require or bypass (got %q)", c.DefaultPolicy)
	}
	if len(c.Policies) > MaxPolicies {
		bad("policies", "at most %d entries (got %d)", MaxPolicies, len(c.Policies))
	}
	seen := make(map[netip.Prefix]int, len(c.Policies))
	for i, r := range c.Policies {
		field := fmt.Sprintf("policies[%d]", i)
		p, err := netip.ParsePrefix(r.Prefix)
		switch {
		case err != nil:
			bad(field+".prefix", "not an address prefix such as 192.0.2.0/24 or 2001:db8::/32 (got %q)", r.Prefix)
		case p.Addr().Is4In6():
			bad(field+".prefix", "write IPv4 prefixes in IPv4 form, e.g. 192.0.2.0/24 (got %q)", r.Prefix)
		case p != p.Masked():
			bad(field+".prefix", "has host bits set: %q (did you mean %s?)", r.Prefix, p.Masked())
		default:
			if j, dup := seen[p]; dup {
				bad(field+".prefix", "%s is already in policies[%d]", p, j)
			}
			seen[p] = i
		}
		if !validPolicy(r.Policy) {
			bad(field+".policy", "must be opportunistic, require or bypass (got %q)", r.Policy)
		}
	}
	checkList(&errs, "teps", c.TEPs, func(s string) bool {
		for _, t := range tcpcrypt.AllTEPs {
			if t.String() == s {
				return true
			}
		}
		return false
	}, "x25519, x448, p256 or p521")
	checkList(&errs, "aeads", c.AEADs, func(s string) bool {
		_, err := cryptopool.ParseSuite(s)
		return err == nil
	}, "aes128gcm, aes256gcm or chacha20poly1305")
	if c.RekeyBytes != 0 && c.RekeyBytes < MinRekeyBytes {
		bad("rekey_bytes", "must be 0 (off) or at least %d (got %d)", MinRekeyBytes, c.RekeyBytes)
	}
	if d := time.Duration(c.RekeyInterval); d != 0 && d < MinRekeyInterval {
		bad("rekey_interval", "must be 0s (off) or at least %v (got %v)", MinRekeyInterval, d)
	}
	if c.ResumeNonceLen < 0 || c.ResumeNonceLen > tcpcrypt.MaxResumeNonce {
		bad("resume_nonce_len", "must be between 0 and %d (got %d)", tcpcrypt.MaxResumeNonce, c.ResumeNonceLen)
	}
	if c.Caps.Flows < 1 || c.Caps.Flows > MaxCapFlows {
		bad("caps.flows", "must be between 1 and %d (got %d)", MaxCapFlows, c.Caps.Flows)
	}
	for _, b := range []struct {
		field string
		v     uint64
	}{
		{"caps.retransmit_bytes", c.Caps.RetransmitBytes},
		{"caps.reassembly_bytes", c.Caps.ReassemblyBytes},
		{"caps.prekey_queue_bytes", c.Caps.PrekeyQueueBytes},
		{"caps.deliver_bytes", c.Caps.DeliverBytes},
	} {
		if b.v < MinCapBytes || b.v > MaxCapBytes {
			bad(b.field, "must be between %d and %d (got %d)", MinCapBytes, MaxCapBytes, b.v)
		}
	}
	return errors.Join(errs...)
}

func validPolicy(p string) bool {
	return p == PolicyOpportunistic || p == PolicyRequire || p == PolicyBypass
}

// checkList requires a non-empty list of known names without duplicates.
func checkList(errs *[]error, field string, list []string, known func(string) bool, want string) {
	if len(list) == 0 {
		*errs = append(*errs, &FieldError{Field: field, Msg: "must list at least one of " + want})
		return
	}
	seen := make(map[string]bool, len(list))
	for i, s := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !known(s):
			*errs = append(*errs, &FieldError{Field: f, Msg: fmt.Sprintf("must be %s (got %q)", want, s)})
		case seen[s]:
			*errs = append(*errs, &FieldError{Field: f, Msg: fmt.Sprintf("%q is listed twice", s)})
		}
		seen[s] = true
	}
}
