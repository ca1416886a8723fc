// Package config reads and validates the tcpincd configuration file (YAML).
//
// Decoding is strict: an unknown key is an error, so a typo never silently
// falls back to a default. Every validation error names the offending key in
// its YAML spelling (for example "flows.idle_timeout").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole daemon configuration. The zero value is not valid; start
// from Default (Parse and Load do).
type Config struct {
	// Inside and Outside name the two ports of the bump: the enclave side and
	// the untrusted side. Command-line flags override them.
	Inside  string `yaml:"inside"`
	Outside string `yaml:"outside"`

	// Queues is the number of queues used per port: one AF_XDP socket per
	// (port, hardware queue), or with the AF_PACKET backend one socket per
	// queue in a fanout group; and one worker per queue index, owning both
	// ports' queue. AF_XDP needs it at least the ports' receive queues
	// (appliance/backend chooseBackend).
	Queues int `yaml:"queues"`
	// CPUs lists the CPUs the workers are pinned to, the worker of queue q
	// to CPUs[q % len(CPUs)]. Empty: workers are locked to OS threads but
	// not pinned.
	CPUs []int `yaml:"cpus"`

	// Backend is how the workers reach the ports: afxdp (an AF_XDP socket
	// per queue), afpacket (AF_PACKET sockets that move TCP as GRO/GSO
	// super-segments; with several queues, one fanout group per port that
	// gives both directions of a flow to one worker) or auto: afxdp where both
	// ports' drivers offer zero-copy AF_XDP, afpacket otherwise (veth,
	// virtio, most cloud NICs). Either way the XDP classifier keeps the
	// kernel fast path.
	Backend string `yaml:"backend"`

	// XDPMode is how the XDP classifier is attached: auto (native, falling
	// back to generic), native or generic.
	XDPMode string `yaml:"xdp_mode"`
	// BindMode is how AF_XDP sockets bind: auto (zero-copy, falling back to
	// copy), copy or zerocopy.
	BindMode string `yaml:"bind_mode"`

	// Frames is the number of UMEM frames per socket, FrameSize their size
	// (aligned chunks: 2048 or 4096), RingSize the size of each of the four
	// AF_XDP rings, BatchSize the most frames a worker handles per batch.
	Frames    int `yaml:"frames"`
	FrameSize int `yaml:"frame_size"`
	RingSize  int `yaml:"ring_size"`
	BatchSize int `yaml:"batch_size"`

	Flows Flows `yaml:"flows"`

	// FastPath lets the XDP program forward flows that need no user-space
	// work inside the kernel. Off: every frame, non-TCP included, goes
	// through the workers.
	FastPath bool `yaml:"fast_path"`

	// Engine configures the TCP-ENO/tcpcrypt engine behind the workers.
	Engine Engine `yaml:"engine"`

	// LogLevel is debug, info, warn or error. Nothing per connection or
	// per packet is logged at info; debug adds the engine's per-flow
	// lines, rate-limited (engine/loglimit.go).
	LogLevel string `yaml:"log_level"`
	// Admin is where the admin API listens: host:port (an IP literal or
	// localhost) or unix:/path (a socket created mode 0600). Empty
	// disables it. A bind that is neither loopback nor a unix socket needs
	// AdminTokenFile.
	Admin string `yaml:"admin"`
	// AdminTokenFile names a file holding the admin API's bearer token
	// (surrounding white space ignored). Empty: no token.
	AdminTokenFile string `yaml:"admin_token_file"`

	// PinDir is a directory on a BPF file system where the daemon pins
	// the set of tuples whose connections negotiated TCP-ENO, so that a
	// restarted daemon resets exactly those and passes every other
	// connection. Empty keeps the set in memory: after a restart every
	// connection the engine has no record of passes, so an inside host's
	// bytes of a formerly encrypted connection may reach the wire.
	PinDir string `yaml:"pin_dir"`
	// StateDir is a directory on persistent storage where the daemon
	// keeps a copy of that set, since a reboot empties the BPF file
	// system: the first daemon after a boot (or any daemon, without
	// PinDir) loads it. Empty: no copy; after a reboot every connection
	// passes, a formerly encrypted one's bytes too.
	StateDir string `yaml:"state_dir"`
	// StateInterval is how often the copy is written when the set
	// changed (and at a clean stop): connections negotiated within the
	// last interval before a power loss or a crash are not in it.
	StateInterval time.Duration `yaml:"state_interval"`
	// KeyLog names a file the daemon appends each encrypted connection's
	// keys to, one line per key generation (package appliance/keylog): for
	// debugging decryption only, since the file decrypts those
	// connections. Refused unless KeyLogEnabled is true as well.
	KeyLog        string `yaml:"key_log"`
	KeyLogEnabled bool   `yaml:"key_log_enabled"`
}

