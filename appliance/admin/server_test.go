package admin_test

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
)

type env struct {
	fix *admintest.Fixture
	srv *admin.Server
	ts  *httptest.Server
}

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	fix := admintest.New()
	srv := admin.NewServer(fix, admin.Options{Token: token, Now: func() time.Time { return admintest.Now }})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{fix: fix, srv: srv, ts: ts}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request; body != "" is sent as JSON unless hdr sets
// another Content-Type.
func (e *env) call(t *testing.T, method, path, body string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" || method == "PUT" || method == "POST" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// wantError checks an error reply: status, JSON error body, field.
func (r reply) wantError(t *testing.T, status int, field string) admin.ErrorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var eb admin.ErrorBody
	r.decode(t, &eb)
	if eb.Error == "" {
		t.Errorf("empty error message: %s", r.body)
	}
	if eb.Field != field {
		t.Errorf("field %q, want %q (error %q)", eb.Field, field, eb.Error)
	}
	return eb
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "GET", "/healthz", "")
	var h admin.Health
	r.decode(t, &h)
	if r.status != 200 || h.Status != "ok" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "GET", "/api/v1/status", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var s admin.StatusDoc
	r.decode(t, &s)
	if s.Version != "v0.5.0-test" || s.UptimeSeconds != 2*3600+3*60+4 {
		t.Errorf("version %q uptime %v", s.Version, s.UptimeSeconds)
	}
	if len(s.Ports) != 2 || s.Ports[0].XDPMode != "native" || s.Ports[1].BindMode != "copy" || !slices.Equal(s.Ports[0].CPUs, []int{2, 3}) {
		t.Errorf("ports %+v", s.Ports)
	}
	if s.Flows.Total != 5 || s.Flows.Encrypted != 2 {
		t.Errorf("flows %+v", s.Flows)
	}
	if s.Counters.Handshakes["encrypted"] != 41 || s.Counters.Paths["fast"].Frames != 5000 || s.Counters.AuthFailures != 1 {
		t.Errorf("counters %+v", s.Counters)
	}
	if !slices.Equal(s.AEADPreference, []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}) || s.Config.DefaultPolicy != "opportunistic" {
		t.Errorf("aead %v config %+v", s.AEADPreference, s.Config)
	}
	// snake_case on the wire.
	for _, k := range []string{`"uptime_seconds"`, `"xdp_mode"`, `"bind_mode"`, `"path"`, `"path_reason"`, `"mtu": 1500`, `"segment_mtu": 3822`, `"link": "no_carrier"`, `"aead_preference"`, `"flows_by_state"`, `"auth_failures"`} {
		if !strings.Contains(string(r.body), k) {
			t.Errorf("status lacks %s", k)
		}
	}
}

const bigID = "1152921504606846976" // 1<<60: beyond JavaScript's exact integers

func flowIDs(t *testing.T, r reply) ([]string, admin.FlowsPage) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var p admin.FlowsPage
	r.decode(t, &p)
	ids := []string{}
	for _, f := range p.Flows {
		ids = append(ids, f.ID)
	}
	return ids, p
}

func TestFlowsFilters(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"7", "9", "12", "13", bigID}},
		{"?encrypted=true", []string{"7", "9"}},
		{"?encrypted=false", []string{"12", "13", bigID}},
		{"?state=syn-sent", []string{"13"}},
		{"?state=encrypted", []string{"7", "9"}},
		{"?state=plain", []string{"12", bigID}},
		{"?state=closed", []string{}},
		{"?address=198.51.100.7", []string{"7", "13"}},
		{"?address=10.1.0.2", []string{"7", "12"}},
		{"?address=10.1.0.0/24", []string{"7", "9", "12", "13"}},
		{"?address=2001:db8::/32", []string{bigID}},
		{"?address=::ffff:10.1.0.5", []string{"9"}},
		{"?address=::ffff:10.1.0.0/120", []string{"7", "9", "12", "13"}},
		{"?port=443", []string{"7"}},
		{"?port=50022", []string{"9"}},
		{"?encrypted=false&address=198.51.100.0/24&port=8080", []string{"13"}},
	} {
		ids, p := flowIDs(t, e.call(t, "GET", "/api/v1/flows"+tc.query, ""))
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%q: ids %v, want %v", tc.query, ids, tc.want)
		}
		if p.Total != len(tc.want) || p.NextCursor != "" {
			t.Errorf("%q: total %d next %q", tc.query, p.Total, p.NextCursor)
		}
	}
}

