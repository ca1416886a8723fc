package control

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/memport"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/flow"
)

// TestBusyRatioPerReader: the busy ratio was measured from one baseline
// that every reading moved, so a status poll each second left a Prometheus
// scrape just after it the share of the few milliseconds since the poll.
// Here a worker is busy the whole first 20 s and idle after; the status
// page polls every second, and a scrape 10 ms after the last poll must
// still see the worker busy nearly all of its window (it saw 0).
func TestBusyRatioPerReader(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var m busyMeter
	m.start(t0, 1)
	busyAt := func(d time.Duration) []time.Duration { return []time.Duration{min(d, 20*time.Second)} }
	for s := 1; s <= 20; s++ {
		d := time.Duration(s) * time.Second
		if r := m.read(t0.Add(d), busyAt(d))[0].BusyRatio; r != 1 {
			t.Fatalf("poll at %v: busy ratio %v, want 1", d, r)
		}
	}
	d := 20*time.Second + 10*time.Millisecond
	got := m.read(t0.Add(d), busyAt(d))[0]
	if got.BusyRatio < 0.99 || got.BusySeconds != 20 {
		t.Fatalf("scrape 10 ms after a poll: busy ratio %v, %v s busy; want about 1 (busy over at least %v)", got.BusyRatio, got.BusySeconds, busyWindow)
	}
	// Idle from then on: within two windows every reader sees 0.
	d += 2 * busyWindow
	if r := m.read(t0.Add(d), busyAt(d))[0].BusyRatio; r > 0.5 {
		t.Fatalf("after %v idle: busy ratio %v", 2*busyWindow, r)
	}
	d += busyWindow
	if r := m.read(t0.Add(d), busyAt(d))[0].BusyRatio; r != 0 {
		t.Fatalf("after %v idle: busy ratio %v, want 0", 3*busyWindow, r)
	}
}

