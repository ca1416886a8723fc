package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// VLAN sub-interfaces.
//
// Where the kernel has 802.1Q support, AddVLAN creates a real `type vlan`
// device. This machine's kernel is built without CONFIG_VLAN_8021Q (and so
// without bridge VLAN filtering or act_vlan), so AddVLAN falls back to an
// emulation with the same outside behaviour: frames leave the parent
// interface with an in-band 802.1Q tag and tagged frames arriving on the
// parent reach the sub-interface untagged.
//
//	L3 end "eth0.100" (addresses, routes) —veth— "eth0.100x"
//	  tcx ingress on eth0.100x: push tag 100, redirect to eth0 egress
//	  tcx ingress on eth0:      tag 100 present? pop it, redirect to eth0.100x egress
//
// The parent gets `txvlan off`, so the tag is written into the frame (not
// carried as skb metadata), as a real NIC puts it on the wire; that is what
// an XDP program on the other end of the parent's veth sees. The kernel moves
// an in-band tag into skb metadata before tc ingress runs, so the pop program
// reads the tag from __sk_buff.vlan_tci either way.
//
// The tcx links are pinned in bpffs (mounted at /sys/fs/bpf if nothing is),
// so the emulation outlives the process that set it up (`tcpinc-topo up`);
// the pins are removed with the Env (or by RemoveVLANPins).

// vlanPinRoot holds the pinned tcx links of emulated VLAN devices.
const vlanPinRoot = "/sys/fs/bpf/tcpinc-vlan"

const bpfFSMagic = 0xcafe4a11

// __sk_buff field offsets (uapi linux/bpf.h).
const (
	skbVlanPresent = 20
	skbVlanTCI     = 24
)

const (
	tcActOK   = 0
	tcActShot = 2
)

// AddVLAN creates VLAN sub-interface parent.id in ns, up, and returns its
// name. See the comment above for kernels without 802.1Q support.
func (e *Env) AddVLAN(ns, parent string, id int) (string, error) {
	name := fmt.Sprintf("%s.%d", parent, id)
	if len(name)+1 > 15 {
		return "", fmt.Errorf("vlan %s: name too long for an interface", name)
	}
	_, err := e.run("", "ip", "-n", ns, "link", "add", "link", parent, "name", name,
		"type", "vlan", "id", fmt.Sprint(id))
	if err == nil {
		return name, e.LinkUp(ns, name)
	}
	var ce *CmdError
	if !errors.As(err, &ce) || !strings.Contains(ce.Output, "Unknown device type") {
		return "", err
	}
	return name, e.emulateVLAN(ns, parent, name, id)
}

func (e *Env) emulateVLAN(ns, parent, name string, id int) error {
	peer := name + "x"
	mtu, err := linkMTU(ns, parent)
	if err != nil {
		return err
	}
	if err := e.AddVeth(ns, name, ns, peer, mtu); err != nil {
		return err
	}
	// Full-size frames with full checksums on the L3 end, like its parent
	// under the AF_XDP recipe; in-band tags on the parent.
	if err := e.Ethtool(ns, name, "tx", "off", "tso", "off", "gso", "off"); err != nil {
		return err
	}
	if err := e.Ethtool(ns, parent, "txvlan", "off"); err != nil {
		return err
	}
	if err := mountBPFFS(); err != nil {
		return err
	}
	dir := pinDir(ns)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	e.Defer("vlan pins "+ns+":"+name, func() error { return removePins(dir, pinName(name)) })
	return Do(ns, func() error {
		pifc, err := net.InterfaceByName(parent)
		if err != nil {
			return err
		}
		cifc, err := net.InterfaceByName(peer)
		if err != nil {
			return err
		}
		push, err := vlanPushProg(id, pifc.Index)
		if err != nil {
			return err
		}
		defer push.Close()
		pop, err := vlanPopProg(id, cifc.Index)
		if err != nil {
			return err
		}
		defer pop.Close()
		for _, a := range []struct {
			ifindex int
			prog    *ebpf.Program
			pin     string
		}{
			{cifc.Index, push, pinName(name) + "-push"},
			{pifc.Index, pop, pinName(name) + "-pop"},
		} {
			l, err := link.AttachTCX(link.TCXOptions{Interface: a.ifindex, Program: a.prog, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("vlan %s: attach tcx: %w", name, err)
			}
			err = l.Pin(filepath.Join(dir, a.pin))
			l.Close()
			if err != nil {
				return fmt.Errorf("vlan %s: pin: %w", name, err)
			}
		}
		return nil
	})
}

// vlanPushProg tags every frame with VLAN id and sends it out of ifindex.
func vlanPushProg(id, ifindex int) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "vlan_push", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			// bpf_skb_vlan_push(skb, htons(ETH_P_8021Q), id)
			asm.Mov.Imm(asm.R2, int32(htons(0x8100))),
			asm.Mov.Imm(asm.R3, int32(id)),
			asm.FnSkbVlanPush.Call(),
			asm.JNE.Imm(asm.R0, 0, "drop"),
			asm.Mov.Imm(asm.R1, int32(ifindex)),
			asm.Mov.Imm(asm.R2, 0), // egress
			asm.FnRedirect.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
			asm.Return(),
		},
	})
}

// vlanPopProg strips tag id from frames that carry it and hands them to
// ifindex's egress (so they arrive at its veth peer, the L3 end); every other
// frame goes on unchanged.
func vlanPopProg(id, ifindex int) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "vlan_pop", Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R2, asm.R6, skbVlanPresent, asm.Word),
			asm.JEq.Imm(asm.R2, 0, "pass"),
			asm.LoadMem(asm.R2, asm.R6, skbVlanTCI, asm.Word),
			asm.And.Imm(asm.R2, 0x0fff),
			asm.JNE.Imm(asm.R2, int32(id), "pass"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.FnSkbVlanPop.Call(),
			asm.JNE.Imm(asm.R0, 0, "drop"),
			asm.Mov.Imm(asm.R1, int32(ifindex)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("pass"),
			asm.Return(),
			asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
			asm.Return(),
		},
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func linkMTU(ns, iface string) (int, error) {
	var mtu int
	err := Do(ns, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err == nil {
			mtu = ifc.MTU
		}
		return err
	})
	return mtu, err
}

func mountBPFFS() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/bpf", &st); err == nil && uint32(st.Type) == bpfFSMagic {
		return nil
	}
	if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
	}
	return nil
}

func removePins(dir, name string) error {
	var errs []error
	for _, s := range []string{"-push", "-pop"} {
		if err := os.Remove(filepath.Join(dir, name+s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// RemoveVLANPins removes the bpffs pins of emulated VLAN devices in namespace
// ns (for a topology torn down by another process than the one that built it).
func RemoveVLANPins(ns string) error {
	err := os.RemoveAll(pinDir(ns))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// bpffs refuses names with a dot (EPERM), and interface names have one.
func pinName(s string) string { return strings.ReplaceAll(s, ".", "_") }

func pinDir(ns string) string { return filepath.Join(vlanPinRoot, pinName(ns)) }
