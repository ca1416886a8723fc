// Package scenario tests the encrypting engine (package engine) end to end
// and deterministically: two engines back to back (G_A with its inside host
// a, G_B with inside host b), joined by a scripted untrusted link that drops,
// duplicates, reorders and delays single frames by rule, on a fake clock.
// The hosts are scripts, not TCP stacks: a test builds every host segment
// itself (packettest) and asserts the exact segments that come out on each
// side. A host-based tcpcrypt peer (Peer) can take the place of one
// appliance, to decrypt what the other puts on the wire or to frame its
// stream differently than an appliance would.
//
// Public-key work runs inline (Deps.Pool nil) unless a test asks for a
// cryptopool.Pool; World then waits for the pool's jobs before it moves the
// fake clock, so every run is deterministic either way. The property tests
// (TestRandomExchanges, TestRandomHandshakes) drive scripted hosts with a
// simple retransmission rule over a randomly impaired link, seeded.
//
//	go test ./appliance/engine/scenario                  # everything
//	go test ./appliance/engine/scenario -short           # fewer random seeds
//	SCENARIO_LOG=1 go test ./appliance/engine/scenario -run TestX -v   # engines' debug log
//
// Tests cite requirement ids of the conformance checklist, docs/requirements.md (ENO-n,
// TC-n, U-n) and the engine contract (docs/architecture.md §2).
package scenario

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// Seg is one TCP segment as it appears in an Ethernet frame, decoded by
// plain code independent of package packet. Options and Payload alias Raw.
type Seg struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	Urgent   uint16
	Options  []byte
	Payload  []byte
	Raw      []byte // the whole frame
}

// Errors of ParseFrame.
var (
	ErrNotTCP      = errors.New("scenario: not an IPv4/IPv6 TCP frame")
	ErrTruncated   = errors.New("scenario: truncated frame")
	ErrIPChecksum  = errors.New("scenario: bad IPv4 header checksum")
	ErrTCPChecksum = errors.New("scenario: bad TCP checksum")
)

// ParseFrame decodes an Ethernet II frame carrying IPv4 or IPv6 (no
// extension headers) and TCP, and checks the IPv4 header checksum and the
// TCP checksum with the reference implementation (packettest.RefChecksum).
func ParseFrame(frame []byte) (Seg, error) {
	if len(frame) < 14 {
		return Seg{}, ErrTruncated
	}
	et := binary.BigEndian.Uint16(frame[12:])
	ip := frame[14:]
	var src, dst netip.Addr
	var l4 []byte
	switch et {
	case 0x0800:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return Seg{}, ErrTruncated
		}
		ihl := int(ip[0]&15) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || tot < ihl || tot > len(ip) {
			return Seg{}, ErrTruncated
		}
		if ip[9] != 6 {
			return Seg{}, ErrNotTCP
		}
		if packettest.RefChecksum(ip[:ihl]) != 0 {
			return Seg{}, ErrIPChecksum
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		l4 = ip[ihl:tot]
	case 0x86dd:
		if len(ip) < 40 {
			return Seg{}, ErrTruncated
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+pl > len(ip) {
			return Seg{}, ErrTruncated
		}
		if ip[6] != 6 {
			return Seg{}, ErrNotTCP
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		l4 = ip[40 : 40+pl]
	default:
		return Seg{}, ErrNotTCP
	}
	if len(l4) < 20 {
		return Seg{}, ErrTruncated
	}
	doff := int(l4[12]>>4) * 4
	if doff < 20 || doff > len(l4) {
		return Seg{}, ErrTruncated
	}
	if packettest.RefChecksum(packettest.Pseudo(src, dst, 6, len(l4)), l4) != 0 {
		return Seg{}, ErrTCPChecksum
	}
	return Seg{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:])),
		Seq:     binary.BigEndian.Uint32(l4[4:]),
		Ack:     binary.BigEndian.Uint32(l4[8:]),
		Flags:   l4[13],
		Window:  binary.BigEndian.Uint16(l4[14:]),
		Urgent:  binary.BigEndian.Uint16(l4[18:]),
		Options: l4[20:doff],
		Payload: l4[doff:],
		Raw:     frame,
	}, nil
}