// TestCountersReachMetrics: the negotiated set's overflows and store
// errors, the refused flow memory and the workers' own events (fast-path
// map errors, flow-table evictions, handler bugs, ...) were only logged
// when tcpincd stopped. They are metrics now.
func TestCountersReachMetrics(t *testing.T) {
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Negotiated = engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: 1})
	far := netip.AddrPortFrom(b4, 443)
	for port := range uint16(2) {
		eng.Negotiated.Add(netip.AddrPortFrom(a4, 1000+port), far, time.Time{}) // the second finds it full
	}
	src, err := NewAdminSource(newAppliance(t, 2, eng.NewHandler), eng, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	for name, want := range map[string]float64{
		"tcpinc_negotiated_set_entries":                            1,
		"tcpinc_negotiated_set_overflows_total":                    1,
		"tcpinc_negotiated_set_store_errors_total":                 0,
		"tcpinc_flow_memory_refused_total":                         0,
		`tcpinc_worker_events_total{event="fastpath_errors"}`:      0,
		`tcpinc_worker_events_total{event="flow_table_evictions"}`: 0,
		`tcpinc_worker_events_total{event="invalid_verdicts"}`:     0,
		`tcpinc_worker_events_total{event="kick_errors"}`:          0,
		`tcpinc_worker_events_total{event="bad_commits"}`:          0,
		`tcpinc_worker_events_total{event="unparsed"}`:             0,
	} {
		if got := metricValue(t, hs.URL, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestFlowsByStateAtZero: tcpinc_flows had no series for a state without
// flows, so an alert on tcpinc_flows{state="encrypted"} == 0 never fired.
// Every state is exported, at 0 when no flow is in it, also in the status
// and with the engine off.
func TestFlowsByStateAtZero(t *testing.T) {
	src := flowSource(t)
	addFlows(t, src, 2) // a handshake (syn-sent) and a plain flow
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	want := map[string]uint64{}
	for _, st := range engine.StateNames() {
		want[st] = 0
	}
	want["syn-sent"], want["plain"] = 1, 1
	if got := src.Counters().FlowsByState; !maps.Equal(got, want) {
		t.Errorf("flows by state %v, want %v", got, want)
	}
	for st, n := range want {
		if got := metricValue(t, hs.URL, `tcpinc_flows{state="`+st+`"}`); got != float64(n) {
			t.Errorf("tcpinc_flows{state=%q} = %v, want %v", st, got, n)
		}
	}
	// With the engine off no flow is encrypted: 0, not no series.
	off, err := NewAdminSource(newAppliance(t, 1, nil), nil, AdminInfo{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	clear(want)
	for _, st := range engine.StateNames() {
		want[st] = 0
	}
	if got := off.Counters().FlowsByState; !maps.Equal(got, want) {
		t.Errorf("engine off: flows by state %v, want %v", got, want)
	}
}

// documentedFamilies are the tcpinc_ metric families api/openapi.yaml
// promises under /metrics.
func documentedFamilies(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Description string `yaml:"description"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\btcpinc_[a-z_]+[a-z]`).FindAllString(doc.Paths["/metrics"]["get"].Description, -1)
	slices.Sort(names)
	if len(names) < 30 {
		t.Fatalf("api/openapi.yaml names %d families under /metrics: %v", len(names), names)
	}
	return slices.Compact(names)
}

// TestMetricsDocumentedFamilies scrapes /metrics from an AdminSource over
// running workers and engines, as tcpincd sets it up (two workers, so that
// there are hand-off lanes), and finds every family the API documents. Four
// were promised and never exported: tcpinc_queue_bytes and
// tcpinc_queue_capacity_bytes (nothing set Counters.Queues: the per-flow
// buffers have per-flow caps, and their memory is tcpinc_flow_memory_bytes;
// no longer documented), and the AF_XDP rings of tcpinc_ring_used_slots and
// tcpinc_ring_size_slots, which tcpincd now reads (AdminInfo.Rings; the
// netns test TestAdminAPIInNetns checks those).
func TestMetricsDocumentedFamilies(t *testing.T) {
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	src, err := NewAdminSource(newAppliance(t, 2, eng.NewHandler), eng, AdminInfo{
		Version: "t", FastPath: true,
		Ports: []admin.PortStatus{
			{Name: "inside", Backend: "afxdp", BackendReason: "backend: afxdp in the configuration"},
			{Name: "outside", Backend: "afxdp", BackendReason: "backend: afxdp in the configuration"},
		},
		KernelPath:      func() admin.PathCounters { return admin.PathCounters{} },
		FastPathEntries: func() (int, error) { return 0, nil },
		Backend: func() []admin.BackendCounters {
			return []admin.BackendCounters{{Port: "inside", Backend: "afxdp", Counts: map[string]uint64{"rx_dropped": 0}}}
		},
		PortMTU:  func(int) (int, int) { return 1500, 1500 },
		PortLink: func(int) string { return "up" },
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range documentedFamilies(t) {
		if f := fams[name]; f == nil || len(f.Metric) == 0 {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// TestFastPathCountReused: counting the fast path's flows walks the kernel's
// map, so a count is reused for fastPathEvery (the status page asks every
// second); one that failed is not known.
func TestFastPathCountReused(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var c fastPathCount
	walks, entries, fail := 0, 6, false
	count := func() (int, error) {
		walks++
		if fail {
			return 0, errors.New("map gone")
		}
		return entries, nil
	}
	for _, step := range []struct {
		at    time.Duration
		flows uint64
		ok    bool
		walks int
	}{
		{0, 3, true, 1},
		{time.Second, 3, true, 1},
		{fastPathEvery - time.Millisecond, 3, true, 1},
		{fastPathEvery, 5, true, 2}, // entries 9 by then: a half entry is a flow
		{2 * fastPathEvery, 0, false, 3},
	} {
		if step.walks == 2 {
			entries = 9
		}
		if step.walks == 3 {
			fail = true
		}
		flows, ok := c.read(t0.Add(step.at), count)
		if flows != step.flows || ok != step.ok || walks != step.walks {
			t.Fatalf("at %v: %d flows, %v, %d walks; want %d, %v, %d", step.at, flows, ok, walks, step.flows, step.ok, step.walks)
		}
	}
}

// TestFastPathFlowsCounted: a plain connection goes on the kernel fast path
// (here the in-memory model of it), where the engine sees none of its data
// and forgets it engine.plain_retention after its handshake; the status
// and /metrics count it there (before, nothing did).
func TestFastPathFlowsCounted(t *testing.T) {
	discardFrame := func([]byte) {}
	in, err := memport.New(64, 2048, discardFrame)
	if err != nil {
		t.Fatal(err)
	}
	out, err := memport.New(64, 2048, discardFrame)
	if err != nil {
		t.Fatal(err)
	}
	b := memport.NewBump([]*memport.Port{in}, []*memport.Port{out}, [2]func([]byte){discardFrame, discardFrame}, true, 64)
	eng, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	a, err := appliance.New([]appliance.Port{in}, []appliance.Port{out}, appliance.Options{FastPath: b, NewHandler: eng.NewHandler})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewAdminSource(a, eng, AdminInfo{Version: "t", FastPath: true, FastPathEntries: b.FastPathLen})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	// The inside host's SYN, the far side's SYN-ACK without TCP-ENO: plain.
	b.Arrive(appliance.Inside, seg(a4, b4, 40000, 80, packettest.SYN, 100, 0, nil))
	b.Arrive(appliance.Outside, seg(b4, a4, 80, 40000, packettest.SYN|packettest.ACK, 500, 101, nil))
	k := flow.MakeKey(a4.AsSlice(), b4.AsSlice(), 40000, 80)
	deadline := time.Now().Add(10 * time.Second)
	for !b.Listed(k) || !b.Listed(k.Reverse()) {
		if time.Now().After(deadline) {
			t.Fatal("the plain connection did not go on the fast path")
		}
		time.Sleep(time.Millisecond)
	}
	hs := httptest.NewServer(admin.NewServer(src, admin.Options{}).Handler())
	defer hs.Close()
	if got := metricValue(t, hs.URL, "tcpinc_fastpath_flows"); got != 1 {
		t.Errorf("tcpinc_fastpath_flows = %v, want 1", got)
	}
	api, err := admin.NewClient(hs.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := api.Status(t.Context())
	if err != nil || st.Flows.FastPath == nil || *st.Flows.FastPath != 1 {
		t.Fatalf("status flows %+v, %v; want fast_path 1", st.Flows, err)
	}
}
