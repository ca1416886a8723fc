package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance"
	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/backend"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
)

// portWatch follows the configured ports while tcpincd runs. The XDP
// program and the workers' sockets are bound to the interfaces tcpincd
// found at start: a port deleted (a driver reload, a hot-plug, a VF reset,
// a move to another namespace), even one created again under its name at
// once, leaves them on an interface that is gone, and every frame that
// needs a worker, plain ones included, is lost while the daemon seems to
// run. Neither backend can be moved to the new interface in place with
// its flows intact, so tcpincd exits (status 1) and its service manager
// starts it again on the port as it is now (deploy/systemd: Restart=).
//
// A port's MTU may change too (an operator, a link renegotiated): the
// segments the engines build follow it, for live flows as well (apply),
// or every frame sealed from a full host segment is refused by a port
// that was lowered, and nothing tells the hosts (no packet-too-big comes
// from a port).
//
// And a port's link may go down and come back (a cable pulled, the switch
// or the router's end down, the port set down on the box): no frame passes
// it meanwhile, tcpincd forwards again once it is back, and the hosts
// retransmit what was lost (RFC 6298, RFC 9293 §3.8.1). Its log says when
// the link went down and when it came back, and its status warns while it
// is down (linkWarning): the operator's first question is whether the box
// or its link failed.
type portWatch struct {
	names [2]string
	index [2]int                           // the interfaces tcpincd opened
	read  func(string) (afxdp.Link, error) // afxdp.ReadLink (tests replace it)
	seg   func(mtu int) int                // the engines' cap at an MTU (afxdp.SegmentMTU)
	mtu   [2]atomic.Int64                  // the interfaces' MTUs as last read
	gone  atomic.Pointer[string]           // what happened to a port that is gone
	// apply gives the engines new caps (control.Engines.SetMTU; nil: no
	// engine). laneFrame is the longest frame the hand-off lanes between
	// workers carry when a port's MTU can outgrow them (0: it cannot).
	apply     func([2]int) error
	laneFrame int
	lanes     atomic.Pointer[string]        // the warning while a port's frames outgrow the lanes
	now       func() time.Time              // time.Now (tests replace it)
	link      [2]atomic.Pointer[linkStatus] // the ports' links as last read
}

// linkState is a port's link as check last read it (afxdp.Link's IFF_UP
// and IFF_RUNNING).
type linkState uint8

const (
	linkUnread    linkState = iota // not read yet
	linkUp                         // up and running: frames pass
	linkNoCarrier                  // up, not running: no carrier (the cable, the far end)
	linkSetDown                    // administratively down (ip link set down on this box)
)

// stateOf is what l's flags say of its link.
func stateOf(l afxdp.Link) linkState {
	switch {
	case !l.Up:
		return linkSetDown
	case !l.Running:
		return linkNoCarrier
	}
	return linkUp
}

// String is the state as the status's port description gives it
// (admin.PortStatus.Link).
func (s linkState) String() string {
	return [...]string{"", "up", "no_carrier", "down"}[s]
}

// why says how a link is down.
func (s linkState) why() string {
	if s == linkSetDown {
		return "set down on this box"
	}
	return "no carrier"
}

// linkStatus is a port's link and since when it is so: for a link that is
// down, since it first went down, however it is down now.
type linkStatus struct {
	state linkState
	since time.Time
}

// linkChange is a port's link that check found changed; after is how long
// it was as it was before (0 at the first read), between the checks that
// saw it change (every second: within a second of the truth).
type linkChange struct {
	port     bump.PortID
	iface    string
	from, to linkState
	after    time.Duration
}

// message is the log line of c.
func (c linkChange) message() string {
	port := fmt.Sprintf("%s port %s", c.port, c.iface)
	switch {
	case c.to == linkUp:
		// The watch reads the link every second: so precise, no more.
		return fmt.Sprintf("%s: link up again after about %s", port, c.after.Round(time.Second))
	case c.from == linkUnread:
		return fmt.Sprintf("%s: link down (%s) at start: no frame passes the port until it comes up", port, c.to.why())
	case c.from == linkUp:
		return fmt.Sprintf("%s: link down (%s)", port, c.to.why())
	}
	return fmt.Sprintf("%s: link still down (%s now, %s before)", port, c.to.why(), c.from.why())
}

