package afxdp

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// Forwarding paths of a port (admin.PortStatus.Path).
const (
	PathKernel = "kernel" // the XDP program redirects what needs no work to the other port
	PathUser   = "user"   // every frame goes to the workers, which forward it
)

// portPaths tracks, per port, whether frames arriving there are forwarded
// by the kernel or by the workers. A devmap redirect that cannot deliver
// is dropped by the kernel after the program returned (xsk.AttachBump's
// veth caveat): a port whose redirect the other port cannot take runs with
// its fast path off, so the workers carry everything and nothing is
// blackholed.
type portPaths struct {
	mu       sync.Mutex
	path     [2]string
	reason   [2]string
	switches atomic.Uint64
}

// checkPaths decides each port's path (see Ports.CheckPaths).
func (x *Ports) checkPaths() ([]bump.PortID, error) {
	var changed []bump.PortID
	var errs []error
	for p := range 2 {
		port := bump.PortID(p)
		path, reason := PathKernel, fmt.Sprintf("the XDP program redirects to %s", x.names[1-p])
		switch ready, err := x.Bump.RedirectReady(xsk.PortID(p)); {
		case !x.fastPath:
			path, reason = PathUser, "fast_path is off: the workers forward every frame"
		case err != nil:
			path, reason = PathUser, fmt.Sprintf("cannot tell whether %s takes redirected XDP frames (%v): the workers forward", x.names[1-p], err)
		case !ready:
			path, reason = PathUser, fmt.Sprintf("%s cannot take redirected XDP frames (a veth whose peer has neither GRO nor an XDP program, or a driver without ndo_xdp_xmit): the workers forward", x.names[1-p])
		}
		x.paths.mu.Lock()
		old := x.paths.path[p]
		x.paths.reason[p] = reason
		x.paths.mu.Unlock()
		if old == path {
			continue
		}
		// Switch to user space before the path is reported, and to the
		// kernel only once the redirect is known to deliver.
		if err := x.Bump.SetPortFastPath(xsk.PortID(p), path == PathKernel); err != nil {
			errs = append(errs, err)
			continue
		}
		x.paths.mu.Lock()
		x.paths.path[p] = path
		x.paths.mu.Unlock()
		if old != "" {
			x.paths.switches.Add(1)
		}
		changed = append(changed, port)
	}
	if len(errs) > 0 {
		return changed, errs[0]
	}
	return changed, nil
}

// CheckPaths re-examines whether each port's redirect to the other port
// delivers (xsk.Bump.RedirectReady: the other port's driver takes XDP
// frames; a veth only while its peer runs NAPI, which changes with the
// peer's GRO setting or XDP program) and switches the port between the
// kernel and the workers accordingly. Open runs it once; the daemon
// runs it every second. It returns the ports whose path changed.
func (x *Ports) CheckPaths() ([]bump.PortID, error) { return x.checkPaths() }

// Path returns port's forwarding path (PathKernel or PathUser) and why.
func (x *Ports) Path(port bump.PortID) (path, reason string) {
	i := port.Index()
	x.paths.mu.Lock()
	defer x.paths.mu.Unlock()
	return x.paths.path[i], x.paths.reason[i]
}

// PathSwitches counts the changes of path after start.
func (x *Ports) PathSwitches() uint64 { return x.paths.switches.Load() }
