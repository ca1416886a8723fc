package packet

import "encoding/binary"

// TCP option kinds used by tcpinc.
const (
	OptEOL       = 0
	OptNOP       = 1
	OptMSS       = 2  // RFC 9293
	OptWScale    = 3  // RFC 7323
	OptSACKPerm  = 4  // RFC 2018
	OptSACK      = 5  // RFC 2018
	OptTimestamp = 8  // RFC 7323
	OptENO       = 69 // RFC 8547 TCP-ENO
	OptFastOpen  = 34 // RFC 7413 (ENO-43, ENO-45 look at it)
)

// MaxOptionsLen is the largest TCP options region: data offset 15 words minus
// the 20-byte fixed header.
const MaxOptionsLen = 40

// Option is one TCP option: its kind, its value (the bytes after kind and
// length, aliasing the frame) and the frame offset of its kind byte, so that a
// caller can patch the value in place with Packet.PatchTCP.
type Option struct {
	Kind  uint8
	Data  []byte
	Off   int
	Total int // kind + length + data, in bytes
}

// OptionIter walks a TCP options region. EOL ends the walk, NOP is skipped.
// A length byte below 2 or running past the region stops the walk with
// ErrBadOption (see Err). It never allocates.
//
//	it := p.Options()
//	for o, ok := it.Next(); ok; o, ok = it.Next() { ... }
//	if it.Err() != nil { ... }
type OptionIter struct {
	b    []byte
	base int
	i    int
	err  error
}

// ParseOptions returns an iterator over a raw options region (for example one
// the caller is building). Offsets in the returned options are relative to b.
func ParseOptions(b []byte) OptionIter { return OptionIter{b: b} }

// Next returns the next option, or false at the end of the region, at EOL,
// or on a malformed option.
func (it *OptionIter) Next() (Option, bool) {
	for it.err == nil && it.i < len(it.b) {
		k := it.b[it.i]
		switch k {
		case OptEOL:
			it.i = len(it.b)
			return Option{}, false
		case OptNOP:
			it.i++
			continue
		}
		if len(it.b)-it.i < 2 {
			it.err = ErrBadOption
			break
		}
		n := int(it.b[it.i+1])
		if n < 2 || n > len(it.b)-it.i {
			it.err = ErrBadOption
			break
		}
		o := Option{Kind: k, Data: it.b[it.i+2 : it.i+n], Off: it.base + it.i, Total: n}
		it.i += n
		return o, true
	}
	return Option{}, false
}

// Err returns ErrBadOption if the walk stopped on a malformed option.
func (it *OptionIter) Err() error { return it.err }

// FindOption returns the first option of the given kind.
func (p *Packet) FindOption(kind uint8) (Option, bool, error) {
	it := p.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Kind == kind {
			return o, true, nil
		}
	}
	return Option{}, false, it.Err()
}

// CountOption returns how many options of the given kind the segment carries,
// for rules such as ENO-6 (a SYN with more than one TCP-ENO option is treated
// as having none). A malformed options region gives ErrBadOption.
func (p *Packet) CountOption(kind uint8) (int, error) {
	n := 0
	it := p.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Kind == kind {
			n++
		}
	}
	return n, it.Err()
}

// MSS returns the value of a well-formed MSS option (kind 2, length 4).
func (p *Packet) MSS() (uint16, bool) {
	o, ok, _ := p.FindOption(OptMSS)
	if !ok || len(o.Data) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(o.Data), true
}

// ClampMSS lowers the MSS option to max if it is larger, updating the TCP
// checksum. It returns the MSS found (0 if none) and whether it changed it.
// A segment without an MSS option is left alone (the peer then assumes the
// default MSS: 536 for IPv4, 1220 for IPv6, which are small enough).
func (p *Packet) ClampMSS(max uint16) (old uint16, changed bool) {
	o, ok, _ := p.FindOption(OptMSS)
	if !ok || len(o.Data) != 2 {
		return 0, false
	}
	old = binary.BigEndian.Uint16(o.Data)
	if old <= max {
		return old, false
	}
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], max)
	if p.PatchTCP(o.Off+2, v[:]) != nil {
		return old, false
	}
	return old, true
}
