package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}
	for _, c := range []struct{ p, want float64 }{
		{50, 5}, {90, 9}, {99, 10}, {100, 10}, {10, 1}, {0.1, 1},
	} {
		if got := Percentile(append([]float64(nil), xs...), c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	// 200 samples 1..200: nearest rank p99 is the 198th.
	var big []float64
	for i := 200; i >= 1; i-- {
		big = append(big, float64(i))
	}
	if got := Percentile(big, 99); got != 198 {
		t.Errorf("p99 of 1..200 = %v, want 198", got)
	}
	for _, p := range []float64{0, -1, 101, math.NaN()} {
		if got := Percentile([]float64{1}, p); !math.IsNaN(got) {
			t.Errorf("p%v = %v, want NaN", p, got)
		}
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("empty: %v", got)
	}
}

func TestParseConnStats(t *testing.T) {
	s, err := ParseConnStats([]byte(`{"conns":18104,"errors":2,"first_error":"dial tcp4: i/o timeout","seconds":2.0,"connect_us":{"p50":34,"p99":419},"first_byte_us":{"p50":173,"p99":733}}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := ConnStats{Conns: 18104, Errors: 2, FirstError: "dial tcp4: i/o timeout", Seconds: 2,
		Connect: Latencies{34, 419}, FirstByte: Latencies{173, 733}}
	if s != want {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	if s.Rate() != 9052 {
		t.Errorf("rate %v", s.Rate())
	}
	for _, bad := range []string{
		``, `not json`, `{"conns":1,"seconds":0}`, `{"conns":-1,"seconds":1}`, `{"conns":1,"errors":-2,"seconds":1}`,
		`{"conns":0,"errors":16,"first_error":"connection refused","seconds":5}`,
	} {
		if _, err := ParseConnStats([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	_, err = ParseConnStats([]byte(`{"conns":0,"errors":16,"first_error":"connection refused","seconds":5}`))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a run with no connection should say why: %v", err)
	}
}

func FuzzParseConnStats(f *testing.F) {
	f.Add([]byte(`{"conns":3,"errors":0,"seconds":1,"connect_us":{"p50":1,"p99":2},"first_byte_us":{"p50":3,"p99":4}}`))
	f.Add([]byte(`{"conns":0,"errors":1,"first_error":"x","seconds":1e308}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseConnStats(b)
		if err == nil && (s.Conns <= 0 || !(s.Seconds > 0) || math.IsNaN(s.Rate())) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// TestConnLoad runs the real client against the real server on loopback.
func TestConnLoad(t *testing.T) {
	var lns []net.Listener
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ServeConns(ctx, lns); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	port := uint16(lns[0].Addr().(*net.TCPAddr).Port)
	st, err := RunConnClient(context.Background(), ConnClientConfig{Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Concurrency: 1, Count: 50})
	if err != nil {
		t.Fatal(err)
	}
	if st.Conns != 50 || st.Errors != 0 {
		t.Fatalf("sequential: %+v", st)
	}
	if !(st.Connect.P50 <= st.FirstByte.P50 && st.FirstByte.P50 <= st.FirstByte.P99 && st.FirstByte.P50 > 0) {
		t.Errorf("latencies out of order: %+v", st)
	}
	st, err = RunConnClient(context.Background(), ConnClientConfig{Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Concurrency: 4, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Conns < 10 || st.Errors != 0 || st.Seconds < 0.2 {
		t.Errorf("rate run: %+v", st)
	}
	// Nothing listens on a freed port: every connection fails and is
	// counted, none completes.
	free, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := uint16(free.Addr().(*net.TCPAddr).Port)
	free.Close()
	st, err = RunConnClient(context.Background(), ConnClientConfig{Addr: netip.MustParseAddr("127.0.0.1"), Port: freePort, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st.Conns != 0 || st.Errors != 3 || st.FirstError == "" {
		t.Errorf("refused: %+v", st)
	}
	js, _ := json.Marshal(st)
	if _, err := ParseConnStats(js); err == nil {
		t.Error("a run with no connection parsed without error")
	}
	if _, err := RunConnClient(context.Background(), ConnClientConfig{Addr: netip.MustParseAddr("127.0.0.1"), Port: port}); err == nil {
		t.Error("no count and no duration: want error")
	}
}

// TestConnTool runs the subcommands as the harness does, in process.
func TestConnTool(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	srvOut := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- ConnTool(ctx, []string{"conn-server", "-addr", "127.0.0.1", "-port", itoa(port), "-ports", "1"}, srvOut)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; !strings.Contains(srvOut.String(), "listening"); i++ {
		if i > 200 {
			t.Fatal("server never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out bytes.Buffer
	if err := ConnTool(context.Background(), []string{"conn-client", "-addr", "127.0.0.1", "-port", itoa(port), "-ports", "1", "-c", "1", "-n", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	st, err := ParseConnStats(out.Bytes())
	if err != nil || st.Conns != 5 {
		t.Fatalf("%+v %v (%s)", st, err, out.String())
	}
	for _, bad := range [][]string{
		nil, {"conn-nope", "-addr", "127.0.0.1"}, {"conn-client", "-addr", "x"}, {"conn-client", "-addr", "127.0.0.1", "-port", "65535", "-ports", "2"},
	} {
		if err := ConnTool(context.Background(), bad, &out); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestX25519Rate(t *testing.T) {
	r, err := X25519Rate(50*time.Millisecond, 2)
	if err != nil {
		t.Fatal(err)
	}
	// One keygen+ECDH takes tens of µs on any machine this runs on.
	if r < 100 || r > 1e7 {
		t.Errorf("X25519 rate %v/s", r)
	}
}

func TestEngineCounts(t *testing.T) {
	a := &EngineCounts{Encrypted: 10, Resumed: 2, Fallback: 1}
	b := &EngineCounts{Encrypted: 110, Resumed: 92, Fallback: 1, Failed: 3}
	d := b.Sub(a)
	if *d != (EngineCounts{Encrypted: 100, Resumed: 90, Failed: 3}) {
		t.Errorf("sub: %+v", d)
	}
	if got := d.String(); got != "100 encrypted, 90 resumed (90 %), 0 fallback, 3 failed" {
		t.Errorf("string: %q", got)
	}
	if b.Sub(nil) != nil || (*EngineCounts)(nil).String() != "–" {
		t.Error("nil counts")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestConnMarkdown(t *testing.T) {
	r := sampleReport()
	r.Settings.ConnDuration, r.Settings.ConnConcurrency, r.Settings.FirstByteCount = 5*time.Second, 16, 200
	r.X25519 = &X25519Limit{Cores: 2, One: 15000, All: 29000, IdleBusy: 3}
	st := func(conns int, p50, p99, c50 float64) ConnStats {
		return ConnStats{Conns: conns, Seconds: 5, Connect: Latencies{c50, c50 * 3}, FirstByte: Latencies{p50, p99}}
	}
	fb := st(200, 300, 900, 100)
	r.Results[0].Conn = []*ConnVariant{{Rate: []ConnStats{st(20000, 500, 2000, 0), st(25000, 400, 1800, 0), st(15000, 600, 2500, 0)},
		Busy: []float64{90, 95, 99}, FirstByte: &fb}}
	fresh, resumed := st(200, 1300, 4000, 110), st(200, 400, 1000, 100)
	r.Results = append(r.Results, &Result{Case: CaseEncrypted, Conn: []*ConnVariant{
		{Variant: VariantFresh, Rate: []ConnStats{st(5000, 9000, 30000, 0)}, Busy: []float64{100}, CPUPerConn: []float64{412.4}, FirstByte: &fresh,
			RateEngine: &EngineCounts{Encrypted: 1000}, FirstByteEngine: &EngineCounts{Encrypted: 200}},
		{Variant: VariantResumed, Rate: []ConnStats{st(7500, 7000, 20000, 0)}, Busy: []float64{100}, FirstByte: &resumed,
			RateEngine: &EngineCounts{Encrypted: 1500, Resumed: 1200}, FirstByteEngine: &EngineCounts{Encrypted: 200, Resumed: 200},
			Errors: []string{"rate run 2: 3 failed connections, first: timeout"}},
	}})
	md := r.Markdown()
	for _, want := range []string{
		"### New connections per second hA → hB (16 in flight, 5 s per run, 3 runs)",
		"| (a) kernel | 3000 | **4000** | 5000 | 500 | 2000 | 0 | 90-99 | 1.00× | – |",
		"| (e) tcpinc-crypt, resumption off | 1000 | **1000** | 1000 | 9000 | 30000 | 0 | 100-100 | 0.25× | 412 | 1000 encrypted, 0 resumed (0 %), 0 fallback, 0 failed |",
		"| (e) tcpinc-crypt, resumption on | 1500 | **1500** | 1500 | 7000 | 20000 | 0 | 100-100 | 0.38× | – | 1500 encrypted, 1200 resumed (80 %), 0 fallback, 0 failed |",
		"**15000** per second on 1 core, **29000** on 2 cores",
		"**14500** fresh connections per second",
		"### First-byte delay hA → hB (200 sequential connections, µs)",
		"| (a) kernel | 100 | 300 | **300** | 900 | 200 | +0 µs | – |",
		"| (e) tcpinc-crypt, resumption off | 110 | 330 | **1300** | 4000 | 1190 | +1000 µs | 200 encrypted, 0 resumed (0 %), 0 fallback, 0 failed |",
		"| (e) tcpinc-crypt, resumption on | 100 | 300 | **400** | 1000 | 300 | +100 µs | 200 encrypted, 200 resumed (100 %), 0 fallback, 0 failed |",
		"  - connections (resumption on): rate run 2: 3 failed connections, first: timeout",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