// log says c in log: a link down is a warning.
func (c linkChange) log(log *slog.Logger) {
	level := slog.LevelWarn
	if c.to == linkUp {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, c.message(), "port", c.port.String(), "iface", c.iface, "link", c.to.String())
}

// noteLink records port p's link as s and returns the change, if one is
// to be told: not a link up at the first read.
func (w *portWatch) noteLink(p bump.PortID, s linkState) (linkChange, bool) {
	old := w.link[p.Index()].Load()
	if old != nil && old.state == s {
		return linkChange{}, false
	}
	now := w.now()
	c := linkChange{port: p, iface: w.names[p.Index()], to: s}
	next := &linkStatus{s, now}
	if old != nil {
		c.from, c.after = old.state, now.Sub(old.since)
		if s != linkUp && old.state != linkUp {
			next.since = old.since // still down
		}
	}
	w.link[p.Index()].Store(next)
	return c, c.from != linkUnread || s != linkUp
}

// linkOf is port i's link as last read ("" before the first read).
func (w *portWatch) linkOf(i int) string {
	if l := w.link[i].Load(); l != nil {
		return l.state.String()
	}
	return ""
}

// linkWarning returns the status warning of port p's link ("" while it is
// up).
func (w *portWatch) linkWarning(p bump.PortID) func() string {
	return func() string {
		l := w.link[p.Index()].Load()
		if l == nil || l.state == linkUp {
			return ""
		}
		return fmt.Sprintf("LINK DOWN: %s port %s: link down (%s) since %s: no frame passes it; tcpincd forwards again once it is back",
			p, w.names[p.Index()], l.state.why(), l.since.UTC().Format(time.RFC3339))
	}
}

// newPortWatch reads cfg's ports as x opened them, and logs a link that is
// down.
func newPortWatch(cfg config.Config, x *backend.Ports, log *slog.Logger) (*portWatch, error) {
	w := &portWatch{names: [2]string{cfg.Inside, cfg.Outside}, read: afxdp.ReadLink,
		seg: func(mtu int) int { return afxdp.SegmentMTU(cfg, mtu) }, now: time.Now}
	for p := range w.index {
		w.index[p] = x.Ifindex(bump.PortID(p))
	}
	_, links, err := w.check()
	if err != nil {
		return nil, err
	}
	for _, c := range links {
		c.log(log)
	}
	return w, nil
}

// mtuChange is a port's MTU that check found changed.
type mtuChange struct {
	port     bump.PortID
	from, to int
}

// errPortGone marks check's error for a port that is no longer the
// interface tcpincd opened.
var errPortGone = errors.New("the XDP program and the sockets were on the interface that is gone: tcpincd exits, to be started again (by its service manager) on the port as it is now")

// check reads both ports and notes their MTU (the first check sets it) and
// their link. It returns an error wrapping errPortGone when one is gone or
// is now another interface, which stays so; any other error is a read that
// failed (a check later may succeed). changes are the MTUs that changed,
// links the links that went down or came back (or were down at the first
// check).
func (w *portWatch) check() (changes []mtuChange, links []linkChange, _ error) {
	var errs []error
	for p, name := range w.names {
		port := bump.PortID(p)
		l, err := w.read(name)
		var what string
		switch {
		case errors.Is(err, afxdp.ErrNoInterface):
			what = fmt.Sprintf("%s port %q (ifindex %d) is gone: deleted, renamed or moved to another namespace", port, name, w.index[p])
		case err != nil:
			errs = append(errs, fmt.Errorf("%s port: %w", port, err))
			continue
		case l.Index != w.index[p]:
			what = fmt.Sprintf("%s port %q is another interface now (ifindex %d at start, %d now): deleted and created again, as by a driver reload, a hot-plug or a VF reset", port, name, w.index[p], l.Index)
		default:
			if old := int(w.mtu[p].Swap(int64(l.MTU))); old != 0 && old != l.MTU {
				changes = append(changes, mtuChange{port, old, l.MTU})
			}
			if c, ok := w.noteLink(port, stateOf(l)); ok {
				links = append(links, c)
			}
			continue
		}
		w.gone.CompareAndSwap(nil, &what)
		return changes, links, fmt.Errorf("%s; %w", what, errPortGone)
	}
	return changes, links, errors.Join(errs...)
}

