package admin_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
)

// manyFlows fills a fixture with n flows, half of them encrypted.
func manyFlows(n int) *admintest.Fixture {
	fix := admintest.New()
	flows := make([]admin.FlowInfo, n)
	for i := range flows {
		state := "plain"
		if i%2 == 0 {
			state = "encrypted"
		}
		flows[i] = admin.FlowInfo{
			ID:        uint64(n - i), // reverse order: the server sorts
			Inside:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(1024+i)),
			Outside:   netip.MustParseAddrPort("198.51.100.7:443"),
			State:     state,
			Encrypted: i%2 == 0, Role: "A", TEP: 0x23, AEAD: "aes128gcm", SessionID: admintest.SessionFresh,
			Started: admintest.Start,
		}
	}
	fix.SetFlows(flows)
	return fix
}

// BenchmarkFlowsPage: one page of 1000 flows out of a full default flow
// table (65536), filtered on encryption.
func BenchmarkFlowsPage(b *testing.B) {
	srv := admin.NewServer(manyFlows(65536), admin.Options{Now: func() time.Time { return admintest.Now }})
	h := srv.Handler()
	req := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/flows?encrypted=true&limit=1000&cursor=30000", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkScrape: one /metrics scrape (tcpinc_ families plus the Go and
// process collectors).
func BenchmarkScrape(b *testing.B) {
	srv := admin.NewServer(admintest.New(), admin.Options{})
	h := srv.Handler()
	req := httptest.NewRequest("GET", "http://127.0.0.1/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// TestFlowsPagingMany: paging through 5000 flows given in reverse order
// returns each exactly once, in ascending ID order.
func TestFlowsPagingMany(t *testing.T) {
	const n = 5000
	srv := admin.NewServer(manyFlows(n), admin.Options{})
	c := httptest.NewServer(srv.Handler())
	defer c.Close()
	cl, err := admin.NewClient(c.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	pages := 0
	q := admin.FlowQuery{Limit: 700}
	var ids []string
	for {
		p, err := cl.Flows(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if p.Total != n {
			t.Fatalf("total %d", p.Total)
		}
		for _, f := range p.Flows {
			ids = append(ids, f.ID)
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if pages != 8 || len(ids) != n {
		t.Fatalf("%d pages, %d flows", pages, len(ids))
	}
	for i, id := range ids {
		if id != strconv.Itoa(i+1) {
			t.Fatalf("flow %d has id %s", i, id)
		}
	}
}