// Flows bounds the per-worker flow tables.
type Flows struct {
	// Max is the flow-table capacity per worker. The tables steer the
	// kernel fast path only: when one is full its oldest entry is
	// forgotten and that connection keeps its path (the engine bounds
	// encrypted connections: Engine.MaxFlows, Engine.MemoryLimit).
	Max int `yaml:"max"`
	// HandshakeTimeout is how long a flow whose handshake is incomplete,
	// or one seen mid-stream from one side only, is kept without traffic.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// IdleTimeout is how long an established flow is kept without traffic
	// seen by the workers.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// CloseGrace is how long a flow stays (in the table and the fast-path
	// map) after its first FIN or RST, so the closing exchange still passes
	// on the same path.
	CloseGrace time.Duration `yaml:"close_grace"`
}

// Engine is the engine section: what the appliance offers and accepts, and
// the caps on its per-flow state (docs/architecture.md §4). Every worker runs its own
// engine with these settings; the public-key pool and the resumption cache
// are shared.
type Engine struct {
	// Enabled runs the engine. Off, the appliance passes every connection
	// through unencrypted (and puts it on the fast path), except those a
	// previous run encrypted (the set pinned under PinDir, or its copy in
	// StateDir): reset.
	Enabled bool `yaml:"enabled"`
	// TEPs are the key-exchange schemes offered and accepted, most
	// preferred first: x25519 (required by RFC 8548), x448, p256, p521.
	TEPs []string `yaml:"teps"`
	// AEADs are the AEAD suites in preference order: aes128gcm, aes256gcm,
	// chacha20poly1305. Empty: ordered by this CPU's speed.
	AEADs []string `yaml:"aeads"`
	// RekeyBytes starts a rekey after this many bytes sent under one key
	// generation, RekeyInterval after this long; 0 disables either.
	RekeyBytes    int64         `yaml:"rekey_bytes"`
	RekeyInterval time.Duration `yaml:"rekey_interval"`
	// Resumption offers and accepts session resumption (RFC 8548 §3.5);
	// ResumptionCache bounds the cached peers, ResumptionTTL how long an
	// unused one is kept. Off avoids the linkability of resumption.
	// ResumptionNonceLen is the length of the nonces this side sends when
	// it resumes, 0..8 bytes (default 8; TC-17): shorter only where a
	// secret can never be used twice with the same nonce (no VM clones or
	// restored snapshots, TC-18).
	Resumption         bool          `yaml:"resumption"`
	ResumptionCache    int           `yaml:"resumption_cache"`
	ResumptionTTL      time.Duration `yaml:"resumption_ttl"`
	ResumptionNonceLen int           `yaml:"resumption_nonce_len"`
	// MaxFlows caps the flows each worker's engine tracks; beyond it new
	// connections pass through unencrypted (counted).
	MaxFlows int `yaml:"max_flows"`
	// MaxEmbryonic caps the connections each worker's engine holds in
	// their handshake (SYN to key exchange), a part of max_flows (at most
	// max_flows in effect): a new SYN beyond it evicts the oldest
	// handshake, so a SYN flood cannot fill the table.
	MaxEmbryonic int `yaml:"max_embryonic"`
	// MemoryLimit bounds the memory of all workers' flow records and
	// per-flow buffers, in bytes. Above 7/8 of it new connections stay in
	// plain TCP (fallback "memory"; dropped under require); buffers of
	// established connections grow up to it. 0 (the default) is a quarter
	// of the machine's memory, at least 1 GiB and at most 16 GiB
	// (appliance/control: AutoMemoryLimit).
	MemoryLimit int64 `yaml:"memory_limit"`
	// Per-flow buffer caps in bytes: sent but unacknowledged wire bytes,
	// out-of-order wire bytes, host data waiting for keys, plaintext kept
	// for re-delivery to the inside host. The first and the last bound the
	// windows the appliance advertises: a flow carries at most about
	// cap/RTT (4 MiB, the default: 670 Mbit/s at 50 ms).
	RetransmitBytes int `yaml:"retransmit_bytes"`
	ReassemblyBytes int `yaml:"reassembly_bytes"`
	PreKeyBytes     int `yaml:"prekey_bytes"`
	DeliverBytes    int `yaml:"deliver_bytes"`
	// InitRTO is the first retransmission timeout of an Init message,
	// doubled per try, InitTries tries before the connection is reset
	// (8: 102 s, RFC 1122 §4.2.3.5's R2).
	InitRTO   time.Duration `yaml:"init_rto"`
	InitTries int           `yaml:"init_tries"`
	// SYNsWithENO is how many SYNs of an inside host leave with TCP-ENO
	// before a retransmission goes without it and the connection stays
	// plain (RFC 8547 §4.6), so that a path dropping SYNs with unknown
	// options still connects; 0: every SYN keeps it. Not under require.
	SYNsWithENO int `yaml:"syns_with_eno"`
	// HandshakeTimeout drops a connection still negotiating after this
	// long, IdleTimeout an encrypted one idle this long; an inside host
	// silent half this long gets keep-alive probes, and ten unanswered end its
	// connection's record (docs/protocol.md §15).
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	// PlainRetention is how long the record of a connection left in plain
	// TCP is kept after its last segment the engine saw. It bounds only
	// what the flow list shows: a plain connection whose record is gone
	// still passes.
	PlainRetention time.Duration `yaml:"plain_retention"`
	// IP fragments of encrypted connections are reassembled (those of
	// other connections pass): FragmentTimeout discards an incomplete
	// datagram, FragmentDatagrams caps the datagrams each worker's engine
	// tracks, FragmentPerFlow those of one connection under reassembly,
	// FragmentBytes the bytes it holds for them.
	FragmentTimeout   time.Duration `yaml:"fragment_timeout"`
	FragmentDatagrams int           `yaml:"fragment_datagrams"`
	FragmentPerFlow   int           `yaml:"fragment_per_flow"`
	FragmentBytes     int           `yaml:"fragment_bytes"`
	// Policies choose per far-side prefix: opportunistic (offer, fall
	// back to plain TCP), require (never plain TCP: a failed
	// negotiation is reset, a SYN that cannot start one dropped) or bypass (never offer). Longest prefix wins; addresses
	// in no prefix are opportunistic.
	Policies []Policy `yaml:"policies"`
	// KeyWorkers is the number of goroutines doing public-key work off
	// the packet path; 0: one per CPU.
	KeyWorkers int `yaml:"key_workers"`
}

