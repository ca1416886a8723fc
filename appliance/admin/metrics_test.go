package admin_test

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

// scrape GETs /metrics and parses the text exposition.
func scrape(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	r := e.call(t, "GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels are exactly kv
// (name, value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(kv)/2 {
			continue
		}
		for _, l := range m.Label {
			found := false
			for i := 0; i+1 < len(kv); i += 2 {
				if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

type sample struct {
	name   string
	labels []string
	want   float64
	typ    dto.MetricType
}

func TestMetricsFollowCounters(t *testing.T) {
	e := newEnv(t, "")
	C, G := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	samples := []sample{
		{"tcpinc_build_info", []string{"version", "v0.5.0-test"}, 1, G},
		{"tcpinc_port_frames_total", []string{"port", "inside", "direction", "rx"}, 1001, C},
		{"tcpinc_port_bytes_total", []string{"port", "outside", "direction", "tx"}, 1_500_004, C},
		{"tcpinc_path_frames_total", []string{"path", "fast"}, 5000, C},
		{"tcpinc_path_bytes_total", []string{"path", "engine"}, 2_000_000, C},
		{"tcpinc_path_frames_total", []string{"path", "passthrough"}, 200, C},
		{"tcpinc_flows", []string{"state", "encrypted"}, 2, G},
		{"tcpinc_flows", []string{"state", "plain"}, 2, G},
		{"tcpinc_flows", []string{"state", "syn-sent"}, 1, G},
		{"tcpinc_flows", []string{"state", "closed"}, 0, G},
		{"tcpinc_fastpath_flows", nil, 21, G},
		{"tcpinc_handshakes_total", []string{"result", "encrypted"}, 41, C},
		{"tcpinc_handshakes_total", []string{"result", "failed"}, 2, C},
		{"tcpinc_fallbacks_total", []string{"reason", "no_eno"}, 15, C},
		{"tcpinc_fallbacks_total", []string{"reason", "bypass"}, 2, C},
		{"tcpinc_drops_total", []string{"reason", "no_tx_frame"}, 3, C},
		{"tcpinc_fragments_total", []string{"event", "reassembled"}, 8, C},
		{"tcpinc_engine_events_total", []string{"event", "challenge_acks"}, 9, C},
		{"tcpinc_engine_events_total", []string{"event", "ptb_translated"}, 2, C},
		{"tcpinc_auth_failures_total", nil, 1, C},
		{"tcpinc_rekeys_total", nil, 5, C},
		{"tcpinc_resumptions_total", nil, 11, C},
		{"tcpinc_init_retransmissions_total", nil, 4, C},
		{"tcpinc_stray_resets_total", nil, 7, C},
		{"tcpinc_dup_acks_originated_total", nil, 6, C},
		{"tcpinc_frames_sealed_total", nil, 900, C},
		{"tcpinc_frames_opened_total", nil, 880, C},
		{"tcpinc_resumption_cache_entries", nil, 3, G},
		{"tcpinc_flow_memory_bytes", nil, 5 << 20, G},
		{"tcpinc_flow_memory_limit_bytes", nil, 1 << 30, G},
		{"tcpinc_flow_memory_refused_total", nil, 13, C},
		{"tcpinc_worker_events_total", []string{"event", "fastpath_errors"}, 14, C},
		{"tcpinc_worker_events_total", []string{"event", "flow_table_evictions"}, 15, C},
		{"tcpinc_negotiated_set_entries", nil, 16, G},
		{"tcpinc_negotiated_set_overflows_total", nil, 17, C},
		{"tcpinc_negotiated_set_store_errors_total", nil, 18, C},
		{"tcpinc_ring_used_slots", []string{"port", "outside", "queue", "1", "ring", "fill"}, 2000, G},
		{"tcpinc_ring_size_slots", []string{"port", "inside", "queue", "0", "ring", "rx"}, 2048, G},
		{"tcpinc_worker_busy_seconds_total", []string{"worker", "0"}, 12.5, C},
		{"tcpinc_worker_busy_ratio", []string{"worker", "1"}, 0.0625, G},
		{"tcpinc_port_backend", []string{"port", "outside", "backend", "afxdp", "reason", "auto: the driver offers zero-copy AF_XDP on both ports"}, 1, G},
		{"tcpinc_port_backend_events_total", []string{"port", "inside", "backend", "afxdp", "event", "rx_frames"}, 7000, C},
		{"tcpinc_port_mtu_bytes", []string{"port", "outside"}, 9000, G},
		{"tcpinc_port_segment_mtu_bytes", []string{"port", "outside"}, 3822, G},
		{"tcpinc_port_link_up", []string{"port", "inside"}, 1, G},
		{"tcpinc_port_link_up", []string{"port", "outside"}, 0, G},
	}
	fams := scrape(t, e)
	for _, s := range samples {
		got, ok := value(fams, s.name, s.labels...)
		if !ok {
			t.Errorf("%s%v: missing", s.name, s.labels)
			continue
		}
		if got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
		if typ := fams[s.name].GetType(); typ != s.typ {
			t.Errorf("%s is a %v, want %v", s.name, typ, s.typ)
		}
	}

	// The counters move: the next scrape reads a new snapshot.
	e.fix.UpdateCounters(func(c *admin.Counters) {
		c.Ports[0].Frames += 10
		c.Handshakes["encrypted"]++
		c.AuthFailures += 2
		c.FlowsByState["key-exchange"] = 1
	})
	fams = scrape(t, e)
	for _, s := range []sample{
		{"tcpinc_port_frames_total", []string{"port", "inside", "direction", "rx"}, 1011, C},
		{"tcpinc_handshakes_total", []string{"result", "encrypted"}, 42, C},
		{"tcpinc_auth_failures_total", nil, 3, C},
		{"tcpinc_flows", []string{"state", "key-exchange"}, 1, G},
	} {
		if got, _ := value(fams, s.name, s.labels...); got != s.want {
			t.Errorf("after update: %s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
}

// TestMetricsConventions runs promlint over every tcpinc_ family: _total
// only on counters, base units, help text.
func TestMetricsConventions(t *testing.T) {
	e := newEnv(t, "")
	problems, err := testutil.GatherAndLint(e.srv.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "tcpinc_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	fams := scrape(t, e)
	var names []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "tcpinc_") {
			continue
		}
		names = append(names, name)
		isCounter := f.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v and _total suffix disagree", name, f.GetType())
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
	}
	sort.Strings(names)
	if len(names) != 37 {
		t.Errorf("%d tcpinc families, want 37: %v", len(names), names)
	}
	// The Go runtime and process collectors are there too.
	if fams["go_goroutines"] == nil {
		t.Errorf("no go_goroutines")
	}
}

// TestMetricsHelpSaysWhatIsCounted: two help texts said less than their
// counters count. dup_acks_originated_total counts the duplicate ACKs sent
// to inside hosts for their held segments (engine hosthold.go) and those
// sent to far sides without SACK blocks (output.go dupAckR), not only "with
// SACK blocks to a far side"; port_frames_total counts only the frames that
// reached the workers, not those the kernel fast path forwarded.
func TestMetricsHelpSaysWhatIsCounted(t *testing.T) {
	fams := scrape(t, newEnv(t, ""))
	for name, words := range map[string][]string{
		"tcpinc_dup_acks_originated_total": {"far side", "inside host", "when the connection has SACK"},
		"tcpinc_port_frames_total":         {"workers", "user space", "not those the XDP fast path forwarded"},
		"tcpinc_port_bytes_total":          {"tcpinc_port_frames_total"},
	} {
		help := fams[name].GetHelp()
		for _, w := range words {
			if !strings.Contains(help, w) {
				t.Errorf("%s help %q does not say %q", name, help, w)
			}
		}
	}
}

// TestFastPathFlows: the flows on the kernel fast path, which the engines
// forget while they last (engine.plain_retention after the handshake of a
// plain one), are in the status and a gauge; neither is there when they
// are not known (fast path off).
func TestFastPathFlows(t *testing.T) {
	e := newEnv(t, "")
	var st admin.StatusDoc
	e.call(t, "GET", "/api/v1/status", "").decode(t, &st)
	if st.Flows.FastPath == nil || *st.Flows.FastPath != 21 {
		t.Errorf("status flows %+v, want fast_path 21", st.Flows)
	}
	if got, ok := value(scrape(t, e), "tcpinc_fastpath_flows"); !ok || got != 21 {
		t.Errorf("tcpinc_fastpath_flows %v, %v; want 21", got, ok)
	}
	e.fix.UpdateCounters(func(c *admin.Counters) { c.FastPathKnown = false })
	st = admin.StatusDoc{}
	e.call(t, "GET", "/api/v1/status", "").decode(t, &st)
	if st.Flows.FastPath != nil {
		t.Errorf("status flows %+v: fast_path although it is not known", st.Flows)
	}
	if _, ok := value(scrape(t, e), "tcpinc_fastpath_flows"); ok {
		t.Error("tcpinc_fastpath_flows exported although not known")
	}
}

// TestFastPathBytesNotCounted: the kernel fast path's XDP program counts
// frames, not bytes (tcpincd's KernelPath). Its bytes were shown as a count
// of 0 (paths.fast.bytes, tcpinc_path_bytes_total{path="fast"}, "0 B" in
// tcpincctl status) while it carried most of the plain traffic; now the
// status has no bytes for it and /metrics no series, and a path that
// counts bytes keeps both, 0 included.
func TestFastPathBytesNotCounted(t *testing.T) {
	e := newEnv(t, "")
	e.fix.UpdateCounters(func(c *admin.Counters) {
		c.Paths = map[string]admin.PathCounters{"fast": {Frames: 5000, NoBytes: true}, "passthrough": {Frames: 0, Bytes: 0}}
	})
	var st struct {
		Counters struct {
			Paths map[string]map[string]any `json:"paths"`
		} `json:"counters"`
	}
	e.call(t, "GET", "/api/v1/status", "").decode(t, &st)
	if p := st.Counters.Paths["fast"]; p["frames"] != 5000.0 || p["bytes"] != nil {
		t.Errorf("status paths.fast %v, want frames 5000 and no bytes", p)
	}
	if p := st.Counters.Paths["passthrough"]; p["bytes"] != 0.0 {
		t.Errorf("status paths.passthrough %v, want bytes 0", p)
	}
	fams := scrape(t, e)
	if v, ok := value(fams, "tcpinc_path_bytes_total", "path", "fast"); ok {
		t.Errorf("tcpinc_path_bytes_total{path=\"fast\"} exported (%v) although the path counts no bytes", v)
	}
	if v, ok := value(fams, "tcpinc_path_frames_total", "path", "fast"); !ok || v != 5000 {
		t.Errorf("tcpinc_path_frames_total{path=\"fast\"} %v, %v; want 5000", v, ok)
	}
	if _, ok := value(fams, "tcpinc_path_bytes_total", "path", "passthrough"); !ok {
		t.Error("tcpinc_path_bytes_total{path=\"passthrough\"} missing at 0")
	}
}
