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
	"golang.org/x/sys/unix"
)

// NegotiatedCapacity is the size of the negotiated set for queues workers
// whose engines track maxFlows flows each: twice what the live records can
// hold, so released entries have room beside them.
func NegotiatedCapacity(queues, maxFlows int) int { return 2 * queues * maxFlows }

// OpenNegotiated returns the engines' negotiated set, pinned in dir as a BPF
// map named after this network namespace and the two ports, with what a
// previous daemon left there: its released entries keep their deadlines,
// the ones it still held (live records when it stopped or crashed) get
// engine.IdleLinger from now, expired ones are deleted. The deadlines, in
// the set and in the map, are on BootTime. Close the returned map after
// the workers stopped; the pin stays for the next daemon.
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
	set := engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: capacity, Store: m, Mono: BootTime})
	now := BootTime()
	var held, kept, expired int
	type entry struct {
		in, out netip.AddrPort
		v       int64
	}
	var prior []entry
	err = m.Entries(func(in, out netip.AddrPort, v int64) { prior = append(prior, entry{in, out, v}) })
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("read %s: %w", m.Path(), err)
	}
	for _, e := range prior {
		switch {
		case e.v == 0:
			held++
		case e.v <= now:
			_ = m.Delete(e.in, e.out)
			expired++
			continue
		default:
			kept++
		}
		// Rewritten on the set's clock: a held one now has a deadline,
		// and a deadline on another clock (an older tcpincd wrote the
		// wall clock's) is read as engine.IdleLinger.
		left := time.Duration(e.v - now)
		if e.v == 0 {
			left = 0
		}
		set.Restore(e.in, e.out, left) // the map held them: they fit
	}
	log.Info("negotiated set", "pin", m.Path(), "capacity", capacity, "loaded_held", held, "loaded_released", kept, "expired", expired)
	return set, m, nil
}

// BootTime is CLOCK_BOOTTIME in nanoseconds: the clock of the negotiated
// set's deadlines, in memory and in the pinned map. It never steps, and it
// runs as long as the pin lasts (a reboot empties the BPF file system), so
// a restarted daemon reads the deadlines as the previous one meant them.
// The wall clock can step (NTP after a boot without a real-time clock): a
// step forward between two daemons made the second drop entries the first
// still kept.
func BootTime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(err) // every kernel since 2.6.39 has it
	}
	return ts.Nano()
}
