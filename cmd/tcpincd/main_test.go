package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/negstate"
)

func runArgs(args ...string) (int, string) {
	var buf bytes.Buffer
	code := run(args, &buf)
	return code, buf.String()
}

// TestExitCodes: bad flags and bad configuration exit 2 with a message that
// names the problem; a missing interface exits 1. None of these needs root:
// they fail before anything touches the kernel.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("inside: a\noutside: b\nflows:\n  idle_timeout: -1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("inside: a\nfast_pth: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badEngine := filepath.Join(dir, "engine.yaml")
	if err := os.WriteFile(badEngine, []byte("inside: a\noutside: b\nengine:\n  teps: [x25519, rsa]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyLogFile := filepath.Join(dir, "keylog.yaml")
	if err := os.WriteFile(keyLogFile, []byte("inside: a\noutside: b\nkey_log: /tmp/keys\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty-token")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad engine key", []string{"--config", badEngine}, 2, "engine.teps[1]: must be one of"},
		{"no interfaces", nil, 2, "inside: required"},
		{"no outside", []string{"--inside", "x"}, 2, "outside: required"},
		{"same interface", []string{"--inside", "x", "--outside", "x"}, 2, "outside: must differ"},
		{"unknown flag", []string{"--insid", "x"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"--inside", "a", "--outside", "b", "extra"}, 2, "unexpected arguments"},
		{"bad admin", []string{"--inside", "a", "--outside", "b", "--admin", "nowhere"}, 2, "admin: must be host:port"},
		{"bad config value", []string{"--config", bad}, 2, "flows.idle_timeout: must be positive"},
		{"unknown config key", []string{"--config", unknown}, 2, "fast_pth"},
		{"missing config file", []string{"--config", filepath.Join(dir, "none.yaml")}, 2, "no such file"},
		{"missing interface", []string{"--inside", "tdi-nonexist0", "--outside", "tdi-nonexist1"}, 1,
			`inside interface "tdi-nonexist0": no such network interface`},
		{"help", []string{"-h"}, 0, "-no-fast-path"},
		{"admin unix without path", []string{"--inside", "a", "--outside", "b", "--admin", "unix:"}, 2, "admin: unix: needs a socket path"},
		{"admin off loopback without token", []string{"--inside", "a", "--outside", "b", "--admin", "192.0.2.1:9470"}, 2,
			"a bearer token is required to listen on a non-loopback address"},
		{"admin all interfaces without token", []string{"--inside", "a", "--outside", "b", "--admin", "[::]:9470"}, 2,
			"a bearer token is required"},
		{"admin token file missing", []string{"--inside", "a", "--outside", "b", "--admin-token-file", filepath.Join(dir, "none")}, 2,
			"admin_token_file: open"},
		{"admin token file empty", []string{"--inside", "a", "--outside", "b", "--admin-token-file", empty}, 2,
			"admin_token_file: " + empty + " is empty"},
		{"key log without enabling it", []string{"--inside", "a", "--outside", "b", "--key-log", filepath.Join(dir, "keys")}, 2,
			"key_log: refused: a key log decrypts the traffic"},
		{"key log enabled without a file", []string{"--inside", "a", "--outside", "b", "--key-log-enabled"}, 2,
			"key_log_enabled: is true but key_log names no file"},
		{"key log in the file without enabling it", []string{"--config", keyLogFile}, 2, "key_log: refused"},
		{"admin off loopback with token", []string{"--inside", "tdi-nonexist0", "--outside", "tdi-nonexist1",
			"--admin", "192.0.2.1:9470", "--admin-token-file", token}, 1, "no such network interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runArgs(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
}

// TestFlagsOverrideFile: flags win over the file, keys the flags do not set
// come from the file.
func TestFlagsOverrideFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	doc := "inside: fileIn\noutside: fileOut\nfast_path: true\nadmin: 127.0.0.1:1\nqueues: 3\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cfg, err := loadConfig([]string{"--config", p, "--inside", "flagIn", "--no-fast-path", "--admin", "[::1]:2"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Inside != "flagIn" || cfg.Outside != "fileOut" || cfg.FastPath || cfg.Admin != "[::1]:2" || cfg.Queues != 3 {
		t.Fatalf("merged config: %+v", cfg)
	}
	cfg, err = loadConfig([]string{"--config", p}, &buf)
	if err != nil || !cfg.FastPath || cfg.Inside != "fileIn" {
		t.Fatalf("file only: %+v, %v", cfg, err)
	}
}

// TestVersion: --version prints the version on stdout and exits 0, before
// any other check (no interfaces needed).
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	old := stdout
	stdout = &out
	defer func() { stdout = old }()
	code, errOut := runArgs("--version")
	if code != 0 || !strings.HasPrefix(out.String(), "tcpincd ") || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut)
	}
}