// Policy is one engine.policies entry.
type Policy struct {
	Prefix string `yaml:"prefix"` // CIDR prefix of far-side addresses
	Policy string `yaml:"policy"` // opportunistic, require or bypass
}

// TEP and AEAD names the engine section accepts.
var (
	TEPNames  = []string{"x25519", "x448", "p256", "p521"}
	AEADNames = []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}
)

// Limits of the values Validate accepts.
const (
	MaxQueues    = 64 // XSKMAP entries per port
	MaxCPU       = 1023
	MinFrames    = 64
	MaxFrames    = 1 << 20
	MinRingSize  = 64
	MaxRingSize  = 1 << 16
	MaxBatchSize = 1024
	MaxFlows     = 1 << 24
	ifNameMax    = 15 // IFNAMSIZ - 1
)

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Queues:    1,
		Backend:   "auto",
		XDPMode:   "auto",
		BindMode:  "auto",
		Frames:    4096,
		FrameSize: 4096,
		RingSize:  2048,
		BatchSize: 64,
		Flows: Flows{
			Max:              65536,
			HandshakeTimeout: 30 * time.Second,
			IdleTimeout:      5 * time.Minute,
			CloseGrace:       10 * time.Second,
		},
		FastPath: true,
		Engine: Engine{
			Enabled:            true,
			TEPs:               []string{"x25519", "x448", "p256"},
			AEADs:              []string{}, // ordered by this CPU's speed
			Policies:           []Policy{},
			RekeyBytes:         1 << 30,
			RekeyInterval:      time.Hour,
			Resumption:         true,
			ResumptionCache:    4096,
			ResumptionTTL:      time.Hour,
			ResumptionNonceLen: 8,
			MaxFlows:           65536,
			MaxEmbryonic:       16384,
			MemoryLimit:        0,       // a quarter of the machine's memory
			RetransmitBytes:    4 << 20, // engine.Default*Bytes: docs there
			ReassemblyBytes:    4 << 20,
			PreKeyBytes:        64 << 10,
			DeliverBytes:       4 << 20,
			InitRTO:            200 * time.Millisecond,
			InitTries:          8,
			SYNsWithENO:        3,
			HandshakeTimeout:   30 * time.Second,
			IdleTimeout:        2*time.Hour + 15*time.Minute,
			PlainRetention:     5 * time.Minute,
			// engine.DefaultFrag*.
			FragmentTimeout:   5 * time.Second,
			FragmentDatagrams: 4096,
			FragmentPerFlow:   16,
			FragmentBytes:     4 << 20,
		},
		LogLevel: "info",
		Admin:    "127.0.0.1:9470",
		PinDir:   "/sys/fs/bpf/tcpincd",
		StateDir: "/var/lib/tcpincd",
		// A few seconds: what a power loss costs, against a write of
		// the whole set each time.
		StateInterval: 5 * time.Second,
	}
}

