package control

import (
	"log/slog"
	"maps"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
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
