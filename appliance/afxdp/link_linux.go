package afxdp

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Link is what the daemon follows of a port's interface while it runs.
type Link struct {
	// Index is the interface index. A device deleted and created again
	// under the same name (a driver reload, a hot-plug, a VF reset) has
	// another one: the XDP program and the sockets stayed on the old.
	Index int
	// MTU is the interface's MTU.
	MTU int
	// Up is IFF_UP: the interface is administratively up (ip link set
	// up). Running is IFF_RUNNING: it is up and operationally up as
	// well, with a carrier (operstate up, RFC 2863 ifOperStatus); an up
	// interface that is not running has lost its carrier (a cable
	// pulled, the switch or the peer's end down). Either way, no frame
	// passes the port while it is not running: the XDP program and the
	// sockets stay, and carry frames again when it runs again.
	Up, Running bool
}

// ReadLink reads the interface called name in the calling thread's network
// namespace, as it is now. One that does not exist is ErrNoInterface. It
// asks for that interface alone (SIOCGIFINDEX, SIOCGIFMTU, SIOCGIFFLAGS),
// not for a dump of every link, so it can run every second on a box with
// many.
func ReadLink(name string) (Link, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Link{}, fmt.Errorf("interface %q: %w", name, err)
	}
	defer unix.Close(fd)
	var l Link
	var flags int
	for _, q := range []struct {
		req uint
		v   *int
	}{{unix.SIOCGIFINDEX, &l.Index}, {unix.SIOCGIFMTU, &l.MTU}, {unix.SIOCGIFFLAGS, &flags}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return Link{}, fmt.Errorf("interface %q: %w", name, err)
		}
		if err := unix.IoctlIfreq(fd, q.req, ifr); err != nil {
			if errors.Is(err, unix.ENODEV) {
				return Link{}, fmt.Errorf("interface %q: %w", name, ErrNoInterface)
			}
			return Link{}, fmt.Errorf("interface %q: %w", name, err)
		}
		if q.req == unix.SIOCGIFFLAGS {
			*q.v = int(ifr.Uint16()) // ifr_flags is a short
		} else {
			*q.v = int(ifr.Uint32())
		}
	}
	l.Up, l.Running = flags&unix.IFF_UP != 0, flags&unix.IFF_RUNNING != 0
	return l, nil
}