// TestFlowsUnknownState: the API documented states the engine does not have
// (established, syn_sent), and ?state=established listed no flow with a 200,
// as if there were none. A state that is not one of the engine's is a 400
// that names them all.
func TestFlowsUnknownState(t *testing.T) {
	e := newEnv(t, "")
	for _, st := range []string{"established", "syn_sent", "Encrypted"} {
		eb := e.call(t, "GET", "/api/v1/flows?state="+st, "").wantError(t, 400, "state")
		if !strings.Contains(eb.Error, strings.Join(admin.FlowStates, ", ")) {
			t.Errorf("state %s: %q does not name the states", st, eb.Error)
		}
	}
	for _, st := range admin.FlowStates {
		if r := e.call(t, "GET", "/api/v1/flows?state="+st, ""); r.status != 200 {
			t.Errorf("state %s: %d %s", st, r.status, r.body)
		}
	}
}

func TestFlowDocument(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "GET", "/api/v1/flows/7", "")
	var f admin.FlowDoc
	r.decode(t, &f)
	want := admin.FlowDoc{
		ID: "7", Inside: "10.1.0.2:43122", Outside: "198.51.100.7:443", State: "encrypted", Encrypted: true,
		Role: "A", TEP: "x25519", AEAD: "aes128gcm", SessionID: hex.EncodeToString(admintest.SessionFresh[:]),
		KeyGeneration: 2, BytesIn: 1_268_000, BytesOut: 34_200, PacketsIn: 912, PacketsOut: 401,
		Started: admintest.Start.Add(90 * time.Minute), AgeSeconds: 33*60 + 4, Stream: admintest.Stream7,
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("flow 7:\n got %+v\nwant %+v", f, want)
	}
	for _, key := range []string{`"stream"`, `"host_opened": 1268000`, `"window_host": 0`, `"wire_acked": 34975`} {
		if !strings.Contains(string(r.body), key) {
			t.Errorf("flow 7 detail lacks %s: %s", key, r.body)
		}
	}
	if list := e.call(t, "GET", "/api/v1/flows", ""); strings.Contains(string(list.body), `"stream"`) {
		t.Errorf("the flow list carries streams (only the detail should): %s", list.body)
	}
	if len(f.SessionID) != 66 {
		t.Errorf("session id %q is not 33 bytes of hex", f.SessionID)
	}
	// A flow that is not encrypted shows why, and no session ID at all.
	r = e.call(t, "GET", "/api/v1/flows/12", "")
	if strings.Contains(string(r.body), "session_id") || !strings.Contains(string(r.body), `"fallback_reason": "no ENO option"`) {
		t.Errorf("flow 12: %s", r.body)
	}
	r = e.call(t, "GET", "/api/v1/flows/"+bigID, "")
	r.decode(t, &f)
	if f.ID != bigID || f.Inside != "[fd00::5]:5353" {
		t.Errorf("big id flow: %+v", f)
	}
	e.call(t, "GET", "/api/v1/flows/99", "").wantError(t, 404, "id")
	e.call(t, "GET", "/api/v1/flows/abc", "").wantError(t, 400, "id")
	e.call(t, "GET", "/api/v1/flows/-1", "").wantError(t, 400, "id")
	e.call(t, "GET", "/api/v1/flows/7?x=1", "").wantError(t, 400, "x")
}

func TestFlowsPaging(t *testing.T) {
	e := newEnv(t, "")
	ids, p := flowIDs(t, e.call(t, "GET", "/api/v1/flows?limit=2", ""))
	if !slices.Equal(ids, []string{"7", "9"}) || p.NextCursor != "9" || p.Total != 5 {
		t.Fatalf("page 1: %v next %q total %d", ids, p.NextCursor, p.Total)
	}
	// A flow that opens between pages, below the cursor, shifts nothing.
	flows := slices.Collect(func(yield func(admin.FlowInfo) bool) { e.fix.Flows(yield) })
	flows = append(flows, admin.FlowInfo{ID: 8, State: "syn-sent", Inside: netip.MustParseAddrPort("10.1.0.9:1000"),
		Outside: netip.MustParseAddrPort("192.0.2.1:80"), Started: admintest.Start})
	e.fix.SetFlows(flows)
	ids, p = flowIDs(t, e.call(t, "GET", "/api/v1/flows?limit=2&cursor="+p.NextCursor, ""))
	if !slices.Equal(ids, []string{"12", "13"}) || p.NextCursor != "13" {
		t.Fatalf("page 2: %v next %q", ids, p.NextCursor)
	}
	ids, p = flowIDs(t, e.call(t, "GET", "/api/v1/flows?limit=2&cursor="+p.NextCursor, ""))
	if !slices.Equal(ids, []string{bigID}) || p.NextCursor != "" || p.Total != 6 {
		t.Fatalf("page 3: %v next %q total %d", ids, p.NextCursor, p.Total)
	}
}

