package control

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
)

// TestFileConfigTheAPITakesBack: a configuration file tcpincd starts with
// is one the admin API takes back. PUT /api/v1/config sends the whole
// document, the fields left out keeping their values, so a value only the
// file allowed made every later change (tcpincctl config set of any one
// field) a 400 naming a field the operator never sent. Each such file is
// now refused at start, naming its own key; the values both take start,
// and a one-field PUT then goes through.
func TestFileConfigTheAPITakesBack(t *testing.T) {
	refused := []struct {
		name string
		set  func(*config.Engine)
		key  string
	}{
		{"rekey bytes under the API's minimum", func(c *config.Engine) { c.RekeyBytes = admin.MinRekeyBytes - 1 }, "engine.rekey_bytes"},
		{"rekey interval under a second", func(c *config.Engine) { c.RekeyInterval = 500 * time.Millisecond }, "engine.rekey_interval"},
		{"pre-key queue under 4096 bytes", func(c *config.Engine) { c.PreKeyBytes = 100 }, "engine.prekey_bytes"},
		{"two rules for one prefix", func(c *config.Engine) {
			c.Policies = []config.Policy{{Prefix: "10.1.0.0/16", Policy: "require"}, {Prefix: "10.1.0.0/16", Policy: "bypass"}}
		}, "engine.policies[1].prefix"},
		{"an IPv4 prefix in IPv6 form", func(c *config.Engine) {
			c.Policies = []config.Policy{{Prefix: "::ffff:10.0.0.0/104", Policy: "require"}}
		}, "engine.policies[0].prefix"},
	}
	for _, tc := range refused {
		c := config.Default().Engine
		tc.set(&c)
		_, err := EngineConfig(c)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.key {
			t.Errorf("%s: EngineConfig error %v, want a config.FieldError for %s", tc.name, err, tc.key)
		}
	}

	// The edges both take: the API's minimum rekey volume, a second, the
	// pre-key queue's default (0), a rule written with host bits.
	c := config.Default().Engine
	c.KeyWorkers = 1
	c.RekeyBytes, c.RekeyInterval, c.PreKeyBytes = admin.MinRekeyBytes, time.Second, 0
	c.Policies = []config.Policy{{Prefix: "10.1.0.1/16", Policy: "require"}, {Prefix: "2001:db8::/32", Policy: "bypass"}}
	if _, err := EngineConfig(c); err != nil {
		t.Fatalf("a file the API takes refused: %v", err)
	}
	_, src := engineSource(t, c, 1, AdminInfo{Version: "t"}, nil)
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	if code, field := putConfig(t, hs, `{"rekey_interval": "30m"}`); code != http.StatusOK {
		t.Fatalf("a one-field PUT after starting from the file: %d (field %q)", code, field)
	}
	if got := time.Duration(src.Config().RekeyInterval); got != 30*time.Minute {
		t.Fatalf("rekey_interval %v after the PUT", got)
	}
}
