package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/negstate"
	"github.com/tcpinc/tcpinc/xsk"
)

// negotiated is the engines' (or the guards') negotiated set and what keeps
// it for a later daemon: the map pinned under pin_dir, which outlives a
// restart, and the copy in state_dir, which outlives a reboot.
type negotiated struct {
	set   *engine.NegotiatedSet
	pin   *xsk.TupleMap   // nil: pin_dir ""
	file  *negstate.File  // nil: state_dir ""
	saver *negstate.Saver // nil: state_dir ""
	log   *slog.Logger
}

// openNegotiated returns the set with what a previous daemon left: the
// pinned map's entries when it finds one (a restart), the disk copy's when
// it does not (the first start after a boot, or no pin_dir). Each
// restored entry keeps the time it had left, and one a live record held
// gets engine.IdleLinger. Call close after the workers stopped.
func openNegotiated(cfg config.Config, capacity int, log *slog.Logger) (_ *negotiated, err error) {
	n := &negotiated{log: log}
	freshPin := false
	defer func() {
		if err != nil {
			if freshPin {
				// A pin made here, empty, would be taken by the next
				// start for the previous run's (a restart), which would
				// then never read the disk copy the operator puts right.
				_ = n.pin.Remove()
				n.pin = nil
			}
			n.close() // what was opened
		}
	}()
	if cfg.StateDir != "" {
		if n.file, err = negstate.Open(cfg.StateDir, netnsName(), cfg.Inside, cfg.Outside); err != nil {
			return nil, fmt.Errorf("state_dir: %w", err)
		}
	}
	var prior []negstate.Entry
	from := "none"
	if cfg.PinDir != "" {
		var found bool
		if n.pin, prior, found, err = afxdp.OpenNegotiated(cfg.PinDir, cfg.Inside, cfg.Outside, capacity, log); err != nil {
			return nil, fmt.Errorf("pin_dir: %w (pin_dir: \"\" runs without, see the example configuration)", err)
		}
		if found {
			from = "pin"
		}
		freshPin = !found
	}
	if from == "none" && n.file != nil {
		var info negstate.Info
		prior, info, err = n.file.Load()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = nil
			log.Info("negotiated set: no disk copy yet (a first start)", "file", n.file.Path())
		case err != nil:
			// The operator decides (exit status 2: systemd does not
			// restart in a loop, RestartPreventExitStatus).
			return nil, usageError{fmt.Errorf("state_dir: the negotiated set's disk copy is refused: %w; "+
				"move it away to start without it (the connections it lists are then passed, not reset)", err)}
		default:
			from = "disk copy"
			log.Info("negotiated set: loading its disk copy (nothing pinned: the first start since a boot, or no pin_dir)", "file", n.file.Path(),
				"written", info.Written.Format(time.RFC3339), "entries", info.Entries)
		}
	}
	var store engine.TupleStore
	if n.pin != nil {
		store = n.pin
	}
	if n.file != nil {
		n.saver = negstate.NewSaver(n.file, store, capacity)
		store = n.saver
	}
	n.set = engine.NewNegotiatedSet(engine.NegotiatedConfig{Capacity: capacity, Store: store, Mono: afxdp.BootTime})
	negstate.SortEntries(prior) // when not all fit, the ones that matter
	var held, released, lost int
	for _, e := range prior {
		switch {
		case !n.set.Restore(e.In, e.Out, e.Left):
			lost++
		case e.Left == 0:
			held++
		default:
			released++
		}
	}
	log.Info("negotiated set", "from", from, "capacity", capacity, "held", held, "released", released, "lost", lost,
		"note", "held tuples (live connections when the previous run stopped) are kept 7 days, released ones the time they had left")
	if lost > 0 {
		log.Warn("negotiated tuples did not fit the set (capacity is 2 x queues x max_flows): their connections, if live, will pass as plain", "lost", lost)
	}
	switch {
	case n.saver != nil:
		n.saver.Start(n.set, cfg.StateInterval, log)
		if cfg.PinDir == "" {
			log.Warn("pin_dir is empty: the negotiated set is kept in state_dir only, written every state_interval; after a crash, connections encrypted since its last write are passed, not reset", "state_interval", cfg.StateInterval)
		}
	case cfg.PinDir == "":
		log.Warn("pin_dir and state_dir are empty: the negotiated set lives in memory only; after a restart, connections that were encrypted are passed, not reset")
	default:
		log.Warn("state_dir is empty: after a reboot of this machine, connections that were encrypted are passed, not reset")
	}
	return n, nil
}

// close writes the disk copy a last time and releases the pin (which stays)
// and the copy's lock.
func (n *negotiated) close() {
	if n.saver != nil {
		if err := n.saver.Stop(); err != nil {
			n.log.Error("negotiated set: last write of its disk copy", "err", err)
		} else {
			n.log.Info("negotiated set: disk copy written", "file", n.file.Path(), "entries", n.saver.Saved())
		}
	}
	if n.pin != nil {
		n.pin.Close()
	}
	if n.file != nil {
		n.file.Close()
	}
}

// warning is the status warning when the disk copy is not being written.
func (n *negotiated) warning() string {
	if n == nil || n.saver == nil {
		return ""
	}
	return n.saver.Failed()
}

// netnsName is the name of this network namespace as ip-netns(8) gives it
// (an entry of /run/netns bound to it), or "" when it has none (the
// initial namespace): what identifies it across a reboot.
func netnsName() string {
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil {
		return ""
	}
	names, _ := filepath.Glob("/run/netns/*")
	for _, p := range names { // sorted: the first of several names
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Dev == self.Dev && st.Ino == self.Ino {
			return filepath.Base(p)
		}
	}
	return ""
}
