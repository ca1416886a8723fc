package eno

import "errors"

// TCP option kinds the scanner knows besides ENO.
const (
	kindEOL          = 0
	kindNOP          = 1
	kindMD5          = 19  // TCP MD5 signature (RFC 2385)
	kindAO           = 29  // TCP Authentication Option (RFC 5925)
	kindTFO          = 34  // TCP Fast Open (RFC 7413)
	kindExperimental = 253 // RFC 6994 experimental option, 16-bit ExID
	kindExperiment2  = 254
	// LegacyExID is the ExID under which pre-RFC TCP-ENO used option 253.
	// Such an option is not TCP-ENO (§11).
	LegacyExID = 0x454E
	tfoExID    = 0xF989 // TFO's experimental encoding (RFC 7413 §4.1.1)
)

// MaxOptionsLen is the size of the largest TCP options area.
const MaxOptionsLen = 40

// MaxENOOptions is the most ENO options a 40-byte area can hold.
const MaxENOOptions = MaxOptionsLen / 2

// Errors of ScanOptions.
var (
	ErrOptionsTooLong = errors.New("eno: TCP options area longer than 40 bytes")
	ErrBadOptionList  = errors.New("eno: TCP option with a length below 2 or past the end of the options")
)

// Span locates one option in a TCP options area.
type Span struct {
	Off uint8 // offset of the kind byte
	Len uint8 // the option's length byte: kind and length included
}

// Of returns the option's bytes inside area.
func (s Span) Of(area []byte) []byte { return area[s.Off : int(s.Off)+int(s.Len)] }

// Scan is what ScanOptions found in a TCP options area.
type Scan struct {
	// ENO holds the first NumENO entries: every kind-69 option in order.
	ENO    [MaxENOOptions]Span
	NumENO int
	// Legacy is the first option 253 with ExID 0x454E (old TCP-ENO, not
	// TCP-ENO); NumLegacy counts them. A segment must not carry both it
	// and kind 69 (ENO-89).
	Legacy    Span
	NumLegacy int
	// TFO is set by a TCP Fast Open option with a cookie (kind 34, or 254
	// with ExID 0xF989, longer than its header): no ENO may be added to
	// such a SYN (ENO-43) and its SYN data gets discarded (ENO-45).
	TFO bool
	// Auth is set by a TCP MD5 signature (kind 19, RFC 2385) or a TCP-AO
	// option (kind 29, RFC 5925): the segments are signed end to end, over
	// the header's length (MD5) or its options too (TCP-AO), so a
	// middlebox may change neither them nor the data.
	Auth bool
	// NOPs counts NOP bytes: space that repacking the options could free
	// (docs/protocol.md §5).
	NOPs int
	// End is where the option list ends: the offset of an EOL, or of the
	// bad option when Err is set, or len(area).
	End int
	// Err is nil, ErrOptionsTooLong (nothing was scanned) or
	// ErrBadOptionList (the options before End were scanned).
	Err error
}

// ScanOptions walks a TCP options area (the bytes after the 20-byte TCP
// header, up to the data offset) and records the options that matter to
// ENO. It never panics and does not allocate.
func ScanOptions(area []byte) Scan {
	var s Scan
	if len(area) > MaxOptionsLen {
		s.Err = ErrOptionsTooLong
		return s
	}
	i := 0
	for i < len(area) {
		k := area[i]
		if k == kindEOL {
			break
		}
		if k == kindNOP {
			s.NOPs++
			i++
			continue
		}
		if i+1 >= len(area) || area[i+1] < 2 || i+int(area[i+1]) > len(area) {
			s.Err = ErrBadOptionList
			break
		}
		l := int(area[i+1])
		sp := Span{Off: uint8(i), Len: uint8(l)}
		switch {
		case k == Kind:
			// 40 bytes hold at most 20 two-byte options: never out of room.
			s.ENO[s.NumENO] = sp
			s.NumENO++
		case (k == kindExperimental || k == kindExperiment2) && l >= 4:
			exid := uint16(area[i+2])<<8 | uint16(area[i+3])
			if k == kindExperimental && exid == LegacyExID {
				if s.NumLegacy == 0 {
					s.Legacy = sp
				}
				s.NumLegacy++
			}
			if k == kindExperiment2 && exid == tfoExID && l > 4 {
				s.TFO = true
			}
		case k == kindTFO && l > 2:
			s.TFO = true
		case k == kindMD5 || k == kindAO:
			s.Auth = true
		}
		i += l
	}
	s.End = i
	return s
}

// SYNOption returns the one ENO option of a SYN segment's options area, or
// why there is none to negotiate with: NoOption, MultipleOptions (more than
// one means act as if none and disable, ENO-6) or BadTCPOptions. Legacy
// option 253 does not count: it is not TCP-ENO.
func (s *Scan) SYNOption(area []byte) ([]byte, Reason) {
	switch {
	case s.Err != nil:
		return nil, BadTCPOptions
	case s.NumENO == 0:
		return nil, NoOption
	case s.NumENO > 1:
		return nil, MultipleOptions
	}
	return s.ENO[0].Of(area), Success
}

// HasENO reports whether any ENO option is present: the one bit a non-SYN
// segment carries, however many options carry it (§4.1).
func (s *Scan) HasENO() bool { return s.NumENO > 0 }
