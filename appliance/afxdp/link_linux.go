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
}

// ReadLink reads the interface called name in the calling thread's network
// namespace, as it is now. One that does not exist is ErrNoInterface. It
// asks for that interface alone (SIOCGIFINDEX, SIOCGIFMTU), not for a dump
// of every link, so it can run every second on a box with many.
func ReadLink(name string) (Link, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Link{}, fmt.Errorf("interface %q: %w", name, err)
	}
	defer unix.Close(fd)
	var l Link
	for _, q := range []struct {
		req uint
		v   *int
	}{{unix.SIOCGIFINDEX, &l.Index}, {unix.SIOCGIFMTU, &l.MTU}} {
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
		*q.v = int(ifr.Uint32())
	}
	return l, nil
}
