package xsk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDP attach modes as netlink reports them (IFLA_XDP_ATTACHED values and the
// per-mode program id attributes).
var xdpModes = []struct {
	name   string
	flag   uint32 // XDP_FLAGS_*_MODE for detaching
	idAttr uint16 // IFLA_XDP_*_PROG_ID
}{
	{"generic", unix.XDP_FLAGS_SKB_MODE, unix.IFLA_XDP_SKB_PROG_ID},
	{"native", unix.XDP_FLAGS_DRV_MODE, unix.IFLA_XDP_DRV_PROG_ID},
	{"offload", unix.XDP_FLAGS_HW_MODE, unix.IFLA_XDP_HW_PROG_ID},
}

const (
	xdpAttachedNone  = 0
	xdpAttachedDrv   = 1
	xdpAttachedSKB   = 2
	xdpAttachedHW    = 3
	xdpAttachedMulti = 4
)

// CleanupStale detaches every XDP program from the interface ifindex (in the
// calling thread's network namespace), whichever way it was attached. Call it
// at start-up, before AttachBump, to clear what a crashed previous run left:
//
//   - programs attached through netlink (`ip link set dev X xdp obj ...`, or
//     any pre-bpf_link loader) stay attached after their process dies; they
//     are detached with an RTM_SETLINK carrying IFLA_XDP_FD = -1 per mode;
//   - programs attached through bpf_link (AttachBump) go away with their
//     process unless the link was pinned in bpffs; netlink refuses to detach
//     such a link (EBUSY), so CleanupStale finds the link by program id and
//     interface and detaches it with BPF_LINK_DETACH.
//
// It must not be called while another live process owns the interface's
// program: it does not ask whose program it is.
func CleanupStale(ifindex int) error {
	progs, err := attachedXDP(ifindex)
	if err != nil {
		return err
	}
	for mode, id := range progs {
		m := xdpModes[mode]
		err := setLinkXDP(ifindex, -1, m.flag)
		if errors.Is(err, unix.EBUSY) {
			err = detachLinkOf(ifindex, id)
		}
		if err != nil {
			return fmt.Errorf("xsk: detach stale %s XDP program %d from ifindex %d: %w", m.name, id, ifindex, err)
		}
	}
	left, err := attachedXDP(ifindex)
	if err != nil {
		return err
	}
	if len(left) != 0 {
		return fmt.Errorf("xsk: ifindex %d still has XDP programs %v after cleanup", ifindex, left)
	}
	return nil
}

// detachLinkOf detaches the bpf_link that attaches program id to ifindex.
func detachLinkOf(ifindex int, id ebpf.ProgramID) error {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType || info.Program != id {
			continue
		}
		if x := info.XDP(); x == nil || int(x.Ifindex) != ifindex {
			continue
		}
		return it.Link.Detach()
	}
	if err := it.Err(); err != nil {
		return err
	}
	return fmt.Errorf("no bpf_link for program %d", id)
}

// attachedXDP returns the attached XDP program id per mode (index into
// xdpModes) of ifindex, from RTM_GETLINK.
func attachedXDP(ifindex int) (map[int]ebpf.ProgramID, error) {
	req := newNLRequest(unix.RTM_GETLINK, unix.NLM_F_REQUEST, ifindex)
	msgs, err := nlExchange(req)
	if err != nil {
		return nil, fmt.Errorf("xsk: RTM_GETLINK ifindex %d: %w", ifindex, err)
	}
	out := map[int]ebpf.ProgramID{}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return nil, fmt.Errorf("xsk: parse RTM_NEWLINK: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_XDP {
				continue
			}
			var attached uint8
			var single uint32
			ids := map[uint16]uint32{}
			for b := a.Value; len(b) >= unix.SizeofRtAttr; {
				l := int(binary.NativeEndian.Uint16(b[0:2]))
				t := binary.NativeEndian.Uint16(b[2:4])
				if l < unix.SizeofRtAttr || l > len(b) {
					break
				}
				v := b[unix.SizeofRtAttr:l]
				switch {
				case t == unix.IFLA_XDP_ATTACHED && len(v) >= 1:
					attached = v[0]
				case t == unix.IFLA_XDP_PROG_ID && len(v) >= 4:
					single = binary.NativeEndian.Uint32(v)
				case len(v) >= 4:
					ids[t] = binary.NativeEndian.Uint32(v)
				}
				b = b[min(len(b), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
			}
			switch attached {
			case xdpAttachedNone:
			case xdpAttachedSKB:
				out[0] = ebpf.ProgramID(single)
			case xdpAttachedDrv:
				out[1] = ebpf.ProgramID(single)
			case xdpAttachedHW:
				out[2] = ebpf.ProgramID(single)
			case xdpAttachedMulti:
				for i, m := range xdpModes {
					if id := ids[m.idAttr]; id != 0 {
						out[i] = ebpf.ProgramID(id)
					}
				}
			}
		}
	}
	return out, nil
}

