package backend

import (
	"net"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxQueues is rxQueuesOf (a variable for tests).
var rxQueues = rxQueuesOf

// rxQueuesOf returns how many receive queues the device with ifindex
// uses, as `ethtool -l` shows them: its rx-only and combined channels
// (ETHTOOL_GCHANNELS), else, for a driver without that call, the rx-*
// entries of its queues directory in sysfs.
func rxQueuesOf(ifindex int) (int, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return 0, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	// struct ethtool_channels: cmd, max_rx, max_tx, max_other,
	// max_combined, rx_count, tx_count, other_count, combined_count.
	var ch [9]uint32
	ch[0] = unix.ETHTOOL_GCHANNELS
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // the rest of struct ifreq's union
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifi.Name)
	ifr.data = unsafe.Pointer(&ch)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e == 0 {
		if n := int(ch[5] + ch[8]); n > 0 {
			return n, nil
		}
	}
	m, err := filepath.Glob(filepath.Join("/sys/class/net", ifi.Name, "queues", "rx-*"))
	if err == nil && len(m) == 0 {
		err = os.ErrNotExist
	}
	return len(m), err
}