func TestFlowsBadQuery(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct{ query, field string }{
		{"encrypted=yes", "encrypted"},
		{"address=10.1.0.0/33", "address"},
		{"address=10.1.0", "address"},
		{"address=fe80::1%25eth0", "address"},
		{"port=0", "port"},
		{"port=65536", "port"},
		{"port=http", "port"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"cursor=abc", "cursor"},
		{"addr=10.1.0.2", "addr"},
		{"port=80&port=443", "port"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e.call(t, "GET", "/api/v1/flows?"+tc.query, "").wantError(t, 400, tc.field)
		})
	}
	e.call(t, "GET", "/api/v1/flows?%zz", "").wantError(t, 400, "")
}

func sessionPath(src, sport, dst, dport string) string {
	return "/api/v1/sessions?src=" + src + "&sport=" + sport + "&dst=" + dst + "&dport=" + dport
}

// TestSessions covers the TCP_ENO_SESSID equivalent: a session ID only for
// an encrypted connection, an error otherwise, never an empty success
// (ENO-73; docs/protocol.md §17).
func TestSessions(t *testing.T) {
	e := newEnv(t, "")
	sid := hex.EncodeToString(admintest.SessionFresh[:])

	// Asked by the inside host (role A, as the appliance speaks for it).
	var s admin.SessionDoc
	r := e.call(t, "GET", sessionPath("10.1.0.2", "43122", "198.51.100.7", "443"), "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r.decode(t, &s)
	want := admin.SessionDoc{
		Src: "10.1.0.2:43122", Dst: "198.51.100.7:443", FlowID: "7", SessionID: sid, Role: "A",
		NegTEP: "0x23", TEP: "x25519", AEAD: "aes128gcm", SelfName: "00" + sid, PeerName: "01" + sid,
		KeyGeneration: 2, SelfGOpt: 2, PeerGOpt: 1, Transcript: hex.EncodeToString(admintest.Transcript),
	}
	if s != want {
		t.Errorf("inside view:\n got %+v\nwant %+v", s, want)
	}
	// Asked from the far side: the other role, and SELF_NAME here is
	// PEER_NAME there (docs/protocol.md §17).
	r = e.call(t, "GET", sessionPath("198.51.100.7", "443", "10.1.0.2", "43122"), "")
	var o admin.SessionDoc
	r.decode(t, &o)
	if o.Role != "B" || o.SelfName != s.PeerName || o.PeerName != s.SelfName || o.SessionID != sid || o.SelfGOpt != 1 || o.PeerGOpt != 2 {
		t.Errorf("far-side view: %+v", o)
	}
	// Resumed: NEGTEP has B's v bit (0xa3), the TEP name does not.
	r = e.call(t, "GET", sessionPath("10.1.0.5", "50022", "198.51.100.20", "22"), "")
	r.decode(t, &o)
	if o.NegTEP != "0xa3" || o.TEP != "x25519" || !o.Resumed || o.Role != "B" || !strings.HasPrefix(o.SelfName, "01a3") {
		t.Errorf("resumed: %+v", o)
	}
	// IPv4-mapped spelling finds the same connection.
	r = e.call(t, "GET", sessionPath("::ffff:10.1.0.2", "43122", "198.51.100.7", "443"), "")
	if r.status != 200 {
		t.Errorf("mapped address: %d %s", r.status, r.body)
	}

	// Fallen back: 409 with the reason; negotiating: 409 "negotiating".
	eb := e.call(t, "GET", sessionPath("10.1.0.2", "43200", "203.0.113.9", "80"), "").wantError(t, 409, "")
	if eb.Reason != "no ENO option" || !strings.Contains(eb.Error, "not encrypted") {
		t.Errorf("fallback: %+v", eb)
	}
	eb = e.call(t, "GET", sessionPath("10.1.0.3", "40000", "198.51.100.7", "8080"), "").wantError(t, 409, "")
	if eb.Reason != "negotiating" || !strings.Contains(eb.Error, "ENOTCONN") {
		t.Errorf("negotiating: %+v", eb)
	}
	eb = e.call(t, "GET", sessionPath("fd00::5", "5353", "2001:db8::53", "53"), "").wantError(t, 409, "")
	if eb.Reason != "policy bypass" {
		t.Errorf("bypass: %+v", eb)
	}
	// No such connection (a wrong port): 404.
	e.call(t, "GET", sessionPath("10.1.0.2", "43123", "198.51.100.7", "443"), "").wantError(t, 404, "")

	for _, tc := range []struct{ path, field string }{
		{"/api/v1/sessions?sport=1&dst=10.0.0.1&dport=2", "src"},
		{"/api/v1/sessions?src=10.0.0.1&dst=10.0.0.1&dport=2", "sport"},
		{"/api/v1/sessions?src=10.0.0.1&sport=1&dport=2", "dst"},
		{"/api/v1/sessions?src=10.0.0.1&sport=1&dst=10.0.0.2", "dport"},
		{sessionPath("10.0.0.256", "1", "10.0.0.1", "2"), "src"},
		{sessionPath("10.0.0.0/8", "1", "10.0.0.1", "2"), "src"},
		{sessionPath("10.0.0.1", "0", "10.0.0.1", "2"), "sport"},
		{sessionPath("10.0.0.1", "1", "host.example", "2"), "dst"},
		{sessionPath("10.0.0.1", "1", "10.0.0.1", "99999"), "dport"},
		{sessionPath("10.0.0.1", "1", "10.0.0.1", "2") + "&proto=tcp", "proto"},
	} {
		e.call(t, "GET", tc.path, "").wantError(t, 400, tc.field)
	}
}

// TestSessionNeverEmpty: an engine that marks a flow encrypted without a
// session ID gets a 500, not an all-zero session ID (docs/protocol.md §17).
func TestSessionNeverEmpty(t *testing.T) {
	e := newEnv(t, "")
	e.fix.SetFlows([]admin.FlowInfo{{ID: 1, Inside: netip.MustParseAddrPort("10.0.0.1:1"),
		Outside: netip.MustParseAddrPort("10.0.0.2:2"), State: "encrypted", Encrypted: true, Role: "A"}})
	r := e.call(t, "GET", sessionPath("10.0.0.1", "1", "10.0.0.2", "2"), "")
	r.wantError(t, 500, "")
	if strings.Contains(string(r.body), "session_id") {
		t.Errorf("body has a session_id: %s", r.body)
	}
	// A session ID with a transcript whose global suboptions cannot be
	// read (cut short, a second option missing, one left over): a 500
	// too, not zeros for TCP_ENO_PEER_GOPT.
	for _, tr := range [][]byte{nil, {0x45, 0x04, 0x02, 0x23}, {0x45, 0x04, 0x02}, {0x45, 0x03, 0x23, 0x45, 0x03, 0x23, 0x45}, {0x45, 0x09, 0x23, 0x45, 0x03, 0x23}} {
		e.fix.SetFlows([]admin.FlowInfo{{ID: 1, Inside: netip.MustParseAddrPort("10.0.0.1:1"),
			Outside: netip.MustParseAddrPort("10.0.0.2:2"), State: "encrypted", Encrypted: true, Role: "A",
			SessionID: admintest.SessionFresh, Transcript: tr}})
		r := e.call(t, "GET", sessionPath("10.0.0.1", "1", "10.0.0.2", "2"), "")
		r.wantError(t, 500, "")
		if strings.Contains(string(r.body), "session_id") {
			t.Errorf("transcript %x: body has a session_id: %s", tr, r.body)
		}
	}
}

func TestConfigGet(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "GET", "/api/v1/config", "")
	var c admin.Config
	r.decode(t, &c)
	if !reflect.DeepEqual(c, e.fix.Config()) {
		t.Errorf("config %+v", c)
	}
	if !strings.Contains(string(r.body), `"rekey_interval": "1h0m0s"`) {
		t.Errorf("rekey_interval not a duration string: %s", r.body)
	}
}

