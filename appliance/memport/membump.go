package memport

import (
	"encoding/binary"
	"sync"

	"github.com/tcpinc/tcpinc/bump"
	"github.com/tcpinc/tcpinc/flow"
)

// Bump is the in-memory model of the XDP classifier on both ports (xsk's
// program) and of its fast-path map. A frame arriving on a port's wire goes
// either straight to the other port's wire (the kernel fast path) or to the
// port's queue (a Port) chosen like RSS, for a worker. The rules are the
// program's, restated on byte offsets:
//
//   - ICMP error messages (ICMPv4 types 3, 4, 5, 11, 12 with a valid IHL,
//     and every ICMPv4 fragment, whose type a later fragment does not show;
//     ICMPv6 types 1-4, and ICMPv6 redirects, type 137, which quote the
//     redirected packet): worker, on either port (one from the
//     inside may quote decrypted plaintext of a delivered segment; for a
//     path MTU error of an encrypted flow the engine translates the quoted
//     sequence number and lowers the MTU);
//   - not IPv4/IPv6, or IP but not TCP: fast path;
//   - TCP with SYN, FIN or RST set: worker (it sees every connection start,
//     end and tuple reuse, even for listed flows);
//   - other TCP: fast path if the direction's FlowKey is in the map, else worker;
//   - anything the program cannot classify (truncated headers, more than two
//     VLAN tags, bad IP version or IHL, IPv4 fragments of TCP, IPv6 with an
//     extension header): worker;
//   - a frame for the fast path that is longer than the other port
//     forwards, when SetMTU gave that port an MTU: worker.
//
// With the fast path disabled (xsk.Bump.SetFastPath(false)) every frame,
// non-TCP included, goes to a worker. Bump
// implements bump.FastPath.
type Bump struct {
	mu      sync.Mutex
	enabled bool
	flows   map[flow.Key]uint64 // frames forwarded per listed direction
	ports   [2][]*Port
	wires   [2]func([]byte) // wires[p]: frames leaving port p
	rss     *flow.RSS       // the NIC's RSS that picks a TCP frame's queue; nil: a keyed symmetric hash
	mtu     [2]int          // SetMTU; 0: no limit
	// Redirected counts frames the model forwarded on the fast path, per
	// arrival port.
	redirected [2]uint64
}

// NewBump wires the model to the ports' queues. wires[p] receives every
// frame that leaves port p on the fast path; give the same function as the
// Port sink of port p so both paths land in one ordered stream.
// maxFlows sizes the map up front so that inserting does not allocate.
func NewBump(inside, outside []*Port, wires [2]func([]byte), fastPath bool, maxFlows int) *Bump {
	return &Bump{
		enabled: fastPath,
		flows:   make(map[flow.Key]uint64, maxFlows),
		ports:   [2][]*Port{inside, outside},
		wires:   wires,
	}
}

// SetRSS makes the model pick a TCP frame's queue as a NIC with this RSS
// function does (nil: flow.Key.Owner, a keyed hash no NIC computes).
func (b *Bump) SetRSS(r *flow.RSS) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rss = r
}

// SetMTU gives port an MTU: a frame for the fast path toward it that is
// longer than mtu plus an Ethernet header and one VLAN tag goes to a
// worker instead, as xsk's program does (the kernel would drop it after
// the redirect). 0, the default: no limit.
func (b *Bump) SetMTU(port bump.PortID, mtu int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mtu[port.Index()] = mtu
}

// AllowFastPath implements bump.FastPath.
func (b *Bump) AllowFastPath(k flow.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.flows[k]; !ok {
		b.flows[k] = 0
	}
	return nil
}

// RemoveFastPath implements bump.FastPath.
func (b *Bump) RemoveFastPath(k flow.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.flows, k)
	return nil
}

// FastPathLen counts the map's entries, one per listed direction, as
// xsk.Bump.FastPathLen does.
func (b *Bump) FastPathLen() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.flows), nil
}

// Listed reports whether direction k is in the fast-path map.
func (b *Bump) Listed(k flow.Key) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.flows[k]
	return ok
}