// setLinkXDP attaches program fd to ifindex through netlink (fd -1
// detaches) in the mode given by flags. AttachBump uses bpf_link instead;
// this is the legacy path CleanupStale must undo (and tests use it to make a
// program that outlives its creator).
func setLinkXDP(ifindex, fd int, flags uint32) error {
	req := newNLRequest(unix.RTM_SETLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK, ifindex)
	var nested []byte
	nested = appendAttr(nested, unix.IFLA_XDP_FD, binary.NativeEndian.AppendUint32(nil, uint32(int32(fd))))
	nested = appendAttr(nested, unix.IFLA_XDP_FLAGS, binary.NativeEndian.AppendUint32(nil, flags))
	req = appendAttr(req, unix.IFLA_XDP|unix.NLA_F_NESTED, nested)
	_, err := nlExchange(req)
	return err
}

func newNLRequest(typ, flags uint16, ifindex int) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], 1) // sequence
	ifi := b[unix.SizeofNlMsghdr:]
	ifi[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(ifi[4:8], uint32(int32(ifindex)))
	return b
}

func appendAttr(b []byte, typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// nlExchange sends one request on a fresh NETLINK_ROUTE socket and returns
// the replies up to the ACK (or the first reply for a non-ACK request).
func nlExchange(req []byte) ([]syscall.NetlinkMessage, error) {
	return nlExchangeProto(unix.NETLINK_ROUTE, req)
}

func nlExchangeProto(proto int, req []byte) ([]syscall.NetlinkMessage, error) {
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	wantAck := binary.NativeEndian.Uint16(req[6:8])&unix.NLM_F_ACK != 0
	buf := make([]byte, 1<<16)
	var out []syscall.NetlinkMessage
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data[0:4])); code != 0 {
					return nil, unix.Errno(-code)
				}
				return out, nil // ACK
			}
			out = append(out, m)
			if !wantAck {
				return out, nil
			}
		}
	}
}

// Generic netlink "netdev" family (include/uapi/linux/netdev.h); x/sys/unix
// does not carry these yet.
const (
	netdevCmdDevGet       = 1
	netdevAttrIfindex     = 1
	netdevAttrXDPFeatures = 3
	netdevXDPActNdoXmit   = 1 << 2 // NETDEV_XDP_ACT_NDO_XMIT
	genlHdrLen            = 4
)

// xdpFeatures returns the interface's NETDEV_XDP_ACT_* feature bits.
func xdpFeatures(ifindex int) (uint64, error) {
	fam, err := genlFamily("netdev")
	if err != nil {
		return 0, fmt.Errorf("xsk: genetlink family netdev: %w", err)
	}
	req := newGenlRequest(fam, netdevCmdDevGet)
	req = appendAttr(req, netdevAttrIfindex, binary.NativeEndian.AppendUint32(nil, uint32(ifindex)))
	msgs, err := nlExchangeProto(unix.NETLINK_GENERIC, req)
	if err != nil {
		return 0, fmt.Errorf("xsk: netdev dev-get ifindex %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		for _, a := range genlAttrs(m.Data) {
			if a.typ == netdevAttrXDPFeatures && len(a.val) >= 8 {
				return binary.NativeEndian.Uint64(a.val), nil
			}
		}
	}
	return 0, fmt.Errorf("xsk: netdev dev-get ifindex %d: no xdp-features", ifindex)
}

func genlFamily(name string) (uint16, error) {
	req := newGenlRequest(unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY)
	req = appendAttr(req, unix.CTRL_ATTR_FAMILY_NAME, append([]byte(name), 0))
	msgs, err := nlExchangeProto(unix.NETLINK_GENERIC, req)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		for _, a := range genlAttrs(m.Data) {
			if a.typ == unix.CTRL_ATTR_FAMILY_ID && len(a.val) >= 2 {
				return binary.NativeEndian.Uint16(a.val), nil
			}
		}
	}
	return 0, errors.New("no family id in reply")
}

func newGenlRequest(family uint16, cmd uint8) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+genlHdrLen)
	binary.NativeEndian.PutUint16(b[4:6], family)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(b[8:12], 1)
	b[unix.SizeofNlMsghdr] = cmd
	b[unix.SizeofNlMsghdr+1] = 1 // version
	return b
}

type nlAttr struct {
	typ uint16
	val []byte
}

// genlAttrs parses the attributes after a generic netlink header.
func genlAttrs(data []byte) []nlAttr {
	if len(data) < genlHdrLen {
		return nil
	}
	var out []nlAttr
	for b := data[genlHdrLen:]; len(b) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, nlAttr{binary.NativeEndian.Uint16(b[2:4]) &^ unix.NLA_F_NESTED, b[unix.SizeofRtAttr:l]})
		b = b[min(len(b), (l+3)&^3):]
	}
	return out
}