func TestConfigPut(t *testing.T) {
	e := newEnv(t, "")
	before := e.fix.Config()
	r := e.call(t, "PUT", "/api/v1/config", `{"default_policy":"require","policies":[{"prefix":"192.0.2.0/24","policy":"bypass"}],"rekey_interval":"30m","caps":{"flows":1000}}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var res admin.ApplyResult
	r.decode(t, &res)
	want := before
	want.DefaultPolicy = "require"
	want.Policies = []admin.PolicyRule{{Prefix: "192.0.2.0/24", Policy: "bypass"}}
	want.RekeyInterval = admin.Duration(30 * time.Minute)
	want.Caps.Flows = 1000 // the other caps keep their values
	if got := e.fix.Config(); !reflect.DeepEqual(got, want) {
		t.Errorf("applied:\n got %+v\nwant %+v", got, want)
	}
	if !res.Applied || !reflect.DeepEqual(res.Config, want) {
		t.Errorf("result %+v", res)
	}
	if n := len(e.fix.Applies()); n != 1 {
		t.Errorf("%d applies, want 1", n)
	}
}

// TestConfigPutBad: every invalid config is a 400 (or 413/415) naming the
// field, and nothing reaches the Source.
func TestConfigPutBad(t *testing.T) {
	big := `{"policies":[` + strings.Repeat(`{"prefix":"10.0.0.0/8","policy":"bypass"},`, 30000) + `{}]}`
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
		hdr        []string
	}{
		{"malformed", `{"default_policy":`, 400, "", nil},
		{"not json", `default_policy: bypass`, 400, "", nil},
		{"empty", ``, 400, "", nil},
		{"two values", `{} {}`, 400, "", nil},
		{"array", `[]`, 400, "", nil},
		{"unknown field", `{"default_policy":"bypass","mode":"x"}`, 400, "mode", nil},
		{"unknown nested", `{"caps":{"flowz":1}}`, 400, "caps.flowz", nil},
		{"unknown in list", `{"policies":[{"prefix":"10.0.0.0/8","policy":"bypass","prio":1}]}`, 400, "policies[0].prio", nil},
		{"wrong case", `{"Default_Policy":"bypass"}`, 400, "Default_Policy", nil},
		{"wrong type", `{"resumption":"yes"}`, 400, "resumption", nil},
		{"negative uint", `{"rekey_bytes":-1}`, 400, "rekey_bytes", nil},
		{"nested type", `{"caps":{"flows":"many"}}`, 400, "caps.flows", nil},
		{"bad prefix", `{"policies":[{"prefix":"10.0.0.0/33","policy":"bypass"}]}`, 400, "policies[0].prefix", nil},
		{"not a prefix", `{"policies":[{"prefix":"intranet","policy":"bypass"}]}`, 400, "policies[0].prefix", nil},
		{"zone", `{"policies":[{"prefix":"fe80::%eth0/64","policy":"bypass"}]}`, 400, "policies[0].prefix", nil},
		{"mapped v4", `{"policies":[{"prefix":"::ffff:10.0.0.0/104","policy":"bypass"}]}`, 400, "policies[0].prefix", nil},
		{"host bits", `{"policies":[{"prefix":"10.0.0.0/8","policy":"bypass"},{"prefix":"10.1.2.3/16","policy":"bypass"}]}`, 400, "policies[1].prefix", nil},
		{"duplicate prefix", `{"policies":[{"prefix":"10.0.0.0/8","policy":"bypass"},{"prefix":"10.0.0.0/8","policy":"require"}]}`, 400, "policies[1].prefix", nil},
		{"bad policy", `{"policies":[{"prefix":"10.0.0.0/8","policy":"encrypt"}]}`, 400, "policies[0].policy", nil},
		{"bad default", `{"default_policy":"Opportunistic"}`, 400, "default_policy", nil},
		{"bad tep", `{"teps":["x25519","rsa"]}`, 400, "teps[1]", nil},
		{"no teps", `{"teps":[]}`, 400, "teps", nil},
		{"dup aead", `{"aeads":["aes128gcm","aes128gcm"]}`, 400, "aeads[1]", nil},
		{"bad duration", `{"rekey_interval":"fast"}`, 400, "rekey_interval", nil},
		{"number duration", `{"rekey_interval":3600}`, 400, "rekey_interval", nil},
		{"short interval", `{"rekey_interval":"10ms"}`, 400, "rekey_interval", nil},
		{"small rekey bytes", `{"rekey_bytes":1000}`, 400, "rekey_bytes", nil},
		{"nonce len", `{"resume_nonce_len":9}`, 400, "resume_nonce_len", nil},
		{"no flows", `{"caps":{"flows":0}}`, 400, "caps.flows", nil},
		{"huge retransmit", `{"caps":{"retransmit_bytes":1099511627776}}`, 400, "caps.retransmit_bytes", nil},
		{"tiny deliver", `{"caps":{"deliver_bytes":100}}`, 400, "caps.deliver_bytes", nil},
		{"form content", `{"default_policy":"bypass"}`, 415, "", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"text content", `{"default_policy":"bypass"}`, 415, "", []string{"Content-Type", "text/plain"}},
		{"too large", big, 413, "", nil},
		{"query", `{}`, 400, "dry_run", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			before := e.fix.Config()
			path := "/api/v1/config"
			if tc.name == "query" {
				path += "?dry_run=1"
			}
			e.call(t, "PUT", path, tc.body, tc.hdr...).wantError(t, tc.status, tc.field)
			if n := len(e.fix.Applies()); n != 0 {
				t.Errorf("the Source saw %d applies", n)
			}
			if !reflect.DeepEqual(e.fix.Config(), before) {
				t.Errorf("config changed")
			}
		})
	}
}

// TestConfigPutRefused: a config the daemon refuses (a *FieldError from
// ApplyConfig) is a 400 naming its field, and the running config stays.
func TestConfigPutRefused(t *testing.T) {
	e := newEnv(t, "")
	e.fix.MaxFlows = 5000
	before := e.fix.Config()
	e.call(t, "PUT", "/api/v1/config", `{"default_policy":"bypass","caps":{"flows":6000}}`).wantError(t, 400, "caps.flows")
	if !reflect.DeepEqual(e.fix.Config(), before) {
		t.Errorf("config changed")
	}
	// The same document, all of it, within the daemon's limits.
	if r := e.call(t, "PUT", "/api/v1/config", `{"default_policy":"bypass","caps":{"flows":4000}}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if c := e.fix.Config(); c.DefaultPolicy != "bypass" || c.Caps.Flows != 4000 {
		t.Errorf("config %+v", c)
	}
}

func TestCacheFlush(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "POST", "/api/v1/cache/flush", `{"address":"198.51.100.7"}`)
	var fr admin.FlushResult
	r.decode(t, &fr)
	if r.status != 200 || fr.Flushed != 1 || fr.Address != "198.51.100.7" || e.fix.CacheLen() != 2 {
		t.Fatalf("%d %+v, cache %d", r.status, fr, e.fix.CacheLen())
	}
	// Nothing cached for this far side: 0 flushed, not an error.
	r = e.call(t, "POST", "/api/v1/cache/flush", `{"address":"192.0.2.1"}`)
	r.decode(t, &fr)
	if r.status != 200 || fr.Flushed != 0 {
		t.Fatalf("%d %+v", r.status, fr)
	}
	r = e.call(t, "POST", "/api/v1/cache/flush", `{}`)
	fr = admin.FlushResult{}
	r.decode(t, &fr)
	if r.status != 200 || fr.Flushed != 2 || fr.Address != "" || e.fix.CacheLen() != 0 {
		t.Fatalf("all: %d %+v", r.status, fr)
	}
	// An empty JSON body flushes all too.
	if r = e.call(t, "POST", "/api/v1/cache/flush", ""); r.status != 200 {
		t.Fatalf("empty body: %d %s", r.status, r.body)
	}
	want := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1"), {}, {}}
	if got := e.fix.Flushes(); !slices.Equal(got, want) {
		t.Fatalf("flushes %v", got)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		field      string
		hdr        []string
	}{
		{"bad address", `{"address":"198.51.100.0/24"}`, 400, "address", nil},
		{"name", `{"address":"peer.example"}`, 400, "address", nil},
		{"unknown field", `{"addr":"198.51.100.7"}`, 400, "addr", nil},
		{"malformed", `{"address":`, 400, "", nil},
		{"wrong type", `{"address":7}`, 400, "address", nil},
		{"no content type", `{}`, 415, "", []string{"Content-Type", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.fix.Flushes())
			e.call(t, "POST", "/api/v1/cache/flush", tc.body, tc.hdr...).wantError(t, tc.status, tc.field)
			if len(e.fix.Flushes()) != n {
				t.Errorf("the Source saw a flush")
			}
		})
	}
}

