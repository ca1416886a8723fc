// Package deploy_test checks the files an operator installs from deploy/.
package deploy_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/config"
)

const example = "tcpincd.example.yaml"

// TestExampleConfig: the example configuration parses and validates, sets
// every key the daemon knows (so it documents all of them), and its values
// are the defaults apart from the two interface names.
func TestExampleConfig(t *testing.T) {
	c, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example does not validate: %v", err)
	}
	want := config.Default()
	want.Inside, want.Outside = c.Inside, c.Outside
	if c.Inside == "" || c.Outside == "" {
		t.Errorf("example sets no interfaces: inside %q, outside %q", c.Inside, c.Outside)
	}
	if len(c.CPUs) == 0 {
		c.CPUs = nil // "cpus: []" and no key mean the same
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example values differ from the defaults:\n got %+v\nwant %+v", c, want)
	}

	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlKeys(reflect.TypeOf(config.Config{}), "") {
		// A key is "parent.child"; in the file the child is indented
		// under its parent.
		parts := strings.Split(key, ".")
		leaf := parts[len(parts)-1]
		indent := strings.Repeat("  ", len(parts)-1)
		if !regexp.MustCompile(`(?m)^` + indent + regexp.QuoteMeta(leaf) + `:`).Match(text) {
			t.Errorf("example does not set %s", key)
		}
		// Each key has a comment in the paragraph (lines without a blank
		// one between) that ends with it.
		re := regexp.MustCompile(`(?m)^\s*#.*\n(?:[^\n]+\n)*?` + indent + regexp.QuoteMeta(leaf) + `:`)
		if !re.Match(text) {
			t.Errorf("example has no comment in the paragraph of %s", key)
		}
	}
}

// yamlKeys lists the YAML key paths of a config struct type.
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		full := prefix + name
		keys = append(keys, full)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			keys = append(keys, yamlKeys(f.Type, full+".")...)
		}
	}
	return keys
}

// TestSystemdUnit: the unit runs the daemon with the example's install path,
// restarts it whatever ended it and never stops trying (tcpincd exits when
// a port is gone, and fails to start until it is back), does not restart
// on a configuration error (exit 2), gives it the runtime
// directory its interface locks need and the state directory its copy of
// the negotiated set needs, and allows no core dump.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/tcpincd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/tcpincd --config /etc/tcpinc/tcpincd.yaml",
		"RestartPreventExitStatus=2",
		"Restart=always",
		"StartLimitIntervalSec=0",
		"RuntimeDirectory=tcpincd", // cmd/tcpincd's lock directory /run/tcpincd
		"StateDirectory=tcpincd",   // state_dir's default /var/lib/tcpincd
		"LimitMEMLOCK=infinity",
		"LimitCORE=0", // a core dump would hold keys
		"WantedBy=multi-user.target",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// TestUnitCapabilitiesInReadme: the README's list of the capabilities the
// unit gives the daemon is the unit's bounding set (it lacked PERFMON).
func TestUnitCapabilitiesInReadme(t *testing.T) {
	unit, err := os.ReadFile("systemd/tcpincd.service")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	set := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindSubmatch(unit)
	if set == nil {
		t.Fatal("the unit has no CapabilityBoundingSet")
	}
	list := regexp.MustCompile(`only the capabilities it needs \(([^)]*)\)`).FindSubmatch(readme)
	if list == nil {
		t.Fatal("README.md does not list the unit's capabilities")
	}
	var want []string
	for _, c := range strings.Fields(string(set[1])) {
		want = append(want, strings.TrimPrefix(c, "CAP_"))
	}
	got := regexp.MustCompile(`[A-Z][A-Z_]+`).FindAllString(string(list[1]), -1)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("README.md lists capabilities %v, the unit's bounding set is %v", got, want)
	}
}
