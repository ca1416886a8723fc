package control

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// TestEngineConfig: every key of the engine section reaches engine.Config,
// 0 means "never" for rekeying, and bad values name their key.
func TestEngineConfig(t *testing.T) {
	c := config.Default().Engine
	c.TEPs = []string{"x448", "x25519"}
	c.AEADs = []string{"chacha20poly1305", "aes128gcm"}
	c.RekeyBytes, c.RekeyInterval = 0, 0
	c.Resumption = false
	c.MaxFlows, c.RetransmitBytes, c.ReassemblyBytes, c.PreKeyBytes, c.DeliverBytes = 7, 9000, 5000, 4500, 6000
	c.MaxEmbryonic, c.MemoryLimit = 5, 3<<20
	c.InitRTO, c.InitTries, c.HandshakeTimeout, c.IdleTimeout = time.Second, 3, time.Minute, time.Hour
	c.PlainRetention = 7 * time.Second
	c.SYNsWithENO = 3
	c.Policies = []config.Policy{{Prefix: "10.1.2.3/16", Policy: "require"}, {Prefix: "fd00::/8", Policy: "bypass"}}
	c.FragmentTimeout, c.FragmentDatagrams, c.FragmentPerFlow, c.FragmentBytes = time.Second, 10, 2, 1<<20
	ec, err := EngineConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Config{
		TEPs:       []tcpcrypt.TEP{tcpcrypt.TEPX448, tcpcrypt.TEPX25519},
		AEADs:      []cryptopool.Suite{cryptopool.ChaCha20Poly1305, cryptopool.AES128GCM},
		RekeyBytes: -1, RekeyAfter: -1, NoResumption: true,
		MaxFlows: 7, MaxEmbryonic: 5, MemoryLimit: 3 << 20, RetransmitBytes: 9000, ReassemblyBytes: 5000, PreKeyBytes: 4500, DeliverBytes: 6000,
		InitRTO: time.Second, InitTries: 3, SYNsWithENO: 3, HandshakeTimeout: time.Minute, IdleTimeout: time.Hour,
		PlainRetention: 7 * time.Second,
		Fragments:      engine.FragConfig{Timeout: time.Second, MaxDatagrams: 10, PerFlow: 2, Memory: 1 << 20},
		Policies: []engine.PolicyRule{
			{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Policy: engine.Require},
			{Prefix: netip.MustParsePrefix("fd00::/8"), Policy: engine.Bypass},
		},
	}
	if fmtCfg(ec) != fmtCfg(want) {
		t.Fatalf("got  %s\nwant %s", fmtCfg(ec), fmtCfg(want))
	}
	c.SYNsWithENO = 0 // every SYN keeps TCP-ENO: negative for the engine
	if ec, err := EngineConfig(c); err != nil || ec.SYNsWithENO >= 0 {
		t.Fatalf("syns_with_eno 0: engine SYNsWithENO %d, %v", ec.SYNsWithENO, err)
	}

	for _, tc := range []struct {
		edit  func(*config.Engine)
		field string
	}{
		{func(c *config.Engine) { c.TEPs = []string{"rsa"} }, "engine.teps[0]"},
		{func(c *config.Engine) { c.AEADs = []string{"x"} }, "engine.aeads[0]"},
		{func(c *config.Engine) { c.Policies = []config.Policy{{Prefix: "nope", Policy: "require"}} }, "engine.policies[0].prefix"},
		{func(c *config.Engine) { c.Policies = []config.Policy{{Prefix: "::/0", Policy: "sometimes"}} }, "engine.policies[0].policy"},
		{func(c *config.Engine) { c.ReassemblyBytes = 10 }, "engine"},
	} {
		c := config.Default().Engine
		tc.edit(&c)
		_, err := EngineConfig(c)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want a FieldError on it", tc.field, err)
		}
	}
}

// TestDefaultCapsAgree: the daemon's file defaults give the engine its own
// default per-flow caps, which TestDefaultCapsDoNotThrottle (package
// engine) holds to what a fast or long path needs.
func TestDefaultCapsAgree(t *testing.T) {
	ec, err := EngineConfig(config.Default().Engine)
	if err != nil {
		t.Fatal(err)
	}
	got := [3]int{ec.RetransmitBytes, ec.ReassemblyBytes, ec.DeliverBytes}
	want := [3]int{engine.DefaultRetransmitBytes, engine.DefaultReassemblyBytes, engine.DefaultDeliverBytes}
	if got != want {
		t.Fatalf("file defaults give caps %v, the engine's defaults are %v", got, want)
	}
}

func fmtCfg(c engine.Config) string { return fmt.Sprintf("%+v", c) }

