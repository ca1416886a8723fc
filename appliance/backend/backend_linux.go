package backend

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"

	"github.com/tcpinc/tcpinc/appliance/afpacketport"
	"github.com/tcpinc/tcpinc/appliance/afxdp"
	"github.com/tcpinc/tcpinc/appliance/config"
	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/xsk"
)

// Ports are the two ports as the workers use them: the XDP classifier and
// everything else of afxdp.Ports (embedded: paths, modes, the fast path),
// with the queues of the chosen backend.
type Ports struct {
	*afxdp.Ports
	backend string    // AFXDP or AFPacket
	reasons [2]string // why, per port
	ports   [2][]bump.Port
	packet  packetPorts
}

// Open chooses the backend (chooseBackend) and opens cfg's ports in the
// current network namespace with it: afxdp.Open for AF_XDP; for AF_PACKET
// afxdp.OpenStack (the classifier passes what the workers must see to the
// kernel), GRO on, and one afpacketport.Port per port. Close undoes it
// all, GRO included.
func Open(cfg config.Config) (_ *Ports, err error) {
	ifindex, err := afxdp.LookupInterfaces(cfg)
	if err != nil {
		return nil, err
	}
	p := &Ports{}
	if p.backend, p.reasons, err = chooseBackend(cfg, ifindex); err != nil {
		return nil, err
	}
	if p.backend == AFXDP {
		if p.Ports, err = afxdp.Open(cfg); err != nil {
			return nil, err
		}
		p.ports[0], p.ports[1] = p.Ports.Queues()
		return p, nil
	}
	if p.Ports, err = afxdp.OpenStack(cfg); err != nil {
		return nil, err
	}
	if err := p.openPacket(ifindex, cfg); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Queues returns the inside and outside ports, one per queue.
func (p *Ports) Queues() (inside, outside []bump.Port) { return p.ports[0], p.ports[1] }

// QueuesOf returns port's queues.
func (p *Ports) QueuesOf(port bump.PortID) []bump.Port { return p.ports[port.Index()] }

// Close detaches the classifier, closes the sockets and puts GRO back.
// Stop the workers first.
func (p *Ports) Close() error {
	var errs []error
	if p.Ports != nil {
		errs = append(errs, p.Ports.Close())
	}
	errs = append(errs, p.packet.close())
	return errors.Join(errs...)
}

// The backends (config backend, admin.PortStatus.Backend).
const (
	AFXDP    = "afxdp"    // an AF_XDP socket per queue (appliance/afxdp over xsk)
	AFPacket = "afpacket" // an AF_PACKET socket per port with GRO/GSO super-segments (appliance/afpacketport)
)

// zeroCopyCapable is xsk.ZeroCopyCapable (a variable for tests).
var zeroCopyCapable = xsk.ZeroCopyCapable

// chooseBackend picks the backend of both ports (the workers drive an
// inside and an outside queue of one kind together) and says why, per
// port. Configured, it is what the file says. Under auto it is AF_XDP only
// where it is the zero-copy path on both ports (the driver's
// NETDEV_XDP_ACT_XSK_ZEROCOPY); elsewhere AF_XDP copies each 1.5 KB frame
// into its own skb and UMEM slot, and AF_PACKET, which moves GRO
// super-segments of up to 64 KiB, is cheaper per byte (issue 10). Both run
// any number of queues.
//
// AF_XDP takes frames only from the receive queues it binds (cfg.Queues of
// each port): what RSS puts on a port's other queues, a connection's SYN
// among them, the classifier could only drop (xsk: NoSocket). So a port
// with more receive queues than that never gets AF_XDP: auto takes
// AF_PACKET, which reads every queue, and a configured afxdp is an error
// that says what to change.
func chooseBackend(cfg config.Config, ifindex [2]int) (string, [2]string, error) {
	var reasons [2]string
	names := [2]string{cfg.Inside, cfg.Outside}
	unbound := ""
	for p, idx := range ifindex {
		if n, err := rxQueues(idx); err == nil && n > cfg.Queues && unbound == "" {
			unbound = fmt.Sprintf("%s has %d receive queues and queues: is %d", names[p], n, cfg.Queues)
		}
	}
	if cfg.Backend == AFXDP && unbound != "" {
		return "", reasons, fmt.Errorf("backend afxdp: %s: AF_XDP reads only the queues it binds, and the frames RSS puts on the others (SYNs among them) would be dropped; set queues: to the ports' receive queues, or lower them (ethtool -L %s combined %d), or use backend: afpacket", unbound, cfg.Inside, cfg.Queues)
	}
	if cfg.Backend == AFXDP || cfg.Backend == AFPacket {
		for p := range reasons {
			reasons[p] = "backend: " + cfg.Backend + " in the configuration"
			if cfg.Backend == AFPacket {
				reasons[p] += packetQueues(cfg.Queues)
			}
		}
		return cfg.Backend, reasons, nil
	}
	var zc [2]bool
	var why [2]string
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
	if zc[0] && zc[1] && unbound == "" {
		for p := range reasons {
			reasons[p] = "auto: " + why[p] + " on both ports"
		}
		return AFXDP, reasons, nil
	}
	for p := range reasons {
		other := ""
		switch {
		case zc[0] && zc[1]:
			other = " on both ports, but " + unbound + " (AF_XDP would read only the bound queues)"
		case zc[p]:
			other = " (the other port's does not)"
		}
		reasons[p] = "auto: " + why[p] + other + ": AF_PACKET with GRO/GSO super-segments" + packetQueues(cfg.Queues)
	}
	return AFPacket, reasons, nil
}

// packetQueues says how the AF_PACKET backend spreads flows over queues.
func packetQueues(queues int) string {
	if queues <= 1 {
		return ", one queue per port"
	}
	return fmt.Sprintf(", %d sockets per port in a fanout group that gives both directions of a flow to one worker", queues)
}

// packetPorts are the AF_PACKET sockets of both ports and the GRO setting
// each interface had before Open turned it on.
type packetPorts struct {
	ifindex [2]int
	ports   [2][]*afpacketport.Port // one per queue
	groSet  [2]bool                 // GRO was off and Open turned it on: Close turns it off
}

// openPacket turns GRO on for both ports (so the kernel coalesces what the
// classifier passes) and opens cfg.Queues AF_PACKET sockets on each, in a
// fanout group when more than one (afpacketport.OpenFanout): socket i of
// both ports gets the same flows, and worker i drives the two.
func (p *Ports) openPacket(ifindex [2]int, cfg config.Config) error {
	p.packet.ifindex = ifindex
	names := [2]string{cfg.Inside, cfg.Outside}
	for i, idx := range ifindex {
		was, err := xsk.GRO(idx)
		if err != nil {
			return fmt.Errorf("%s interface %q: %w", bump.PortID(i), names[i], err)
		}
		if err := afpacketport.EnableGRO(idx); err != nil {
			return fmt.Errorf("%s interface %q: turn GRO on: %w", bump.PortID(i), names[i], err)
		}
		p.packet.groSet[i] = !was
		pp, err := afpacketport.OpenFanout(idx, max(cfg.Queues, 1), afpacketport.Options{QdiscBypass: true})
		if err != nil {
			return fmt.Errorf("%s interface %q: AF_PACKET port: %w", bump.PortID(i), names[i], err)
		}
		p.packet.ports[i] = pp
		for _, q := range pp {
			p.ports[i] = append(p.ports[i], q)
		}
	}
	return nil
}

// close closes the sockets and turns GRO off where Open turned it on.
func (pp *packetPorts) close() error {
	var errs []error
	for i := range pp.ports {
		for _, q := range pp.ports[i] {
			errs = append(errs, q.Close())
		}
		pp.ports[i] = nil
		if pp.groSet[i] {
			if err := xsk.SetGRO(pp.ifindex[i], false); err != nil {
				errs = append(errs, fmt.Errorf("put GRO back off: %w", err))
			}
			pp.groSet[i] = false
		}
	}
	return errors.Join(errs...)
}

// Backend returns the backend of port's sockets (AFXDP or
// AFPacket) and why it was chosen.
func (p *Ports) Backend(port bump.PortID) (backend, reason string) {
	return p.backend, p.reasons[port.Index()]
}

// PacketStats returns the AF_PACKET port statistics of port, summed over
// its sockets (zero with the AF_XDP backend).
func (p *Ports) PacketStats(port bump.PortID) afpacketport.Stats {
	var sum afpacketport.Stats
	for _, q := range p.packet.ports[port.Index()] {
		sum.Add(q.Stats())
	}
	return sum
}

// BackendCounters returns port's backend counters by name (snake_case of
// the statistics' field names): the AF_XDP sockets' statistics summed over
// queues (xsk.Stats), or the AF_PACKET port's (afpacketport.Stats) with the
// classifier's frames passed to the stack and the skbs dropped there after
// the socket's tap (their ratio is how much GRO coalesced). Both have the
// classifier's frames too long for the other port, sent to the workers
// instead (xdp_oversize: generic XDP's GRO super-segments).
func (p *Ports) BackendCounters(port bump.PortID) map[string]uint64 {
	bs := p.Bump.Stats()
	st := bs.Inside
	if port != bump.Inside {
		st = bs.Outside
	}
	if p.backend != AFPacket {
		m := counterMap(p.SocketStats(port))
		// xdp_no_socket: frames for the workers that came on a queue
		// without a socket, dropped (the port's channels were raised
		// past queues: while tcpincd ran; chooseBackend refuses it at
		// start).
		m["xdp_oversize"], m["xdp_no_socket"] = st.Oversize, st.NoSocket
		return m
	}
	m := counterMap(p.PacketStats(port))
	m["xdp_to_stack"], m["tc_stack_dropped"], m["xdp_oversize"] = st.ToStack, st.StackDropped, st.Oversize
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