// TestKeyLogFlagsEnable: both flags together pass validation and set the
// config keys.
func TestKeyLogFlagsEnable(t *testing.T) {
	var buf bytes.Buffer
	cfg, err := loadConfig([]string{"--inside", "a", "--outside", "b", "--key-log", "/k", "--key-log-enabled"}, &buf)
	if err != nil || cfg.KeyLog != "/k" || !cfg.KeyLogEnabled {
		t.Fatalf("%+v %v", cfg, err)
	}
}

// TestKeyLogThatCannotOpen: a key log file that cannot be opened does not
// stop the daemon (before: exit 1, which systemd restarts in a loop and
// then gives up on, leaving the box dead); it runs without the key log,
// says so in its log, and the status warns.
func TestKeyLogThatCannotOpen(t *testing.T) {
	cfg := config.Default()
	cfg.Inside, cfg.Outside, cfg.PinDir, cfg.StateDir = "lo", "lo", "", "" // only looked up
	cfg.KeyLog, cfg.KeyLogEnabled = filepath.Join(t.TempDir(), "no-such-dir", "keys"), true
	var logged bytes.Buffer
	engines, _, _, closeAll, err := startEngines(cfg, [2]int{1500, 1500}, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("startEngines: %v", err)
	}
	defer closeAll()
	defer engines.Close()
	if engines.KeyLog != nil {
		t.Fatal("a key log that could not be opened is on")
	}
	if !strings.Contains(logged.String(), "key log not opened") {
		t.Fatalf("nothing said in the log:\n%s", logged.String())
	}
}

// With the engine off, a negotiated set that cannot be opened (pin_dir not
// on a BPF file system, a pinned map of another layout, a refused disk
// copy) stops the start, as it does with the engine on. Before, the daemon
// only warned and ran with plain Passthrough and no guards: the
// connections a previous run encrypted passed, their hosts' plaintext onto
// the wire, and the status said nothing.
func TestEngineOffUnopenedSetStops(t *testing.T) {
	cfg := config.Default()
	cfg.Inside, cfg.Outside, cfg.StateDir = "lo", "lo", ""
	cfg.Engine.Enabled = false
	cfg.PinDir = t.TempDir() // not a BPF file system
	var logged bytes.Buffer
	_, guards, _, closeAll, err := startEngines(cfg, [2]int{1500, 1500}, slog.New(slog.NewTextHandler(&logged, nil)))
	closeAll()
	if err == nil || !strings.Contains(err.Error(), "pin_dir") {
		t.Fatalf("engine off, pin_dir not on bpffs: err %v, guards %v\n%s", err, guards != nil, logged.String())
	}
	cfg.PinDir, cfg.StateDir = "", t.TempDir()
	f, err := negstate.Open(cfg.StateDir, netnsName(), "lo", "lo")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(f.Path(), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, guards, _, closeAll, err = startEngines(cfg, [2]int{1500, 1500}, slog.New(slog.NewTextHandler(&logged, nil)))
	closeAll()
	if err == nil || !strings.Contains(err.Error(), "state_dir") {
		t.Fatalf("engine off, a damaged disk copy: err %v, guards %v\n%s", err, guards != nil, logged.String())
	}
}

// TestEveryFlagDocumented: every flag --help lists is named in the README,
// and every flag that overrides a configuration key in the example
// configuration's list of them. Both said that only --inside, --outside,
// --admin and --no-fast-path override the file, and the README named
// neither --backend, --state-dir nor --admin-token-file.
func TestEveryFlagDocumented(t *testing.T) {
	code, help := runArgs("-h")
	if code != 0 {
		t.Fatalf("-h: exit %d\n%s", code, help)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 10 {
		t.Fatalf("--help lists %d flags: %v\n%s", len(flags), flags, help)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../deploy/tcpincd.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example's header: "Command-line flags (...) override the file."
	overrides := regexp.MustCompile(`(?s)Command-line flags \((.*?)\) override the file`).FindSubmatch(example)
	if overrides == nil {
		t.Fatal("deploy/tcpincd.example.yaml does not say which flags override it")
	}
	listed := regexp.MustCompile(`--[a-z-]+`).FindAllString(string(overrides[1]), -1)
	for _, f := range flags {
		// In a code span: `--backend`, `tcpincd --config FILE`.
		if !regexp.MustCompile("`[^`\n]*--" + regexp.QuoteMeta(f) + "([^a-z-]|$)").Match(readme) {
			t.Errorf("README.md does not name --%s", f)
		}
		if f != "config" && f != "version" && !slices.Contains(listed, "--"+f) {
			t.Errorf("deploy/tcpincd.example.yaml's list of flags that override the file lacks --%s", f)
		}
	}
}
