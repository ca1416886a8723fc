package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Default()
	c.Inside, c.Outside = "in", "out"
	return c
}

func TestDefaultIsValidOnceInterfacesAreNamed(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default with interfaces: %v", err)
	}
}

func TestParseFull(t *testing.T) {
	doc := `
inside: eth1
outside: eth2
queues: 2
cpus: [0, 1]
xdp_mode: generic
bind_mode: copy
frames: 8192
frame_size: 2048
ring_size: 1024
batch_size: 32
flows:
  max: 1000
  handshake_timeout: 5s
  idle_timeout: 2m
  close_grace: 0s
fast_path: false
log_level: debug
admin: "[::1]:8080"
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Inside: "eth1", Outside: "eth2", Queues: 2, CPUs: []int{0, 1},
		XDPMode: "generic", BindMode: "copy", Frames: 8192, FrameSize: 2048,
		RingSize: 1024, BatchSize: 32,
		Flows:    Flows{Max: 1000, HandshakeTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		FastPath: false, LogLevel: "debug", Admin: "[::1]:8080",
	}
	if c.Inside != want.Inside || c.Outside != want.Outside || c.Queues != want.Queues ||
		len(c.CPUs) != 2 || c.CPUs[0] != 0 || c.CPUs[1] != 1 ||
		c.XDPMode != want.XDPMode || c.BindMode != want.BindMode || c.Frames != want.Frames ||
		c.FrameSize != want.FrameSize || c.RingSize != want.RingSize || c.BatchSize != want.BatchSize ||
		c.Flows != want.Flows || c.FastPath != want.FastPath || c.LogLevel != want.LogLevel || c.Admin != want.Admin {
		t.Fatalf("Parse:\n got %+v\nwant %+v", c, want)
	}
}

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	c, err := Parse([]byte("queues: 3\nflows:\n  max: 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.Queues != 3 || c.Flows.Max != 10 {
		t.Fatalf("set keys lost: %+v", c)
	}
	if c.Flows.IdleTimeout != d.Flows.IdleTimeout || c.RingSize != d.RingSize || !c.FastPath {
		t.Fatalf("defaults lost: %+v", c)
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RingSize != Default().RingSize {
		t.Fatalf("empty document: %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top-level key", "inside: a\nfastpath: true\n", "fastpath"},
		{"unknown nested key", "flows:\n  maximum: 3\n", "maximum"},
		{"wrong type", "queues: many\n", "many"},
		{"bad duration", "flows:\n  idle_timeout: soon\n", "soon"},
		{"two documents", "queues: 1\n---\nqueues: 2\n", "more than one YAML document"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tc.doc, err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tcpincd.yaml")
	if err := os.WriteFile(p, []byte("inside: a\noutside: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Inside != "a" || c.Outside != "b" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load of bad file: %v, want error naming the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of missing file: %v", err)
	}
}

// TestValidateErrors has one case per validation rule: each must fail with a
// FieldError naming exactly the key at fault.
func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"inside missing", func(c *Config) { c.Inside = "" }, "inside"},
		{"outside missing", func(c *Config) { c.Outside = "" }, "outside"},
		{"inside too long", func(c *Config) { c.Inside = "abcdefghijklmnop" }, "inside"},
		{"inside dot", func(c *Config) { c.Inside = "." }, "inside"},
		{"outside dotdot", func(c *Config) { c.Outside = ".." }, "outside"},
		{"inside slash", func(c *Config) { c.Inside = "a/b" }, "inside"},
		{"outside colon", func(c *Config) { c.Outside = "eth0:1" }, "outside"},
		{"inside space", func(c *Config) { c.Inside = "a b" }, "inside"},
		{"same interface", func(c *Config) { c.Outside = c.Inside }, "outside"},
		{"queues zero", func(c *Config) { c.Queues = 0 }, "queues"},
		{"queues too many", func(c *Config) { c.Queues = MaxQueues + 1 }, "queues"},
		{"cpu negative", func(c *Config) { c.CPUs = []int{0, -1} }, "cpus[1]"},
		{"cpu too large", func(c *Config) { c.CPUs = []int{MaxCPU + 1} }, "cpus[0]"},
		{"backend", func(c *Config) { c.Backend = "dpdk" }, "backend"},
		{"xdp mode", func(c *Config) { c.XDPMode = "offload" }, "xdp_mode"},
		{"bind mode", func(c *Config) { c.BindMode = "zero-copy" }, "bind_mode"},
		{"frame size", func(c *Config) { c.FrameSize = 8192 }, "frame_size"},
		{"ring size not power of two", func(c *Config) { c.RingSize = 1000 }, "ring_size"},
		{"ring size too small", func(c *Config) { c.RingSize = 32; c.BatchSize = 16 }, "ring_size"},
		{"ring size too large", func(c *Config) { c.RingSize = MaxRingSize * 2; c.Frames = MaxFrames }, "ring_size"},
		{"frames not power of two", func(c *Config) { c.Frames = 5000 }, "frames"},
		{"frames too few", func(c *Config) { c.Frames = 32 }, "frames"},
		{"frames too many", func(c *Config) { c.Frames = MaxFrames * 2 }, "frames"},
		{"frames below two rings", func(c *Config) { c.Frames = 2048; c.RingSize = 2048 }, "frames"},
		{"batch zero", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"batch too large", func(c *Config) { c.BatchSize = MaxBatchSize + 1 }, "batch_size"},
		{"batch above ring", func(c *Config) { c.RingSize = 64; c.Frames = 128; c.BatchSize = 128 }, "batch_size"},
		{"flows max zero", func(c *Config) { c.Flows.Max = 0 }, "flows.max"},
		{"flows max too large", func(c *Config) { c.Flows.Max = MaxFlows + 1 }, "flows.max"},
		{"handshake timeout", func(c *Config) { c.Flows.HandshakeTimeout = 0 }, "flows.handshake_timeout"},
		{"idle timeout", func(c *Config) { c.Flows.IdleTimeout = -time.Second }, "flows.idle_timeout"},
		{"close grace", func(c *Config) { c.Flows.CloseGrace = -time.Second }, "flows.close_grace"},
		{"engine no teps", func(c *Config) { c.Engine.TEPs = nil }, "engine.teps"},
		{"engine unknown tep", func(c *Config) { c.Engine.TEPs = []string{"x25519", "rsa"} }, "engine.teps[1]"},
		{"engine tep twice", func(c *Config) { c.Engine.TEPs = []string{"x448", "x448"} }, "engine.teps[1]"},
		{"engine unknown aead", func(c *Config) { c.Engine.AEADs = []string{"aes-gcm"} }, "engine.aeads[0]"},
		{"engine rekey bytes", func(c *Config) { c.Engine.RekeyBytes = -1 }, "engine.rekey_bytes"},
		{"engine rekey interval", func(c *Config) { c.Engine.RekeyInterval = -time.Second }, "engine.rekey_interval"},
		{"engine resumption cache", func(c *Config) { c.Engine.ResumptionCache = 0 }, "engine.resumption_cache"},
		{"engine resumption ttl", func(c *Config) { c.Engine.ResumptionTTL = 0 }, "engine.resumption_ttl"},
		{"engine resumption nonce len", func(c *Config) { c.Engine.ResumptionNonceLen = 9 }, "engine.resumption_nonce_len"},
		{"engine max flows", func(c *Config) { c.Engine.MaxFlows = 0 }, "engine.max_flows"},
		{"engine retransmit bytes", func(c *Config) { c.Engine.RetransmitBytes = 4096 }, "engine.retransmit_bytes"},
		{"engine reassembly bytes", func(c *Config) { c.Engine.ReassemblyBytes = MaxBufferBytes + 1 }, "engine.reassembly_bytes"},
		{"engine prekey bytes", func(c *Config) { c.Engine.PreKeyBytes = -1 }, "engine.prekey_bytes"},
		{"engine deliver bytes", func(c *Config) { c.Engine.DeliverBytes = 100 }, "engine.deliver_bytes"},
		{"engine init rto", func(c *Config) { c.Engine.InitRTO = 0 }, "engine.init_rto"},
		{"engine fragment timeout", func(c *Config) { c.Engine.FragmentTimeout = 0 }, "engine.fragment_timeout"},
		{"engine fragment datagrams", func(c *Config) { c.Engine.FragmentDatagrams = 0 }, "engine.fragment_datagrams"},
		{"engine fragment per flow", func(c *Config) { c.Engine.FragmentPerFlow = -1 }, "engine.fragment_per_flow"},
		{"engine fragment bytes", func(c *Config) { c.Engine.FragmentBytes = 1000 }, "engine.fragment_bytes"},
		{"engine init tries", func(c *Config) { c.Engine.InitTries = 0 }, "engine.init_tries"},
		{"engine syns with eno", func(c *Config) { c.Engine.SYNsWithENO = -1 }, "engine.syns_with_eno"},
		{"engine handshake timeout", func(c *Config) { c.Engine.HandshakeTimeout = 0 }, "engine.handshake_timeout"},
		{"engine idle timeout", func(c *Config) { c.Engine.IdleTimeout = -1 }, "engine.idle_timeout"},
		{"engine policy prefix", func(c *Config) { c.Engine.Policies = []Policy{{Prefix: "10.0.0.0", Policy: "require"}} }, "engine.policies[0].prefix"},
		{"engine policy name", func(c *Config) { c.Engine.Policies = []Policy{{Prefix: "10.0.0.0/8", Policy: "always"}} }, "engine.policies[0].policy"},
		{"engine key workers", func(c *Config) { c.Engine.KeyWorkers = -1 }, "engine.key_workers"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"admin no port", func(c *Config) { c.Admin = "127.0.0.1" }, "admin"},
		{"admin host name", func(c *Config) { c.Admin = "example.com:80" }, "admin"},
		{"admin empty host", func(c *Config) { c.Admin = ":9470" }, "admin"},
		{"admin port zero", func(c *Config) { c.Admin = "127.0.0.1:0" }, "admin"},
		{"admin port range", func(c *Config) { c.Admin = "127.0.0.1:70000" }, "admin"},
		{"admin port name", func(c *Config) { c.Admin = "127.0.0.1:http" }, "admin"},
		{"admin unix without path", func(c *Config) { c.Admin = "unix:" }, "admin"},
		{"admin token file NUL", func(c *Config) { c.AdminTokenFile = "a\x00b" }, "admin_token_file"},
		{"state dir relative", func(c *Config) { c.StateDir = "var/lib/tcpincd" }, "state_dir"},
		{"state interval", func(c *Config) { c.StateInterval = 0 }, "state_interval"},
		{"state interval long", func(c *Config) { c.StateInterval = 2 * time.Hour }, "state_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field {
				t.Fatalf("Validate = %v, want the first error on field %q", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Fatalf("message %q does not start with the field name", err)
			}
		})
	}
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"admin disabled", func(c *Config) { c.Admin = "" }},
		{"admin localhost", func(c *Config) { c.Admin = "localhost:1" }},
		{"admin ipv6", func(c *Config) { c.Admin = "[::1]:65535" }},
		{"admin unix socket", func(c *Config) { c.Admin = "unix:/run/tcpincd/admin.sock" }},
		{"admin token file", func(c *Config) { c.Admin, c.AdminTokenFile = "192.0.2.1:9470", "/etc/tcpincd/token" }},
		{"no cpus", func(c *Config) { c.CPUs = nil }},
		{"repeated cpus", func(c *Config) { c.CPUs = []int{1, 1} }},
		{"zero close grace", func(c *Config) { c.Flows.CloseGrace = 0 }},
		{"no state dir", func(c *Config) { c.StateDir = "" }},
		{"15-byte name", func(c *Config) { c.Inside = "abcdefghijklmno" }},
		{"batch equals ring", func(c *Config) { c.RingSize = 64; c.Frames = 128; c.BatchSize = 64 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	c := valid()
	c.Queues = 0
	c.LogLevel = "loud"
	err := c.Validate()
	for _, f := range []string{"queues: ", "log_level: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("Validate = %v, want it to mention %q", err, f)
		}
	}
}

// FuzzParse: no input makes Parse or Validate panic, and a document Parse
// accepts decodes the same way twice.
func FuzzParse(f *testing.F) {
	f.Add([]byte("inside: a\noutside: b\n"))
	f.Add([]byte("cpus: [0, 1]\nflows:\n  idle_timeout: 1m\n"))
	f.Add([]byte("admin: \"[::1]:80\"\nqueues: 2\n"))
	f.Add([]byte("- x\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			return
		}
		_ = c.Validate()
		c2, err := Parse(doc)
		if err != nil || c2.Inside != c.Inside || c2.Flows != c.Flows || len(c2.CPUs) != len(c.CPUs) {
			t.Fatalf("second Parse differs: %+v / %+v, %v", c, c2, err)
		}
	})
}

// TestParseEngine: the engine section decodes with its YAML names, keeps
// defaults for keys it leaves out, and rejects unknown keys.
func TestParseEngine(t *testing.T) {
	doc := `
inside: a
outside: b
engine:
  enabled: false
  teps: [x448, x25519]
  aeads: [chacha20poly1305, aes256gcm]
  rekey_bytes: 0
  resumption: false
  policies:
    - prefix: 10.9.0.0/16
      policy: require
    - prefix: fd00::/8
      policy: bypass
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := c.Engine
	if e.Enabled || e.Resumption || e.RekeyBytes != 0 || strings.Join(e.TEPs, ",") != "x448,x25519" ||
		strings.Join(e.AEADs, ",") != "chacha20poly1305,aes256gcm" || len(e.Policies) != 2 ||
		e.Policies[1] != (Policy{Prefix: "fd00::/8", Policy: "bypass"}) {
		t.Fatalf("engine section: %+v", e)
	}
	if e.InitRTO != Default().Engine.InitRTO || e.MaxFlows != Default().Engine.MaxFlows {
		t.Fatalf("defaults lost: %+v", e)
	}
	if _, err := Parse([]byte("engine:\n  rekey_byte: 5\n")); err == nil {
		t.Fatal("unknown engine key accepted")
	}
}
