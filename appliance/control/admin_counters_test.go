package control

import (
	"testing"
	"time"
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
