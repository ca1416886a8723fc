package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Policy says what the engine does for connections to a far-side prefix.
type Policy uint8

const (
	// Opportunistic offers TCP-ENO and falls back to plain TCP when the far
	// side does not negotiate (the default).
	Opportunistic Policy = iota
	// Require offers TCP-ENO and resets the connection (both ways) when the
	// far side does not negotiate.
	Require
	// Bypass leaves the connection alone: no TCP-ENO, plain TCP.
	Bypass
)

func (p Policy) String() string {
	switch p {
	case Opportunistic:
		return "opportunistic"
	case Require:
		return "require"
	case Bypass:
		return "bypass"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// PolicyRule applies Policy to far-side addresses inside Prefix. The longest
// matching prefix wins.
type PolicyRule struct {
	Prefix netip.Prefix
	Policy Policy
}

// Config is one engine's configuration. Zero values take the defaults noted.
type Config struct {
	// TEPs to offer and accept, most preferred first (default X25519, X448,
	// P-256; P-521 is off unless listed).
	TEPs []tcpcrypt.TEP
	// AEADs in preference order (default cryptopool.DetectPreference).
	AEADs []cryptopool.Suite
	// RekeyBytes and RekeyAfter start a rekey after this many bytes sent
	// under one generation or this long since the last one (defaults 1 GiB
	// and 1 h; negative disables).
	RekeyBytes int64
	RekeyAfter time.Duration
	// NoResumption neither offers, accepts nor caches resumption secrets
	// (fingerprint avoidance, TC-40).
	NoResumption bool
	// MaxFlows caps the tracked flows (default 65536); a new flow beyond it
	// is passed through in plain TCP and counted.
	MaxFlows int
	// MaxEmbryonic caps the flows in their handshake (SYN-SENT to key
	// exchange), a part of MaxFlows (default 16384, at most MaxFlows/2;
	// a value above MaxFlows means MaxFlows): a new SYN beyond it evicts
	// the oldest (flood.go).
	MaxEmbryonic int
	// MemoryLimit bounds the memory of all flows' records and buffers in
	// bytes (default 1 GiB), shared by the engines of one Deps.Memory: new
	// flows are admitted below 7/8 of it, buffers grow up to it.
	MemoryLimit int64
	// RetransmitBytes caps each flow's store of sent, unacknowledged wire
	// bytes (default 4 MiB); ReassemblyBytes its out-of-order receive
	// buffer (default 4 MiB); PreKeyBytes its queue of host data waiting
	// for keys (default 64 KiB). DeliverBytes caps the plaintext kept for
	// re-delivery to the inside host (default 4 MiB; a frame larger than
	// the cap is kept alone, consume). Each starts at 2 KiB
	// and grows only as a flow needs it.
	//
	// The retransmit store and the delivery ring bound the windows the
	// appliance advertises, so a flow carries at most about cap/RTT: 4 MiB
	// is Linux's own largest send buffer (tcp_wmem), 670 Mbit/s at 50 ms.
	// A smaller cap throttles every long or fast path through the box.
	RetransmitBytes, ReassemblyBytes, PreKeyBytes, DeliverBytes int
	// InitRTO is the first retransmission timeout of the Init message
	// (default 200 ms), doubled per try, at most InitTries tries (default 8:
	// the connection is reset 102 s after the first Init, the least time
	// RFC 1122 §4.2.3.5 (R2) gives a host's TCP before it gives up on data,
	// so that a far appliance paused that long, holding every copy in its
	// ring, still answers; 6 when the far side repeated its SYN-ACK, a path
	// that drops our segments, enopath.go).
	InitRTO   time.Duration
	InitTries int
	// SYNsWithENO is how many SYNs of an inside host (the first and its
	// retransmissions) leave with the appliance's TCP-ENO option before
	// the next goes without it and the connection stays in plain TCP.
	// RFC 8547 §4.6 lets a host drop ENO from a retransmitted SYN, so
	// that a path that drops SYNs carrying options it does not know still
	// connects, as plain TCP would. Default 3: the fourth SYN goes plain,
	// 3 s after the first with Linux 6.x's linear SYN timeouts, 7 s with
	// exponential ones; a lost SYN or SYN-ACK counts too, so fewer would
	// leave connections over a lossy path plain too often. Two more
	// to a far address that completed an encrypted handshake within the
	// hour (its path carries the option: lost SYNs met loss or a
	// blackout). Negative: every SYN keeps the option. Never under the
	// require policy.
	SYNsWithENO int
	// HandshakeTimeout drops a flow still negotiating after this long
	// (default 30 s); IdleTimeout an established one idle this long
	// (default 2 h 15 min: above the 2 h after which Linux, Windows and
	// macOS send their first keep-alive probe, so a connection its hosts
	// keep alive that way is never forgotten, also once half-closed, when
	// no rekeying of ours refreshes it). An inside host silent half this
	// long gets keep-alive probes, and ten unanswered end the record
	// (hostprobe.go).
	HandshakeTimeout, IdleTimeout time.Duration
	// PlainRetention is how long the record of a connection left in plain
	// TCP is kept after the engine last saw one of its segments (default
	// 5 min; the fast path hides the rest). It only bounds what the admin
	// API lists: once the record is gone the connection's segments still
	// pass, as every tuple outside the NegotiatedSet does.
	PlainRetention time.Duration
	// Policies per far-side prefix; addresses matching none are
	// opportunistic.
	Policies []PolicyRule
	// Fragments bounds IP reassembly (frag.go).
	Fragments FragConfig
}

// Defaults.
const (
	DefaultRekeyBytes       = 1 << 30
	DefaultRekeyAfter       = time.Hour
	DefaultMaxFlows         = 65536
	DefaultMaxEmbryonic     = 16384
	DefaultMemoryLimit      = 1 << 30
	DefaultRetransmitBytes  = 4 << 20
	DefaultReassemblyBytes  = 4 << 20
	DefaultPreKeyBytes      = 64 << 10
	DefaultDeliverBytes     = 4 << 20
	DefaultInitRTO          = 200 * time.Millisecond
	DefaultInitTries        = 8
	DefaultSYNsWithENO      = 3
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultIdleTimeout      = 2*time.Hour + 15*time.Minute
	maxDuration             = 100 * 365 * 24 * time.Hour
	DefaultPlainRetention   = 5 * time.Minute
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("engine: invalid configuration")

func (c *Config) withDefaults() (Config, error) {
	o := *c
	if len(o.TEPs) == 0 {
		o.TEPs = []tcpcrypt.TEP{tcpcrypt.TEPX25519, tcpcrypt.TEPX448, tcpcrypt.TEPP256}
	}
	for _, t := range o.TEPs {
		if !t.Valid() {
			return o, fmt.Errorf("%w: TEP %#x", ErrConfig, byte(t))
		}
	}
	if len(o.AEADs) == 0 {
		p, err := cryptopool.DetectPreference(nil)
		if err != nil {
			return o, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		o.AEADs = p.Order
	}
	if err := cryptopool.ValidateOrder(o.AEADs); err != nil {
		return o, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.RekeyBytes == 0 {
		o.RekeyBytes = DefaultRekeyBytes
	}
	defd(&o.RekeyAfter, DefaultRekeyAfter)
	def(&o.MaxFlows, DefaultMaxFlows)
	if o.MaxEmbryonic == 0 {
		o.MaxEmbryonic = max(min(DefaultMaxEmbryonic, o.MaxFlows/2), 1)
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	// A handshake bound above the table's only means the table's.
	o.MaxEmbryonic = min(o.MaxEmbryonic, o.MaxFlows)
	if o.MaxFlows < 1 || o.MaxEmbryonic < 1 {
		return o, fmt.Errorf("%w: flow caps below 1", ErrConfig)
	}
	if o.MemoryLimit < 1<<20 {
		return o, fmt.Errorf("%w: memory limit under 1 MiB", ErrConfig)
	}
	def(&o.RetransmitBytes, DefaultRetransmitBytes)
	def(&o.ReassemblyBytes, DefaultReassemblyBytes)
	def(&o.PreKeyBytes, DefaultPreKeyBytes)
	def(&o.DeliverBytes, DefaultDeliverBytes)
	defd(&o.InitRTO, DefaultInitRTO)
	def(&o.InitTries, DefaultInitTries)
	def(&o.SYNsWithENO, DefaultSYNsWithENO)
	defd(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	defd(&o.IdleTimeout, DefaultIdleTimeout)
	defd(&o.PlainRetention, DefaultPlainRetention)
	o.Fragments.defaults()
	// "Never" in practice: a larger value overflowed the deadlines summed
	// from it (a probe went at every sweep, a closed record went at once,
	// the Init was resent at every sweep).
	for _, d := range []*time.Duration{&o.InitRTO, &o.HandshakeTimeout, &o.IdleTimeout, &o.PlainRetention, &o.RekeyAfter, &o.Fragments.Timeout} {
		*d = min(*d, maxDuration)
	}
	// A frame must fit the retransmit store whole, and a wire segment the
	// reassembly buffer.
	if o.RetransmitBytes < 2*tcpcrypt.MaxFrameLen/16 || o.ReassemblyBytes < 4096 || o.DeliverBytes < 4096 || o.PreKeyBytes < 0 {
		return o, fmt.Errorf("%w: buffer caps too small", ErrConfig)
	}
	for _, r := range o.Policies {
		if !r.Prefix.IsValid() || r.Policy > Bypass {
			return o, fmt.Errorf("%w: policy rule %v %v", ErrConfig, r.Prefix, r.Policy)
		}
	}
	return o, nil
}

// policyFor returns the policy of the longest prefix containing far.
func (c *Config) policyFor(far netip.Addr) Policy {
	best, bits := Opportunistic, -1
	for _, r := range c.Policies {
		if r.Prefix.Bits() > bits && r.Prefix.Contains(far.Unmap()) {
			best, bits = r.Policy, r.Prefix.Bits()
		}
	}
	return best
}
