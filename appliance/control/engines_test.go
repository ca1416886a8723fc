package control

import (
	"log/slog"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
)

// TestEnginesShared: NewEngines starts the pool and stocks, every worker
// gets its own engine sharing them, Each sees them all.
func TestEnginesShared(t *testing.T) {
	es, err := NewEngines(config.Default().Engine, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if es.Cache == nil || len(es.keys) != 3 {
		t.Fatalf("cache %v, %d stocks; want a cache and one stock per default TEP", es.Cache, len(es.keys))
	}
	h0, err := es.NewHandler(0)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := es.NewHandler(1)
	if h0 == h1 {
		t.Fatal("two workers share one engine")
	}
	n := 0
	es.Each(func(q int, c *engine.Counters) { n++ })
	if n != 2 {
		t.Fatalf("Each visited %d engines", n)
	}
}
