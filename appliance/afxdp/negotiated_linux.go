package afxdp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/xsk"
)

// NegotiatedCapacity is the size of the negotiated set for queues workers
// whose engines track maxFlows flows each: twice what the live records can
// hold, so released entries have room beside them.
func NegotiatedCapacity(queues, maxFlows int) int { return 2 * queues * maxFlows }

// OpenNegotiated returns the engines' negotiated set, pinned in dir as a BPF
// map named after this network namespace and the two ports, with what a
// previous daemon left there: its released entries keep their deadlines,
// the ones it still held (live records when it stopped or crashed) get
// engine.IdleLinger from now, expired ones are deleted. Close the returned
// map after the workers stopped; the pin stays for the next daemon.
func OpenNegotiated(dir, inside, outside string, capacity int, log *slog.Logger) (*engine.NegotiatedSet, *xsk.TupleMap, error) {
	ns, err := xsk.NetnsID()
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace: %w", err)
	}
	// bpffs refuses names with a dot; interface names may have one.
	name := strings.ReplaceAll(fmt.Sprintf("negotiated_%d_%s_%s", ns, inside, outside), ".", "_")
	m, err := xsk.OpenTupleMap(filepath.Join(dir, name), capacity)
	if err != nil {
		return nil, nil, err
	}
	if n := m.Lost(); n > 0 {
		log.Warn("negotiated tuples lost resizing the pinned set (capacity is 2 x queues x max_flows): their connections, if live, will pass as plain", "lost", n, "capacity", capacity)
	}
	set := engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: capacity, Store: m})
	now := time.Now()
	var held, kept, expired int
	type entry struct {
		in, out netip.AddrPort
		v       int64
	}
	var stale, reheld []entry
	err = m.Entries(func(in, out netip.AddrPort, v int64) {
		switch {
		case v == 0:
			reheld = append(reheld, entry{in, out, v})
		case v <= now.UnixNano():
			stale = append(stale, entry{in, out, v})
		default:
			set.Add(in, out, time.Unix(0, v))
			kept++
		}
	})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("read %s: %w", m.Path(), err)
	}
	for _, e := range stale {
		_ = m.Delete(e.in, e.out)
		expired++
	}
	until := now.Add(engine.IdleLinger)
	for _, e := range reheld {
		set.Add(e.in, e.out, until)
		_ = m.Put(e.in, e.out, until.UnixNano())
		held++
	}
	log.Info("negotiated set", "pin", m.Path(), "capacity", capacity, "loaded_held", held, "loaded_released", kept, "expired", expired)
	return set, m, nil
}
