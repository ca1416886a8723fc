package afxdp

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"

	"github.com/tcpinc/tcpinc/appliance/afpacketport"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// Port backends (config backend, admin.PortStatus.Backend).
const (
	BackendAFXDP    = "afxdp"    // an AF_XDP socket per queue (package xsk)
	BackendAFPacket = "afpacket" // an AF_PACKET socket per port with GRO/GSO super-segments (package appliance/afpacketport)
)

// zeroCopyCapable is xsk.ZeroCopyCapable (a variable for tests).
var zeroCopyCapable = xsk.ZeroCopyCapable

// chooseBackend picks the backend of both ports (the workers drive an
// inside and an outside queue of one kind together) and says why, per
// port. Configured, it is what the file says. Under auto it is AF_XDP only
// where it is the zero-copy path on both ports (the driver's
// NETDEV_XDP_ACT_XSK_ZEROCOPY); elsewhere AF_XDP copies each 1.5 KB frame
// into its own skb and UMEM slot, and AF_PACKET, which moves GRO
// super-segments of up to 64 KiB, is cheaper per byte (issue 10). The
// AF_PACKET backend runs one queue per port, so auto keeps AF_XDP when the
// configuration asks for more.
func chooseBackend(cfg config.Config, ifindex [2]int) (string, [2]string) {
	var reasons [2]string
	if cfg.Backend == BackendAFXDP || cfg.Backend == BackendAFPacket {
		for p := range reasons {
			reasons[p] = "backend: " + cfg.Backend + " in the configuration"
			if cfg.Backend == BackendAFPacket {
				reasons[p] += " (one queue per port; multi-queue is later work)"
			}
		}
		return cfg.Backend, reasons
	}
	var zc [2]bool
	var why [2]string
	names := [2]string{cfg.Inside, cfg.Outside}
	for p, idx := range ifindex {
		ok, err := zeroCopyCapable(idx)
		zc[p] = ok && err == nil
		switch {
		case err != nil:
			why[p] = fmt.Sprintf("cannot read %s's XDP features (%v)", names[p], err)
		case ok:
			why[p] = "the driver offers zero-copy AF_XDP"
		default:
			why[p] = "the driver offers no zero-copy AF_XDP"
		}
	}
	switch {
	case zc[0] && zc[1]:
		for p := range reasons {
			reasons[p] = "auto: " + why[p] + " on both ports"
		}
		return BackendAFXDP, reasons
	case cfg.Queues > 1:
		for p := range reasons {
			reasons[p] = fmt.Sprintf("auto: %s, but queues is %d and the afpacket backend runs one queue per port: AF_XDP in copy mode", why[p], cfg.Queues)
		}
		return BackendAFXDP, reasons
	}
	for p := range reasons {
		other := ""
		if zc[p] {
			other = " (the other port's does not)"
		}
		reasons[p] = "auto: " + why[p] + other + ": AF_PACKET with GRO/GSO super-segments, one queue per port (multi-queue is later work)"
	}
	return BackendAFPacket, reasons
}

// packetPorts are the AF_PACKET sockets of both ports and the GRO setting
// each interface had before Open turned it on.
type packetPorts struct {
	ifindex [2]int
	ports   [2]*afpacketport.Port
	groWas  [2]bool
	groSet  [2]bool // GRO was off and Open turned it on: Close turns it off
}

// openPacket turns GRO on for both ports (so the kernel coalesces what the
// classifier passes) and opens one AF_PACKET socket on each.
func (x *Ports) openPacket(cfg config.Config, ifindex [2]int) error {
	x.packet.ifindex = ifindex
	for i, idx := range ifindex {
		was, err := xsk.GRO(idx)
		if err != nil {
			return fmt.Errorf("%s interface %q: %w", bump.PortID(i), x.names[i], err)
		}
		x.packet.groWas[i] = was
		if err := afpacketport.EnableGRO(idx); err != nil {
			return fmt.Errorf("%s interface %q: turn GRO on: %w", bump.PortID(i), x.names[i], err)
		}
		x.packet.groSet[i] = !was
		p, err := afpacketport.Open(idx, afpacketport.Options{QdiscBypass: true})
		if err != nil {
			return fmt.Errorf("%s interface %q: AF_PACKET port: %w", bump.PortID(i), x.names[i], err)
		}
		x.packet.ports[i] = p
		x.ports[i] = []bump.Port{p}
	}
	return nil
}

// close closes the sockets and turns GRO off where Open turned it on.
func (pp *packetPorts) close() error {
	var errs []error
	for i := range pp.ports {
		if pp.ports[i] != nil {
			errs = append(errs, pp.ports[i].Close())
			pp.ports[i] = nil
		}
		if pp.groSet[i] {
			if err := xsk.SetGRO(pp.ifindex[i], false); err != nil {
				errs = append(errs, fmt.Errorf("put GRO back off: %w", err))
			}
			pp.groSet[i] = false
		}
	}
	return errors.Join(errs...)
}

// Backend returns the backend of port's sockets (BackendAFXDP or
// BackendAFPacket) and why it was chosen.
func (x *Ports) Backend(port bump.PortID) (backend, reason string) {
	return x.backend, x.reasons[port.Index()]
}

// PacketStats returns the AF_PACKET port statistics of port (zero with the
// AF_XDP backend).
func (x *Ports) PacketStats(port bump.PortID) afpacketport.Stats {
	if p := x.packet.ports[port.Index()]; p != nil {
		return p.Stats()
	}
	return afpacketport.Stats{}
}

// BackendCounters returns port's backend counters by name (snake_case of
// the statistics' field names): the AF_XDP sockets' statistics summed over
// queues (xsk.Stats), or the AF_PACKET port's (afpacketport.Stats) with the
// classifier's frames passed to the stack and the skbs dropped there after
// the socket's tap (their ratio is how much GRO coalesced).
func (x *Ports) BackendCounters(port bump.PortID) map[string]uint64 {
	if x.backend != BackendAFPacket {
		return counterMap(x.SocketStats(port))
	}
	m := counterMap(x.PacketStats(port))
	st := x.Bump.Stats().Inside
	if port != bump.Inside {
		st = x.Bump.Stats().Outside
	}
	m["xdp_to_stack"], m["tc_stack_dropped"] = st.ToStack, st.StackDropped
	return m
}

// counterMap is the unsigned integer fields of the struct v by snake_case
// name.
func counterMap(v any) map[string]uint64 {
	m := map[string]uint64{}
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Uint64, reflect.Uint32, reflect.Uint, reflect.Uint16, reflect.Uint8:
			m[snake(f.Name)] = rv.Field(i).Uint()
		}
	}
	return m
}

// snake turns a Go field name into snake_case: RxFrames -> rx_frames,
// GSOSegments -> gso_segments.
func snake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