// mtuOf returns port i's MTU as last read and the engines' cap at it.
func (w *portWatch) mtuOf(i int) (mtu, segment int) {
	mtu = int(w.mtu[i].Load())
	return mtu, w.seg(mtu)
}

// segmentMTUs are the engines' caps at the ports' MTUs as last read.
func (w *portWatch) segmentMTUs() [2]int {
	var m [2]int
	for i := range m {
		_, m[i] = w.mtuOf(i)
	}
	return m
}

// follow gives the engines the caps of the ports' MTUs as they are now,
// and warns while a port's frames are longer than the hand-off lanes carry:
// their slots are sized at start (appliance.Options.MaxFrame), and the
// frames past them that must change worker are dropped (drop reason
// too_big; drop_too_big in the final counters log) until tcpincd restarts.
func (w *portWatch) follow(log *slog.Logger) {
	if w.apply != nil {
		if err := w.apply(w.segmentMTUs()); err != nil {
			log.Warn("segment size cap not changed", "err", err)
		}
	}
	w.lanes.Store(nil)
	for p := range w.names {
		mtu, _ := w.mtuOf(p)
		if w.laneFrame > 0 && mtu+14+8 > w.laneFrame {
			msg := fmt.Sprintf("%s port MTU %d is past what the hand-off lanes between workers carry (frames of %d bytes, sized at start): its longer frames that must change worker (IP fragments, ICMP errors, frames the fanout cannot place) are dropped (drop reason %s in the status's drops and tcpinc_drops_total) until tcpincd restarts",
				bump.PortID(p), mtu, w.laneFrame, appliance.DropTooBig)
			w.lanes.Store(&msg)
			log.Warn(msg)
			return
		}
	}
}

// warning is the status warning about the ports ("" for none): one gone
// (the daemon is about to exit), or one whose frames outgrew the lanes.
func (w *portWatch) warning() string {
	if g := w.gone.Load(); g != nil {
		return "PORT GONE: " + *g + "; tcpincd is exiting to be started again"
	}
	if l := w.lanes.Load(); l != nil {
		return *l
	}
	return ""
}

// watch checks every second that the ports are still the interfaces
// tcpincd opened and follows their MTU and their links (portWatch: a link
// down for a second or more is seen; a read is three ioctls a port), then
// whether each port's redirect to the other delivers, and moves a port
// between the kernel and user space when that changes (a veth peer's GRO
// switched, a driver change). A port that is gone ends it: the error goes
// to gone, and serve stops the daemon.
func watch(x *backend.Ports, pw *portWatch, log *slog.Logger, stop <-chan struct{}, gone chan<- error) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	portErr, pathErr := errorLine{msg: "port check"}, errorLine{msg: "forwarding path check"}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		changes, links, err := pw.check()
		if errors.Is(err, errPortGone) {
			// Not the paths: a check of a port that is gone says
			// nothing true about it.
			gone <- err
			return
		} else {
			portErr.report(log, err)
		}
		for _, c := range links {
			c.log(log)
		}
		for _, c := range changes {
			log.Info("port MTU changed", "port", c.port.String(), "iface", pw.names[c.port.Index()], "from", c.from, "to", c.to,
				"segment_mtu", pw.seg(c.to))
		}
		if len(changes) > 0 {
			pw.follow(log)
		}
		changed, err := x.CheckPaths()
		pathErr.report(log, err)
		for _, p := range changed {
			path, why := x.Path(p)
			log.Warn("forwarding path changed", "port", p.String(), "path", path, "why", why)
		}
	}
}

// errorLine logs the error of a check that runs every second when it
// starts or changes, and once when it ends: logged at every run, one that
// lasts (an interface that cannot be read, a BPF map that refuses
// updates) wrote 86,400 lines a day.
type errorLine struct{ msg, last string }

func (l *errorLine) report(log *slog.Logger, err error) {
	switch {
	case err == nil && l.last != "":
		log.Info(l.msg+": the error ended", "err", l.last)
		l.last = ""
	case err != nil && err.Error() != l.last:
		l.last = err.Error()
		log.Warn(l.msg, "err", err, "note", "logged again when it changes or ends")
	}
}