// Parse decodes a YAML document over Default. Unknown keys are an error. It
// does not validate: callers apply command-line overrides first, then call
// Validate.
func Parse(data []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // empty file: all defaults
		}
		return Config{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document")
	}
	return c, nil
}

// Load reads and parses the file at path (see Parse).
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// FieldError is a validation error for one key.
type FieldError struct {
	Field string // YAML key path, e.g. "flows.max" or "cpus[2]"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks every key and returns all problems found, joined; each is a
// *FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	if err := checkIfName(c.Inside); err != "" {
		bad("inside", "%s", err)
	}
	if err := checkIfName(c.Outside); err != "" {
		bad("outside", "%s", err)
	}
	if c.Inside != "" && c.Inside == c.Outside {
		bad("outside", "must differ from inside (both are %q)", c.Inside)
	}
	if c.Queues < 1 || c.Queues > MaxQueues {
		bad("queues", "must be between 1 and %d (got %d)", MaxQueues, c.Queues)
	}
	for i, cpu := range c.CPUs {
		if cpu < 0 || cpu > MaxCPU {
			bad(fmt.Sprintf("cpus[%d]", i), "must be between 0 and %d (got %d)", MaxCPU, cpu)
		}
	}
	switch c.Backend {
	case "auto", "afxdp", "afpacket":
	default:
		bad("backend", "must be auto, afxdp or afpacket (got %q)", c.Backend)
	}
	switch c.XDPMode {
	case "auto", "native", "generic":
	default:
		bad("xdp_mode", "must be auto, native or generic (got %q)", c.XDPMode)
	}
	switch c.BindMode {
	case "auto", "copy", "zerocopy":
	default:
		bad("bind_mode", "must be auto, copy or zerocopy (got %q)", c.BindMode)
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		bad("frame_size", "must be 2048 or 4096, the aligned UMEM chunk sizes (got %d)", c.FrameSize)
	}
	if c.RingSize < MinRingSize || c.RingSize > MaxRingSize || !powerOfTwo(c.RingSize) {
		bad("ring_size", "must be a power of two between %d and %d (got %d)", MinRingSize, MaxRingSize, c.RingSize)
	}
	if c.Frames < MinFrames || c.Frames > MaxFrames || !powerOfTwo(c.Frames) {
		bad("frames", "must be a power of two between %d and %d (got %d)", MinFrames, MaxFrames, c.Frames)
	} else if powerOfTwo(c.RingSize) && c.Frames < 2*c.RingSize {
		// Half the frames feed the fill ring, half are for TX; fewer than
		// one ring's worth each leaves the rings starved.
		bad("frames", "must be at least 2 x ring_size = %d (got %d)", 2*c.RingSize, c.Frames)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		bad("batch_size", "must be between 1 and %d (got %d)", MaxBatchSize, c.BatchSize)
	} else if c.RingSize > 0 && c.BatchSize > c.RingSize {
		bad("batch_size", "must not exceed ring_size %d (got %d)", c.RingSize, c.BatchSize)
	}
	if c.Flows.Max < 1 || c.Flows.Max > MaxFlows {
		bad("flows.max", "must be between 1 and %d (got %d)", MaxFlows, c.Flows.Max)
	}
	if c.Flows.HandshakeTimeout <= 0 {
		bad("flows.handshake_timeout", "must be positive (got %v)", c.Flows.HandshakeTimeout)
	}
	if c.Flows.IdleTimeout <= 0 {
		bad("flows.idle_timeout", "must be positive (got %v)", c.Flows.IdleTimeout)
	}
	if c.Flows.CloseGrace < 0 {
		bad("flows.close_grace", "must not be negative (got %v)", c.Flows.CloseGrace)
	}
	c.Engine.validate(bad)
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error (got %q)", c.LogLevel)
	}
	if c.Admin != "" {
		if err := checkAdmin(c.Admin); err != "" {
			bad("admin", "%s (got %q)", err, c.Admin)
		}
	}
	if strings.ContainsRune(c.AdminTokenFile, 0) {
		bad("admin_token_file", "must be a file name (got %q)", c.AdminTokenFile)
	}
	if c.PinDir != "" && (!strings.HasPrefix(c.PinDir, "/") || strings.ContainsRune(c.PinDir, 0)) {
		bad("pin_dir", "must be an absolute directory path or empty (got %q)", c.PinDir)
	}
	if c.StateDir != "" && (!strings.HasPrefix(c.StateDir, "/") || strings.ContainsRune(c.StateDir, 0)) {
		bad("state_dir", "must be an absolute directory path or empty (got %q)", c.StateDir)
	}
	if c.StateInterval < time.Second || c.StateInterval > time.Hour {
		bad("state_interval", "must be between 1s and 1h (got %v)", c.StateInterval)
	}
	switch {
	case c.KeyLog != "" && !c.KeyLogEnabled:
		bad("key_log", "refused: a key log decrypts the traffic; set key_log_enabled: true (--key-log-enabled) as well to write one (got %q)", c.KeyLog)
	case c.KeyLog == "" && c.KeyLogEnabled:
		bad("key_log_enabled", "is true but key_log names no file")
	case strings.ContainsRune(c.KeyLog, 0):
		bad("key_log", "must be a file name (got %q)", c.KeyLog)
	}
	return errors.Join(errs...)
}