// Has reports whether all the given flag bits are set.
func (s Seg) Has(flags uint8) bool { return s.Flags&flags == flags }

// ENO returns every kind-69 option of the segment, each with its kind and
// length bytes.
func (s Seg) ENO() [][]byte {
	sc := eno.ScanOptions(s.Options)
	out := make([][]byte, sc.NumENO)
	for i := range sc.NumENO {
		out[i] = sc.ENO[i].Of(s.Options)
	}
	return out
}

// Option returns the first option of the given kind (kind and length bytes
// included), or nil.
func (s Seg) Option(kind byte) []byte {
	o := s.Options
	for i := 0; i < len(o); {
		switch o[i] {
		case 0:
			return nil
		case 1:
			i++
			continue
		}
		if i+1 >= len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o) {
			return nil
		}
		if o[i] == kind {
			return o[i : i+int(o[i+1])]
		}
		i += int(o[i+1])
	}
	return nil
}

// MSS returns the MSS option's value, or 0.
func (s Seg) MSS() uint16 {
	if o := s.Option(2); len(o) == 4 {
		return binary.BigEndian.Uint16(o[2:])
	}
	return 0
}

// SACK returns the SACK blocks (RFC 2018) as [left, right) pairs.
func (s Seg) SACK() [][2]uint32 {
	o := s.Option(5)
	var out [][2]uint32
	for i := 2; i+8 <= len(o); i += 8 {
		out = append(out, [2]uint32{binary.BigEndian.Uint32(o[i:]), binary.BigEndian.Uint32(o[i+4:])})
	}
	return out
}

// TS returns the timestamp option's TSval and TSecr and whether it is there.
func (s Seg) TS() (val, ecr uint32, ok bool) {
	o := s.Option(8)
	if len(o) != 10 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(o[2:]), binary.BigEndian.Uint32(o[6:]), true
}

// End is the sequence number after the segment (SYN and FIN count one).
func (s Seg) End() uint32 {
	e := s.Seq + uint32(len(s.Payload))
	if s.Has(packettest.SYN) {
		e++
	}
	if s.Has(packettest.FIN) {
		e++
	}
	return e
}

func (s Seg) String() string {
	var f strings.Builder
	for i, n := range []string{"F", "S", "R", "P", ".", "U"} {
		if s.Flags&(1<<i) != 0 {
			f.WriteString(n)
		}
	}
	return fmt.Sprintf("%v>%v [%s] seq %d ack %d win %d len %d opts %x",
		s.Src, s.Dst, f.String(), s.Seq, s.Ack, s.Window, len(s.Payload), s.Options)
}

// FixChecksums recomputes the IPv4 header checksum and the TCP checksum of
// an Ethernet frame that ParseFrame would accept but for its checksums.
func FixChecksums(frame []byte) {
	if len(frame) < 14 {
		return
	}
	ip := frame[14:]
	var src, dst netip.Addr
	var l4 []byte
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		if len(ip) < 20 {
			return
		}
		ihl := int(ip[0]&15) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || tot < ihl+20 || tot > len(ip) {
			return
		}
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], packettest.RefChecksum(ip[:ihl]))
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		l4 = ip[ihl:tot]
	case 0x86dd:
		if len(ip) < 60 {
			return
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if pl < 20 || 40+pl > len(ip) {
			return
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		l4 = ip[40 : 40+pl]
	default:
		return
	}
	l4[16], l4[17] = 0, 0
	binary.BigEndian.PutUint16(l4[16:], packettest.RefChecksum(packettest.Pseudo(src, dst, 6, len(l4)), l4))
}