func TestToken(t *testing.T) {
	e := newEnv(t, "s3cret")
	for _, path := range []string{"/api/v1/status", "/api/v1/flows", "/api/v1/config", "/metrics", "/debug/pprof/"} {
		e.call(t, "GET", path, "").wantError(t, 401, "")
		r := e.call(t, "GET", path, "", "Authorization", "Bearer wrong")
		r.wantError(t, 401, "")
		if !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate", path)
		}
		e.call(t, "GET", path, "", "Authorization", "Basic czNjcmV0").wantError(t, 401, "")
		if r := e.call(t, "GET", path, "", "Authorization", "Bearer s3cret"); r.status != 200 {
			t.Errorf("%s with token: %d %s", path, r.status, r.body)
		}
	}
	// Health checks and the status page's static assets need no token.
	if r := e.call(t, "GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	if r := e.call(t, "GET", "/ui/", ""); r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Errorf("/ui/: %d", r.status)
	}
	// No change without the right token.
	e.call(t, "PUT", "/api/v1/config", `{"default_policy":"bypass"}`, "Authorization", "Bearer s3cre").wantError(t, 401, "")
	e.call(t, "POST", "/api/v1/cache/flush", `{}`).wantError(t, 401, "")
	if len(e.fix.Applies()) != 0 || len(e.fix.Flushes()) != 0 {
		t.Errorf("change applied without the token")
	}
	// With a token, a non-loopback Host is fine (the token is the guard).
	if r := e.call(t, "GET", "/api/v1/status", "", "Authorization", "Bearer s3cret", "Host", "appliance.example:9470"); r.status != 200 {
		t.Errorf("token + name host: %d", r.status)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	e := newEnv(t, "")
	r := e.call(t, "DELETE", "/api/v1/config", "")
	r.wantError(t, 405, "")
	if got := r.header.Get("Allow"); got != "GET, PUT" {
		t.Errorf("Allow %q", got)
	}
	e.call(t, "POST", "/api/v1/flows", "{}").wantError(t, 405, "")
	e.call(t, "GET", "/api/v1/cache/flush", "").wantError(t, 405, "")
	e.call(t, "PUT", "/healthz", "{}").wantError(t, 405, "")
	e.call(t, "GET", "/api/v1/nope", "").wantError(t, 404, "")
	e.call(t, "GET", "/api/v2/flows", "").wantError(t, 404, "")
	if len(e.fix.Applies()) != 0 || len(e.fix.Flushes()) != 0 {
		t.Errorf("change applied")
	}
}