// checkIfName applies the kernel's rules for interface names
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or space.
func checkIfName(name string) string {
	switch {
	case name == "":
		return "required (an interface name)"
	case len(name) > ifNameMax:
		return fmt.Sprintf("interface name %q is longer than %d bytes", name, ifNameMax)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return fmt.Sprintf("interface name %q contains '/', ':' or white space", name)
	}
	return ""
}

// checkAdmin accepts unix:/path, or host:port where host is an IP literal
// or "localhost" and port is 1..65535: the admin API listens on an explicit
// local address, never on a name that needs DNS.
func checkAdmin(addr string) string {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" || strings.ContainsRune(path, 0) {
			return "unix: needs a socket path, as in unix:/run/tcpincd/admin.sock"
		}
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port or unix:/path"
	}
	if host != "localhost" && net.ParseIP(host) == nil {
		return "host must be an IP address or localhost"
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "port must be between 1 and 65535"
	}
	return ""
}

func powerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }

// Engine limits.
const (
	MinRetransmitBytes = 8192 // a full 65538-byte frame split in 16 wire segments, twice
	MinReassemblyBytes = 4096
	MinDeliverBytes    = 4096
	MaxBufferBytes     = 1 << 30
	MinMemoryLimit     = 1 << 20
	MaxMemoryLimit     = 1 << 40
	MaxInitTries       = 32
	MaxSYNsWithENO     = 16
)