// Redirected returns how many frames arriving on port went the fast path.
func (b *Bump) Redirected(port bump.PortID) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.redirected[port.Index()]
}

// Arrive is a frame arriving on port from its wire. It reports false if the
// frame was for a worker and its queue had no room (a drop).
func (b *Bump) Arrive(port bump.PortID, frame []byte) bool {
	b.mu.Lock()
	toPeer, key, tcp := b.classify(frame)
	if m := b.mtu[1-port.Index()]; toPeer && m > 0 && len(frame) > m+18 {
		toPeer = false
	}
	if toPeer {
		b.redirected[port.Index()]++
		if tcp {
			b.flows[key]++
		}
		out := b.wires[1-port.Index()]
		b.mu.Unlock()
		if out != nil {
			out(frame)
		}
		return true
	}
	b.mu.Unlock()
	qs := b.ports[port.Index()]
	q := 0
	if tcp && len(qs) > 1 {
		if b.rss != nil {
			q = b.rss.Queue(key) % len(qs)
		} else {
			q = key.Owner(len(qs)) // RSS stand-in: a symmetric hash of the tuple
		}
	}
	return qs[q].Inject(frame)
}

// classify applies the classifier's rules (see Bump). toPeer means the
// fast path; tcp means key holds the frame's TCP flow direction.
func (b *Bump) classify(f []byte) (toPeer bool, key flow.Key, tcp bool) {
	if len(f) < 14 {
		return false, key, false
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	for tags := 0; et == 0x8100 || et == 0x88a8; tags++ {
		if tags == 2 || len(f) < off+6 {
			return false, key, false
		}
		off += 4
		et = binary.BigEndian.Uint16(f[off:])
	}
	off += 2
	switch et {
	case 0x0800:
		if len(f) < off+20 || f[off]>>4 != 4 {
			return false, key, false
		}
		ihl := int(f[off]&0x0f) * 4
		if f[off+9] == 1 {
			icmp := off + ihl
			frag := binary.BigEndian.Uint16(f[off+6:])&0x3fff != 0
			isErr := ihl >= 20 && (frag || len(f) > icmp && icmpv4Error(f[icmp]))
			return b.enabled && !isErr, key, false
		}
		if f[off+9] == 51 { // AH: TCP may be inside (classifiertest)
			return false, key, false
		}
		if f[off+9] != 6 {
			return b.enabled, key, false
		}
		if ihl < 20 || binary.BigEndian.Uint16(f[off+6:])&0x3fff != 0 {
			return false, key, false
		}
		copy(key.Src[:4], f[off+12:off+16])
		copy(key.Dst[:4], f[off+16:off+20])
		key.Family = 4
		off += ihl
	case 0x86dd:
		if len(f) < off+40 || f[off]>>4 != 6 {
			return false, key, false
		}
		switch nh := f[off+6]; nh {
		case 6:
		case 0, 43, 44, 51, 60, 135, 139, 140, 253, 254:
			return false, key, false
		case 58:
			t := byte(0)
			if len(f) > off+40 {
				t = f[off+40]
			}
			isErr := t >= 1 && t <= 4 || t == 137 // errors, and redirects: both quote a packet
			return b.enabled && !isErr, key, false
		default:
			return b.enabled, key, false
		}
		copy(key.Src[:], f[off+8:off+24])
		copy(key.Dst[:], f[off+24:off+40])
		key.Family = 6
		off += 40
	default:
		return b.enabled, key, false
	}
	if len(f) < off+20 {
		return false, key, false
	}
	key.SrcPort = binary.BigEndian.Uint16(f[off:])
	key.DstPort = binary.BigEndian.Uint16(f[off+2:])
	if f[off+13]&0x07 != 0 { // SYN, FIN or RST
		return false, key, true
	}
	_, listed := b.flows[key]
	return b.enabled && listed, key, true
}

// icmpv4Error reports an ICMPv4 error message type (RFC 1122 §3.2.2):
// destination unreachable, source quench, redirect, time exceeded,
// parameter problem.
func icmpv4Error(typ byte) bool {
	return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
}
