package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

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
	c.MaxFlows, c.RetransmitBytes, c.ReassemblyBytes, c.PreKeyBytes, c.DeliverBytes = 7, 9000, 5000, 100, 6000
	c.MaxEmbryonic, c.MemoryLimit = 5, 3<<20
	c.InitRTO, c.InitTries, c.HandshakeTimeout, c.IdleTimeout = time.Second, 3, time.Minute, time.Hour
	c.PlainRetention = 7 * time.Second
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
		MaxFlows: 7, MaxEmbryonic: 5, MemoryLimit: 3 << 20, RetransmitBytes: 9000, ReassemblyBytes: 5000, PreKeyBytes: 100, DeliverBytes: 6000,
		InitRTO: time.Second, InitTries: 3, HandshakeTimeout: time.Minute, IdleTimeout: time.Hour,
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

func fmtCfg(c engine.Config) string { return fmt.Sprintf("%+v", c) }

// TestEnginesShared: NewEngines starts the pool and stocks, every worker
// gets its own engine sharing them, Each sees them all.
func TestEnginesShared(t *testing.T) {
	es, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if es.Cache == nil || len(es.keys) != 3 {
		t.Fatalf("cache %v, %d stocks; want a cache and one stock per default TEP", es.Cache, len(es.keys))
	}
	h0, err := es.NewHandler(0)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := es.NewHandler(1)
	if h0 == h1 {
		t.Fatal("two workers share one engine")
	}
	n := 0
	es.Each(func(q int, c *engine.Counters) { n++ })
	if n != 2 {
		t.Fatalf("Each visited %d engines", n)
	}
}
