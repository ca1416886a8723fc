package afxdp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/tcpinc/tcpinc/appliance/negstate"
	"github.com/tcpinc/tcpinc/xsk"
	"golang.org/x/sys/unix"
)

// NegotiatedCapacity is the size of the negotiated set for queues workers
// whose engines track maxFlows flows each: twice what the live records can
// hold, so released entries have room beside them.
func NegotiatedCapacity(queues, maxFlows int) int { return 2 * queues * maxFlows }

// OpenNegotiated opens the map the engines' negotiated set is pinned in,
// in dir, named after this network namespace and the two ports, and
// returns it with what a previous daemon left there since the boot: each
// tuple with the time it had left on BootTime (0: held, a live record
// when it stopped or crashed); expired ones are deleted. found is false
// when nothing was pinned (the first start after a boot). Run the set on
// BootTime with the map as its store, and restore the entries into it
// (engine.NegotiatedSet.Restore). Close the map after the workers
// stopped; the pin stays for the next daemon.
func OpenNegotiated(dir, inside, outside string, capacity int, log *slog.Logger) (m *xsk.TupleMap, prior []negstate.Entry, found bool, err error) {
	ns, err := xsk.NetnsID()
	if err != nil {
		return nil, nil, false, fmt.Errorf("network namespace: %w", err)
	}
	// bpffs refuses names with a dot; interface names may have one.
	name := strings.ReplaceAll(fmt.Sprintf("negotiated_%d_%s_%s", ns, inside, outside), ".", "_")
	m, err = xsk.OpenTupleMap(filepath.Join(dir, name), capacity)
	if err != nil {
		return nil, nil, false, err
	}
	if n := m.Lost(); n > 0 {
		log.Warn("negotiated tuples lost resizing the pinned set (capacity is 2 x queues x max_flows): their connections, if live, will pass as plain", "lost", n, "capacity", capacity)
	}
	now := BootTime()
	var expired []negstate.Entry
	err = m.Entries(func(in, out netip.AddrPort, v int64) {
		// A deadline on another clock (an older tcpincd wrote the wall
		// clock's) comes out as decades: Restore caps it.
		e := negstate.Entry{In: in, Out: out, Left: time.Duration(v - now)}
		switch {
		case v == 0:
			e.Left = 0
		case v <= now:
			expired = append(expired, e)
			return
		}
		prior = append(prior, e)
	})
	if err != nil {
		m.Close()
		return nil, nil, false, fmt.Errorf("read %s: %w", m.Path(), err)
	}
	for _, e := range expired {
		_ = m.Delete(e.In, e.Out)
	}
	log.Info("negotiated set pinned", "pin", m.Path(), "found", m.Found(), "capacity", capacity, "entries", len(prior), "expired", len(expired))
	return m, prior, m.Found(), nil
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
