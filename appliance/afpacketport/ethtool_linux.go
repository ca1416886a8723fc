package afpacketport

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ETHTOOL_GGRO, ETHTOOL_SGRO and struct ethtool_value
// (include/uapi/linux/ethtool.h).
const (
	ethtoolGGRO = 0x0000002b
	ethtoolSGRO = 0x0000002c
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data: the name, then a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

// EnableGRO turns on generic receive offload on the interface ifindex of
// the calling thread's network namespace (`ethtool -K IF gro on`, with the
// SIOCETHTOOL ioctl): consecutive segments of a TCP flow then reach the
// port's socket as one super-segment. On a veth it also turns on NAPI,
// which GRO needs (drivers/net/veth.c, veth_set_features).
func EnableGRO(ifindex int) error {
	_, err := ethtoolValueIoctl(ifindex, ethtoolSGRO, 1)
	return err
}

// GRO reports whether generic receive offload is on for the interface
// ifindex (`ethtool -k IF`, generic-receive-offload), for a status page.
func GRO(ifindex int) (bool, error) {
	v, err := ethtoolValueIoctl(ifindex, ethtoolGGRO, 0)
	return v != 0, err
}

// ethtoolValueIoctl runs an ethtool command that takes or returns one
// struct ethtool_value.
func ethtoolValueIoctl(ifindex int, cmd, data uint32) (uint32, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("afpacketport: interface %d: %w", ifindex, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("afpacketport: socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], ifi.Name)
	ifr.data = unsafe.Pointer(&v)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return 0, fmt.Errorf("afpacketport: %s: ethtool command %#x: %w", ifi.Name, cmd, e)
	}
	return v.data, nil
}