// TestHostCheck: without a token, a request naming a host (what a browser
// sends after DNS rebinding) is refused.
func TestHostCheck(t *testing.T) {
	e := newEnv(t, "")
	e.call(t, "GET", "/api/v1/status", "", "Host", "attacker.example").wantError(t, 403, "")
	e.call(t, "PUT", "/api/v1/config", `{"default_policy":"bypass"}`, "Host", "attacker.example:9470").wantError(t, 403, "")
	for _, h := range []string{"localhost:9470", "127.0.0.1:9470", "[::1]:9470", "127.0.0.1"} {
		if r := e.call(t, "GET", "/api/v1/status", "", "Host", h); r.status != 200 {
			t.Errorf("Host %s: %d", h, r.status)
		}
	}
	if len(e.fix.Applies()) != 0 {
		t.Errorf("change applied")
	}
}

func TestPprof(t *testing.T) {
	e := newEnv(t, "")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
		if r := e.call(t, "GET", path, ""); r.status != 200 || len(r.body) == 0 {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	if r := e.call(t, "GET", "/debug/pprof/nosuchprofile", ""); r.status != 404 {
		t.Errorf("unknown profile: %d", r.status)
	}
}

func TestFlowIDsAreStrings(t *testing.T) {
	// IDs stay exact for any uint64 (JSON numbers lose them past 2^53).
	e := newEnv(t, "")
	r := e.call(t, "GET", "/api/v1/flows?address=fd00::5", "")
	if !strings.Contains(string(r.body), `"id": "`+bigID+`"`) {
		t.Errorf("%s", r.body)
	}
	if _, err := strconv.ParseUint(bigID, 10, 64); err != nil {
		t.Fatal(err)
	}
}
