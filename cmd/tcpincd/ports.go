package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/backend"
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
type portWatch struct {
	names [2]string
	index [2]int                           // the interfaces tcpincd opened
	read  func(string) (afxdp.Link, error) // afxdp.ReadLink (tests replace it)
	gone  atomic.Pointer[string]           // what happened to a port that is gone
}

func newPortWatch(names [2]string, x *backend.Ports) *portWatch {
	w := &portWatch{names: names, read: afxdp.ReadLink}
	for p := range w.index {
		w.index[p] = x.Ifindex(bump.PortID(p))
	}
	return w
}

// errPortGone marks check's error for a port that is no longer the
// interface tcpincd opened.
var errPortGone = errors.New("the XDP program and the sockets were on the interface that is gone: tcpincd exits, to be started again (by its service manager) on the port as it is now")

// check reads both ports. It returns an error wrapping errPortGone when
// one is gone or is now another interface, which stays so; any other error
// is a read that failed (a check later may succeed).
func (w *portWatch) check() error {
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
			continue
		}
		w.gone.CompareAndSwap(nil, &what)
		return fmt.Errorf("%s; %w", what, errPortGone)
	}
	return errors.Join(errs...)
}

// warning is the status warning once a port is gone ("" until then): the
// daemon is about to exit.
func (w *portWatch) warning() string {
	if g := w.gone.Load(); g != nil {
		return "PORT GONE: " + *g + "; tcpincd is exiting to be started again"
	}
	return ""
}

// watch checks every second that the ports are still the interfaces
// tcpincd opened (portWatch), then whether each port's redirect to the
// other delivers, and moves a port between the kernel and user space when
// that changes (a veth peer's GRO switched, a driver change). A port that
// is gone ends it: the error goes to gone, and serve stops the daemon.
func watch(x *backend.Ports, pw *portWatch, log *slog.Logger, stop <-chan struct{}, gone chan<- error) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if err := pw.check(); errors.Is(err, errPortGone) {
			// Not the paths: a check of a port that is gone says
			// nothing true about it.
			gone <- err
			return
		} else if err != nil {
			log.Warn("port check", "err", err)
		}
		changed, err := x.CheckPaths()
		if err != nil {
			log.Warn("forwarding path check", "err", err)
		}
		for _, p := range changed {
			path, why := x.Path(p)
			log.Warn("forwarding path changed", "port", p.String(), "path", path, "why", why)
		}
	}
}