func (e *Engine) validate(bad func(field, format string, args ...any)) {
	if len(e.TEPs) == 0 {
		bad("engine.teps", "must list at least one of %s", strings.Join(TEPNames, ", "))
	}
	checkNames("engine.teps", e.TEPs, TEPNames, bad)
	checkNames("engine.aeads", e.AEADs, AEADNames, bad)
	if e.RekeyBytes < 0 {
		bad("engine.rekey_bytes", "must not be negative (0 disables; got %d)", e.RekeyBytes)
	}
	if e.RekeyInterval < 0 {
		bad("engine.rekey_interval", "must not be negative (0 disables; got %v)", e.RekeyInterval)
	}
	if e.ResumptionCache < 1 || e.ResumptionCache > MaxFlows {
		bad("engine.resumption_cache", "must be between 1 and %d (got %d)", MaxFlows, e.ResumptionCache)
	}
	if e.ResumptionTTL <= 0 {
		bad("engine.resumption_ttl", "must be positive (got %v)", e.ResumptionTTL)
	}
	if e.ResumptionNonceLen < 0 || e.ResumptionNonceLen > 8 {
		bad("engine.resumption_nonce_len", "must be between 0 and 8 bytes (got %d)", e.ResumptionNonceLen)
	}
	if e.MaxFlows < 1 || e.MaxFlows > MaxFlows {
		bad("engine.max_flows", "must be between 1 and %d (got %d)", MaxFlows, e.MaxFlows)
	}
	if e.MaxEmbryonic < 1 || e.MaxEmbryonic > MaxFlows {
		bad("engine.max_embryonic", "must be between 1 and %d (got %d)", MaxFlows, e.MaxEmbryonic)
	}
	if e.MemoryLimit != 0 && (e.MemoryLimit < MinMemoryLimit || e.MemoryLimit > MaxMemoryLimit) {
		bad("engine.memory_limit", "must be 0 (automatic) or between %d and %d (got %d)", MinMemoryLimit, MaxMemoryLimit, e.MemoryLimit)
	}
	for _, b := range []struct {
		field string
		v     int
		min   int
	}{
		{"engine.retransmit_bytes", e.RetransmitBytes, MinRetransmitBytes},
		{"engine.reassembly_bytes", e.ReassemblyBytes, MinReassemblyBytes},
		{"engine.prekey_bytes", e.PreKeyBytes, 0},
		{"engine.deliver_bytes", e.DeliverBytes, MinDeliverBytes},
	} {
		if b.v < b.min || b.v > MaxBufferBytes {
			bad(b.field, "must be between %d and %d (got %d)", b.min, MaxBufferBytes, b.v)
		}
	}
	if e.InitRTO <= 0 {
		bad("engine.init_rto", "must be positive (got %v)", e.InitRTO)
	}
	if e.FragmentTimeout <= 0 {
		bad("engine.fragment_timeout", "must be positive (got %v)", e.FragmentTimeout)
	}
	for _, b := range []struct {
		field    string
		v, lo, h int
	}{
		{"engine.fragment_datagrams", e.FragmentDatagrams, 1, MaxFlows},
		{"engine.fragment_per_flow", e.FragmentPerFlow, 1, MaxFlows},
		{"engine.fragment_bytes", e.FragmentBytes, 65536 + 4096, MaxBufferBytes},
	} {
		if b.v < b.lo || b.v > b.h {
			bad(b.field, "must be between %d and %d (got %d)", b.lo, b.h, b.v)
		}
	}
	if e.InitTries < 1 || e.InitTries > MaxInitTries {
		bad("engine.init_tries", "must be between 1 and %d (got %d)", MaxInitTries, e.InitTries)
	}
	if e.SYNsWithENO < 0 || e.SYNsWithENO > MaxSYNsWithENO {
		bad("engine.syns_with_eno", "must be between 0 (every SYN) and %d (got %d)", MaxSYNsWithENO, e.SYNsWithENO)
	}
	if e.HandshakeTimeout <= 0 {
		bad("engine.handshake_timeout", "must be positive (got %v)", e.HandshakeTimeout)
	}
	if e.IdleTimeout <= 0 {
		bad("engine.idle_timeout", "must be positive (got %v)", e.IdleTimeout)
	}
	if e.PlainRetention <= 0 {
		bad("engine.plain_retention", "must be positive (got %v)", e.PlainRetention)
	}
	for i, p := range e.Policies {
		field := fmt.Sprintf("engine.policies[%d]", i)
		if _, err := netip.ParsePrefix(p.Prefix); err != nil {
			bad(field+".prefix", "must be a CIDR prefix such as 10.1.0.0/16 (got %q)", p.Prefix)
		}
		switch p.Policy {
		case "opportunistic", "require", "bypass":
		default:
			bad(field+".policy", "must be opportunistic, require or bypass (got %q)", p.Policy)
		}
	}
	if e.KeyWorkers < 0 || e.KeyWorkers > MaxCPU+1 {
		bad("engine.key_workers", "must be between 0 and %d (got %d)", MaxCPU+1, e.KeyWorkers)
	}
}

// checkNames requires every entry of list to be one of known, once.
func checkNames(field string, list, known []string, bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for i, n := range list {
		switch {
		case !slices.Contains(known, n):
			bad(fmt.Sprintf("%s[%d]", field, i), "must be one of %s (got %q)", strings.Join(known, ", "), n)
		case seen[n]:
			bad(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", n)
		}
		seen[n] = true
	}
}
