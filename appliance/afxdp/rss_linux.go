package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/flow"
)

// ethtool's RSS request (linux/ethtool.h): ETHTOOL_GRSSH fills struct
// ethtool_rxfh, whose rss_config holds indir_size u32 table entries, then
// key_size key bytes.
const (
	ethtoolGRSSH   = 0x46
	ethRSSHashTop  = 1 << 0 // hfunc bit of the Toeplitz hash (ETH_RSS_HASH_TOP)
	rxfhHeaderSize = 24     // cmd, rss_context, indir_size, key_size, hfunc, input_xfrm, rsvd8[2], rsvd32
)

// ReadRSS reads the receive-side scaling of an interface of the calling
// thread's namespace: its Toeplitz key, indirection table and input
// transform. It fails where the driver reports none (veth, most virtual
// NICs) or hashes with another function.
func ReadRSS(ifname string) (*flow.RSS, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	hdr := make([]byte, rxfhHeaderSize)
	binary.NativeEndian.PutUint32(hdr, ethtoolGRSSH)
	if err := ethtoolIoctl(fd, ifname, hdr); err != nil {
		return nil, fmt.Errorf("%s: RSS configuration: %w", ifname, err)
	}
	indirN := binary.NativeEndian.Uint32(hdr[8:])
	keyN := binary.NativeEndian.Uint32(hdr[12:])
	if indirN == 0 || keyN == 0 || indirN > 1<<16 || keyN > 1024 {
		return nil, fmt.Errorf("%s: RSS reports a %d-entry table and a %d-byte key", ifname, indirN, keyN)
	}
	buf := make([]byte, rxfhHeaderSize+4*int(indirN)+int(keyN))
	copy(buf, hdr[:16]) // the sizes just learnt
	buf[16], buf[17] = 0, 0
	if err := ethtoolIoctl(fd, ifname, buf); err != nil {
		return nil, fmt.Errorf("%s: RSS configuration: %w", ifname, err)
	}
	if hfunc := buf[16]; hfunc != ethRSSHashTop {
		return nil, fmt.Errorf("%s: RSS hash function %#x is not Toeplitz", ifname, hfunc)
	}
	indir := make([]uint32, indirN)
	for i := range indir {
		indir[i] = binary.NativeEndian.Uint32(buf[rxfhHeaderSize+4*i:])
	}
	key := buf[rxfhHeaderSize+4*int(indirN):]
	return flow.NewRSS(key, indir, flow.Transform(buf[17]))
}

// ethtoolIoctl runs SIOCETHTOOL with data as the command buffer.
func ethtoolIoctl(fd int, ifname string, data []byte) error {
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	if len(ifname) >= unix.IFNAMSIZ {
		return errors.New("interface name too long")
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&data[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// OwnerRSS decides how the workers of queues queues pick flow owners: the
// ports' RSS when both report the same symmetric Toeplitz configuration
// over those queues (the NIC then brings each worker its own flows, both
// directions), else nil, the keyed hash with hand-offs. reason says which
// and why, for the log and status.
func OwnerRSS(inside, outside string, queues int) (r *flow.RSS, reason string) {
	if queues <= 1 {
		return nil, "one queue: every flow has the one worker"
	}
	in, err := ReadRSS(inside)
	if err != nil {
		return nil, "keyed hash with hand-offs: " + err.Error()
	}
	out, err := ReadRSS(outside)
	if err != nil {
		return nil, "keyed hash with hand-offs: " + err.Error()
	}
	switch {
	case !in.Symmetric():
		return nil, fmt.Sprintf("keyed hash with hand-offs: %s's RSS is not symmetric (set a symmetric key or `ethtool -X %s xfrm symmetric-xor`)", inside, inside)
	case !in.Same(out):
		return nil, "keyed hash with hand-offs: the two ports' RSS keys, tables or transforms differ"
	case in.MaxQueue() >= queues:
		return nil, fmt.Sprintf("keyed hash with hand-offs: RSS spreads over %d queues, the appliance runs %d", in.MaxQueue()+1, queues)
	}
	return in, "symmetric RSS: the NIC's queue owns the flow"
}
