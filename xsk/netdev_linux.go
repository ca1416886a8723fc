package xsk

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// netdevXDPActXSKZeroCopy is NETDEV_XDP_ACT_XSK_ZEROCOPY
// (include/uapi/linux/netdev.h): the driver binds AF_XDP sockets with
// XDP_ZEROCOPY.
const netdevXDPActXSKZeroCopy = 1 << 3

// ZeroCopyCapable reports whether the interface's driver offers zero-copy
// AF_XDP, read from its XDP features over generic netlink (the netdev
// family's dev-get, the same answer `ynl --family netdev --do dev-get`
// gives). veth and virtio_net without the feature say no; a daemon uses AF_XDP
// only where it is the zero-copy path.
func ZeroCopyCapable(ifindex int) (bool, error) {
	f, err := xdpFeatures(ifindex)
	if err != nil {
		return false, err
	}
	return f&netdevXDPActXSKZeroCopy != 0, nil
}

// ethtoolValue is struct ethtool_value (include/uapi/linux/ethtool.h).
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

const (
	ethtoolGGRO = 0x2b // ETHTOOL_GGRO
	ethtoolSGRO = 0x2c // ETHTOOL_SGRO
)

// ethtoolGRO gets (set false) or sets the interface's generic receive offload
// through the SIOCETHTOOL ioctl.
func ethtoolGRO(ifindex int, set, on bool) (bool, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return false, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: ethtoolGGRO}
	if set {
		v.cmd = ethtoolSGRO
		if on {
			v.data = 1
		}
	}
	// struct ifreq: the name, then a union whose ifr_data points at v (a
	// typed pointer, so the runtime keeps v where it points).
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data *ethtoolValue
		_    [16]byte
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifi.Name)
	ifr.data = &v
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return false, fmt.Errorf("xsk: SIOCETHTOOL %s GRO on %s: %w", map[bool]string{false: "get", true: "set"}[set], ifi.Name, e)
	}
	return v.data != 0, nil
}

// GRO reports whether generic receive offload is on for the interface
// (`ethtool -k IF` generic-receive-offload), so a daemon that turns it on
// can put it back.
func GRO(ifindex int) (bool, error) { return ethtoolGRO(ifindex, false, false) }

// SetGRO turns the interface's generic receive offload on or off.
func SetGRO(ifindex int, on bool) error {
	_, err := ethtoolGRO(ifindex, true, on)
	return err
}