// TestFileAndAPIMapAlike: the settings the configuration file and the admin
// API share reach engine.Config the same way from both, and a bad one is
// named in each side's own spelling.
func TestFileAndAPIMapAlike(t *testing.T) {
	c := config.Default().Engine
	c.TEPs = []string{"p256", "x25519"}
	c.AEADs = []string{"aes256gcm", "chacha20poly1305"}
	c.RekeyBytes, c.RekeyInterval = 1<<30, time.Hour
	c.MaxFlows, c.RetransmitBytes, c.ReassemblyBytes, c.PreKeyBytes, c.DeliverBytes = 9, 1<<16, 1<<15, 1<<14, 1<<13
	c.Policies = []config.Policy{{Prefix: "192.0.2.0/24", Policy: "require"}, {Prefix: "2001:db8::/32", Policy: "bypass"}}
	fromFile, err := EngineConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	// The API's view of that configuration, mapped back over it.
	api := adminConfig(fromFile, true, 0)
	fromAPI, err := apiEngineConfig(fromFile, api)
	if err != nil {
		t.Fatal(err)
	}
	if fmtCfg(fromAPI) != fmtCfg(fromFile) {
		t.Fatalf("file %s\napi  %s", fmtCfg(fromFile), fmtCfg(fromAPI))
	}
	for _, tc := range []struct {
		edit      func(*config.Engine, *admin.Config)
		file, api string
	}{
		{func(f *config.Engine, a *admin.Config) { f.TEPs, a.TEPs = []string{"rsa"}, []string{"rsa"} }, "engine.teps[0]", "teps[0]"},
		{func(f *config.Engine, a *admin.Config) { f.AEADs, a.AEADs = []string{"x"}, []string{"x"} }, "engine.aeads[0]", "aeads[0]"},
		{func(f *config.Engine, a *admin.Config) {
			f.Policies = []config.Policy{{Prefix: "::/0", Policy: "sometimes"}}
			a.Policies = []admin.PolicyRule{{Prefix: "::/0", Policy: "sometimes"}}
		}, "engine.policies[0].policy", "policies[0].policy"},
		{func(f *config.Engine, a *admin.Config) { f.RetransmitBytes, a.Caps.RetransmitBytes = 4096, 4096 }, "engine.retransmit_bytes", "caps.retransmit_bytes"},
		{func(f *config.Engine, a *admin.Config) { f.ReassemblyBytes, a.Caps.ReassemblyBytes = 10, 10 }, "engine", "caps"},
	} {
		f, a := c, api
		tc.edit(&f, &a)
		var fe *config.FieldError
		if _, err := EngineConfig(f); !errors.As(err, &fe) || fe.Field != tc.file {
			t.Errorf("file: %v, want a FieldError on %s", err, tc.file)
		}
		var ae *admin.FieldError
		if _, err := apiEngineConfig(fromFile, a); !errors.As(err, &ae) || ae.Field != tc.api {
			t.Errorf("API: %v, want a FieldError on %s", err, tc.api)
		}
	}
	for key, want := range map[string]string{"caps.flows": "engine.max_flows", "caps.prekey_queue_bytes": "engine.prekey_bytes",
		"caps.deliver_bytes": "engine.deliver_bytes", "rekey_bytes": "engine.rekey_bytes"} {
		if got := fileKey(key); got != want {
			t.Errorf("file key of %s: %s, want %s", key, got, want)
		}
	}
}

// TestPolicyNames: the names the file and the API accept are the ones the
// mapping knows, and an engine policy reads back under its name.
func TestPolicyNames(t *testing.T) {
	for _, name := range []string{admin.PolicyOpportunistic, admin.PolicyRequire, admin.PolicyBypass} {
		p, ok := policyByName[name]
		if !ok || p.String() != name {
			t.Errorf("policy %q: %v %v", name, p, ok)
		}
		c := config.Default()
		c.Inside, c.Outside = "in", "out"
		c.Engine.Policies = []config.Policy{{Prefix: "10.0.0.0/8", Policy: name}}
		if err := c.Validate(); err != nil {
			t.Errorf("the file refuses policy %q: %v", name, err)
		}
	}
	if len(policyByName) != 3 {
		t.Errorf("%d policy names", len(policyByName))
	}
}

// TestAutoMemoryLimit: memory_limit 0 is a quarter of the machine's
// memory, between 1 and 16 GiB, read from /proc/meminfo's MemTotal.
func TestAutoMemoryLimit(t *testing.T) {
	for _, tc := range []struct{ total, want int64 }{
		{0, 1 << 30},        // unknown
		{2 << 30, 1 << 30},  // a small VM: the floor
		{24 << 30, 6 << 30}, // this project's bench machine
		{256 << 30, 16 << 30},
	} {
		if got := AutoMemoryLimit(tc.total); got != tc.want {
			t.Errorf("AutoMemoryLimit(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
	meminfo := "MemTotal:       24567892 kB\nMemFree:        1000 kB\n"
	if got := parseMemTotal([]byte(meminfo)); got != 24567892<<10 {
		t.Errorf("parseMemTotal = %d", got)
	}
	if got := parseMemTotal([]byte("MemFree: 5 kB\n")); got != 0 {
		t.Errorf("parseMemTotal without MemTotal = %d, want 0", got)
	}

	defer func(f func() int64) { memTotal = f }(memTotal)
	memTotal = func() int64 { return 40 << 30 }
	c := config.Default().Engine
	ec, err := EngineConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if ec.MemoryLimit != 10<<30 {
		t.Errorf("default memory_limit on a 40 GiB machine gives %d, want 10 GiB", ec.MemoryLimit)
	}
	c.MemoryLimit = 3 << 20
	if ec, err = EngineConfig(c); err != nil || ec.MemoryLimit != 3<<20 {
		t.Errorf("memory_limit set in the file: %d, %v", ec.MemoryLimit, err)
	}
}
