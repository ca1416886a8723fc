package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// daemon is an admin server over the fixture Source, as tcpincd would run it.
func daemon(t *testing.T, token string) (*admintest.Fixture, string) {
	t.Helper()
	fix := admintest.New()
	srv := admin.NewServer(fix, admin.Options{Token: token, Now: func() time.Time { return admintest.Now }})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return fix, strings.TrimPrefix(ts.URL, "http://")
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

// golden compares what a run printed (stdout, then stderr and the exit
// status when there are any) with testdata/name.golden; -update rewrites it.
// addr, the test server's random address, is written as ADMIN.
func golden(t *testing.T, name, addr string, r result) {
	t.Helper()
	var b strings.Builder
	b.WriteString(r.stdout)
	if r.stderr != "" {
		b.WriteString("--- stderr\n" + r.stderr)
	}
	if r.code != 0 {
		b.WriteString("--- exit " + string(rune('0'+r.code)) + "\n")
	}
	got := b.String()
	if addr != "" {
		got = strings.ReplaceAll(got, addr, "ADMIN")
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
	}{
		{"status", []string{"status"}, "", 0},
		{"flows", []string{"flows"}, "", 0},
		{"flows_verbose", []string{"-v", "flows"}, "", 0},
		{"flows_plain", []string{"flows", "--encrypted", "no"}, "", 0},
		{"flows_filtered", []string{"flows", "--address", "198.51.100.0/24", "--port", "443"}, "", 0},
		{"flows_none", []string{"flows", "--state", "closed"}, "", 0},
		{"flows_state", []string{"flows", "--state", "syn-sent"}, "", 0},
		{"flows_bad_state", []string{"flows", "--state", "established"}, "", 1},
		{"flows_help", []string{"flows", "--help"}, "", 0},
		{"flows_json", []string{"--json", "flows", "--encrypted=yes"}, "", 0},
		{"flows_bad_address", []string{"flows", "--address", "10.0.0.0/33"}, "", 1},
		{"flows_bad_flag", []string{"flows", "--encrypted", "maybe"}, "", 2},
		{"flow", []string{"flow", "7"}, "", 0},
		{"flow_plain", []string{"flow", "12"}, "", 0},
		{"flow_json", []string{"--json", "flow", "7"}, "", 0},
		{"flow_none", []string{"flow", "99"}, "", 1},
		{"flow_bad_id", []string{"flow", "seven"}, "", 2},
		{"session", []string{"session", "10.1.0.2:43122", "198.51.100.7:443"}, "", 0},
		{"session_far_side", []string{"session", "198.51.100.7:443", "10.1.0.2:43122"}, "", 0},
		{"session_json", []string{"--json", "session", "10.1.0.5:50022", "198.51.100.20:22"}, "", 0},
		{"session_not_encrypted", []string{"session", "10.1.0.2:43200", "203.0.113.9:80"}, "", 1},
		{"session_negotiating", []string{"session", "10.1.0.3:40000", "198.51.100.7:8080"}, "", 1},
		{"session_none", []string{"session", "10.1.0.2:1", "198.51.100.7:443"}, "", 1},
		{"session_bad_tuple", []string{"session", "10.1.0.2", "198.51.100.7:443"}, "", 2},
		{"config_get", []string{"config", "get"}, "", 0},
		{"config_set", []string{"config", "set", "-"}, `{"default_policy":"require","rekey_bytes":0}`, 0},
		{"config_set_bad_prefix", []string{"config", "set", "-"}, `{"policies":[{"prefix":"10.0.0.1/8","policy":"bypass"}]}`, 1},
		{"config_set_unknown_field", []string{"config", "set", "-"}, `{"caps":{"flow":1}}`, 1},
		{"cache_flush_all", []string{"cache", "flush"}, "", 0},
		{"cache_flush_one", []string{"cache", "flush", "198.51.100.7"}, "", 0},
		{"cache_flush_json", []string{"--json", "cache", "flush", "203.0.113.50"}, "", 0},
		{"no_command", nil, "", 2},
		{"unknown_command", []string{"frobnicate"}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fix, addr := daemon(t, "")
			r := runCLI(t, tc.stdin, nil, append([]string{"--admin", addr}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", r.code, tc.code, r.stderr)
			}
			golden(t, tc.name, addr, r)
			if strings.HasPrefix(tc.name, "config_set_bad") || strings.HasPrefix(tc.name, "config_set_unknown") {
				if n := len(fix.Applies()); n != 0 {
					t.Errorf("the daemon saw %d applies", n)
				}
			}
		})
	}
}

// TestUnreachable: a daemon that is not there is a clear error naming the
// address, and a non-zero exit.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := runCLI(t, "", nil, "--admin", addr, "flows")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	golden(t, "unreachable", addr, r)

	sock := filepath.Join(t.TempDir(), "none.sock")
	r = runCLI(t, "", nil, "--admin", "unix:"+sock, "status")
	if r.code != 1 || !strings.Contains(r.stderr, "unix:"+sock) || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("unix: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestToken(t *testing.T) {
	_, addr := daemon(t, "s3cret")
	r := runCLI(t, "", nil, "--admin", addr, "status")
	if r.code != 1 {
		t.Errorf("no token: exit %d", r.code)
	}
	golden(t, "token_missing", addr, r)
	r = runCLI(t, "", map[string]string{"TCPINC_TOKEN": "s3cret", "TCPINC_ADMIN": addr}, "status")
	if r.code != 0 {
		t.Errorf("token from the environment: exit %d: %s", r.code, r.stderr)
	}
	if r = runCLI(t, "", nil, "--admin", addr, "--token", "s3cret", "flows"); r.code != 0 {
		t.Errorf("--token: exit %d: %s", r.code, r.stderr)
	}
}

func TestConfigSetFile(t *testing.T) {
	fix, addr := daemon(t, "")
	path := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(path, []byte(`{"policies":[{"prefix":"192.0.2.0/24","policy":"bypass"}]}`), 0o600)
	if r := runCLI(t, "", nil, "--admin", addr, "config", "set", path); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if p := fix.Config().Policies; len(p) != 1 || p[0].Prefix != "192.0.2.0/24" {
		t.Errorf("policies %+v", p)
	}
	r := runCLI(t, "", nil, "--admin", addr, "config", "set", filepath.Join(t.TempDir(), "missing.json"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.json") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestFlowsPaging: the flows screen follows next_cursor to the end.
func TestFlowsPaging(t *testing.T) {
	fix, addr := daemon(t, "")
	var flows []admin.FlowInfo
	for i := range 2500 {
		flows = append(flows, admin.FlowInfo{ID: uint64(i + 1), State: "plain", Started: admintest.Start})
	}
	fix.SetFlows(flows)
	r := runCLI(t, "", nil, "--admin", addr, "flows")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "2500 flows, 0 encrypted, 2500 not\n") || !strings.Contains(r.stdout, "\nflow 2500:") {
		t.Errorf("exit %d, stdout starts %.80q", r.code, r.stdout)
	}
}

// movingDaemon is an admin server over the fixture whose every flows
// listing moves the daemon's clock by 2 s and the flows' byte counters by
// known amounts: flow 7 takes 2,500,000 bytes in and 50,000 out (10 Mbit/s
// and 200 kbit/s: the busiest, listed first), flow 9 500 bytes in (2
// kbit/s); flow 12, plain, 5,000,000 out, which is no rate (bytes are
// counted for encrypted flows only, whatever a listing says); flow 13 is
// replaced by a new flow (1000 + n) at each listing, and the bypassed
// flow's bytes in go back by one (no rate).
func movingDaemon(t *testing.T) string {
	t.Helper()
	fix := admintest.New()
	var base []admin.FlowInfo
	fix.Flows(func(f admin.FlowInfo) bool { base = append(base, f); return true })
	var n atomic.Int64
	srv := admin.NewServer(fix, admin.Options{Now: func() time.Time {
		return admintest.Now.Add(time.Duration(n.Load()) * 2 * time.Second)
	}})
	h := srv.Handler()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/flows", func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		flows := slices.Clone(base)
		for i := range flows {
			f := &flows[i]
			switch f.ID {
			case 7:
				f.BytesIn += uint64(k) * 2_500_000
				f.BytesOut += uint64(k) * 50_000
			case 9:
				f.BytesIn += uint64(k) * 500
			case 12:
				f.BytesOut += uint64(k) * 5_000_000
			case 13:
				f.ID = 1000 + uint64(k)
			case 1 << 60:
				f.BytesIn -= uint64(k)
			}
		}
		fix.SetFlows(flows)
		h.ServeHTTP(w, r)
	})
	mux.Handle("/", h)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestFlowsRate: flows --rate lists twice and gives each flow in both
// listings its rates over the daemon's clock (2 s between the listings,
// whatever the 10 ms the client waited), busiest first, in text and JSON.
func TestFlowsRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flows_rate", []string{"flows", "--rate", "10ms"}},
		{"flows_rate_json", []string{"--json", "flows", "--rate=10ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := movingDaemon(t)
			r := runCLI(t, "", nil, append([]string{"--admin", addr}, tc.args...)...)
			if r.code != 0 {
				t.Errorf("exit %d; stderr %s", r.code, r.stderr)
			}
			golden(t, tc.name, addr, r)
		})
	}
	addr := movingDaemon(t)
	r := runCLI(t, "", nil, "--admin", addr, "--json", "flows", "--rate", "10ms", "--encrypted", "yes")
	var got []struct {
		ID          string   `json:"id"`
		RateSeconds float64  `json:"rate_seconds"`
		In          *float64 `json:"rate_in_bits_per_second"`
		Out         *float64 `json:"rate_out_bits_per_second"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v: %s", r.code, err, r.stdout)
	}
	if len(got) != 2 || got[0].ID != "7" || got[0].RateSeconds != 2 || *got[0].In != 10e6 || *got[0].Out != 200e3 ||
		got[1].ID != "9" || *got[1].In != 2000 || *got[1].Out != 0 {
		t.Errorf("encrypted flows' rates: %s", r.stdout)
	}
	if r := runCLI(t, "", nil, "--admin", addr, "flows", "--rate", "-1s"); r.code != 2 {
		t.Errorf("--rate -1s: exit %d", r.code)
	}
}

// rates gives no rate where it cannot be known: a plain flow (its bytes are
// not counted), counters that went back, a clock that did not move, a flow
// in one listing only.
func TestRatesUnknown(t *testing.T) {
	doc := func(id string, enc bool, age float64, in, out uint64) admin.FlowDoc {
		return admin.FlowDoc{ID: id, Encrypted: enc, AgeSeconds: age, BytesIn: in, BytesOut: out}
	}
	before := []admin.FlowDoc{doc("1", true, 10, 1000, 1000), doc("2", false, 10, 0, 0), doc("3", true, 10, 1000, 1000),
		doc("4", true, 10, 0, 0), doc("5", true, 10, 0, 0)}
	after := []admin.FlowDoc{doc("1", true, 12, 3000, 1500), doc("2", false, 12, 1e6, 1e6), doc("3", true, 12, 999, 2000),
		doc("4", true, 10, 50, 50), doc("6", true, 12, 10, 10)}
	got := map[string]*float64{}
	for _, r := range rates(before, after) {
		got[r.ID] = r.BitsIn
		if r.BitsIn != nil && r.BitsOut == nil || r.BitsIn == nil && r.BitsOut != nil {
			t.Errorf("flow %s: one rate known, the other not", r.ID)
		}
	}
	if len(got) != 4 || got["1"] == nil || *got["1"] != 8000 || got["2"] != nil || got["3"] != nil || got["4"] != nil {
		t.Errorf("rates: %v", got)
	}
}
