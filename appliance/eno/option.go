package eno

// Wire constants (RFC 8547 §4.1, §11).
const (
	// Kind is the TCP option kind of TCP-ENO.
	Kind = 69
	// MaxOptionLen bounds every TCP option: all options of a segment share
	// 40 bytes (data offset ≤ 15 words), so no ENO option can be longer.
	MaxOptionLen = 40
	// MaxSuboptions is the most suboptions a MaxOptionLen option can hold.
	MaxSuboptions = MaxOptionLen - 2
	// MaxLengthByteData is the most data a length byte can announce (nnnnn+1).
	MaxLengthByteData = 32
)

// TEP is a 7-bit TCP encryption protocol identifier, 0x20–0x7f (§4.1, §11).
type TEP uint8

// TEP identifiers registered by RFC 8547 and RFC 8548 (docs/protocol.md §1).
const (
	TEPExperimental       TEP = 0x20
	TEPTcpcryptP256       TEP = 0x21
	TEPTcpcryptP521       TEP = 0x22
	TEPTcpcryptCurve25519 TEP = 0x23
	TEPTcpcryptCurve448   TEP = 0x24
)

// Valid reports whether t is in the TEP identifier range 0x20–0x7f.
func (t TEP) Valid() bool { return t >= 0x20 && t <= 0x7f }

// Global is a global suboption byte, 0x00–0x1f (§4.2, Figure 5).
type Global uint8

// Bits of the global suboption.
const (
	GlobalB Global = 0x01 // passive role bit b
	GlobalA Global = 0x02 // application-aware bit a
	// globalZ are the reserved z bits: sent as 0 (ENO-15), ignored (ENO-16).
	globalZ Global = 0x1c
)

// B reports the passive role bit.
func (g Global) B() bool { return g&GlobalB != 0 }

// A reports the application-aware bit.
func (g Global) A() bool { return g&GlobalA != 0 }

// Meaning returns g without the reserved z bits: the part a receiver may
// act on (ENO-16) and a sender may send (ENO-15).
func (g Global) Meaning() Global { return g & (GlobalA | GlobalB) }

// Suboption is one TEP suboption of a SYN-form option.
type Suboption struct {
	// Byte is the first byte as sent: the v bit (0x80) and the TEP id.
	// For the negotiated TEP, host B's Byte is session ID byte 0 (ENO-D7).
	Byte byte
	// Data is the suboption data (v = 1), without any length byte. It
	// aliases the bytes it was parsed from.
	Data []byte
}

// TEP returns the suboption's TEP identifier, without the v bit.
func (s Suboption) TEP() TEP { return TEP(s.Byte & 0x7f) }

// V reports the v bit: set when the suboption carries (possibly empty) data.
func (s Suboption) V() bool { return s.Byte&0x80 != 0 }

// MalformedError is the error of an option that must be ignored. For a
// SYN-form option it means: ignore the option and disable encryption
// (ENO-21, ENO-22, ENO-28). All values are the package's sentinels, so
// errors.Is and == both work and returning one does not allocate.
type MalformedError struct {
	Rule string // the requirement or section that makes it malformed
	msg  string
}

func (e *MalformedError) Error() string {
	return "eno: " + e.msg + " (" + e.Rule + ")"
}

// Errors of ParseSYN and ParseNonSYN.
var (
	ErrNotENO         = &MalformedError{"RFC 8547 §4.1", "option kind is not 69"}
	ErrOptionLength   = &MalformedError{"RFC 9293 §3.1", "option length byte is below 2 or differs from the option's size"}
	ErrOptionTooLong  = &MalformedError{"RFC 9293 §3.1", "option is longer than the 40 bytes of TCP option space"}
	ErrLengthOverrun  = &MalformedError{"ENO-21", "length byte announces data past the end of the option"}
	ErrLengthNotTEP   = &MalformedError{"ENO-22", "length byte is followed by a byte in 0x00-0x9f"}
	ErrLengthByteLast = &MalformedError{"U-6", "length byte is the last byte of the option"}
)

// subRef locates one suboption inside SYNOption.raw.
type subRef struct {
	b   byte  // first byte: v bit and TEP id
	off uint8 // offset of the data in raw
	n   uint8 // data length
}

// SYNOption is a parsed SYN-form ENO option (§4.1, Figure 2). It aliases the
// bytes it was parsed from; copy them (Bytes) to keep them past the packet.
// The zero value is "no option".
type SYNOption struct {
	raw      []byte
	global   Global // first explicit global suboption, or implicit 0x00
	explicit bool
	globals  uint8 // explicit global suboptions seen, the first included
	n        uint8 // TEP suboptions
	subs     [MaxSuboptions]subRef
}

// ParseSYN parses a whole SYN-form ENO option: kind, length and contents.
// A *MalformedError means the option must be ignored and encryption
// disabled (ENO-21, ENO-22, U-6). ParseSYN does not allocate.
func ParseSYN(opt []byte) (SYNOption, error) {
	var o SYNOption
	err := o.Parse(opt)
	return o, err
}

// Parse is ParseSYN into o, which it overwrites. On error o is the zero
// SYNOption.
func (o *SYNOption) Parse(opt []byte) error {
	if err := o.parse(opt); err != nil {
		*o = SYNOption{}
		return err
	}
	return nil
}

func (o *SYNOption) parse(opt []byte) error {
	o.raw, o.global, o.explicit, o.globals, o.n = nil, 0, false, 0, 0
	if err := checkFrame(opt); err != nil {
		return err
	}
	end := len(opt)
	for i := 2; i < end; {
		x := opt[i]
		switch {
		case x < 0x20: // global suboption
			if !o.explicit { // later ones are ignored (ENO-8)
				o.global, o.explicit = Global(x), true
			}
			o.globals++
			i++
		case x < 0x80: // TEP id, v = 0, no data
			o.subs[o.n] = subRef{b: x, off: uint8(i + 1)}
			o.n++
			i++
		case x < 0xa0: // length byte 100nnnnn (ENO-D4)
			if i+1 == end {
				return ErrLengthByteLast
			}
			t := opt[i+1]
			if t < 0xa0 { // must be a TEP id with v = 1 (ENO-4, ENO-22)
				return ErrLengthNotTEP
			}
			n := int(x&0x1f) + 1
			if i+2+n > end {
				return ErrLengthOverrun
			}
			o.subs[o.n] = subRef{b: t, off: uint8(i + 2), n: uint8(n)}
			o.n++
			i += 2 + n
		default: // TEP id, v = 1, data runs to the end of the option
			o.subs[o.n] = subRef{b: x, off: uint8(i + 1), n: uint8(end - i - 1)}
			o.n++
			i = end
		}
	}
	o.raw = opt
	return nil
}

// checkFrame checks kind and length of a whole ENO option.
func checkFrame(opt []byte) error {
	if len(opt) < 2 {
		return ErrOptionLength
	}
	if opt[0] != Kind {
		return ErrNotENO
	}
	if int(opt[1]) != len(opt) {
		return ErrOptionLength
	}
	if len(opt) > MaxOptionLen {
		return ErrOptionTooLong
	}
	return nil
}

// ParseNonSYN checks that opt is one whole ENO option. Its contents are
// ignored (ENO-2): for ENO a non-SYN-form option is a one-bit signal.
func ParseNonSYN(opt []byte) error { return checkFrame(opt) }

// Bytes returns the option exactly as parsed (kind and length included),
// or nil for the zero SYNOption.
func (o *SYNOption) Bytes() []byte { return o.raw }

// Present reports whether o holds a parsed option.
func (o *SYNOption) Present() bool { return o.raw != nil }

// Global returns the global suboption that counts: the first explicit one
// (ENO-8), or the implicit 0x00 when there is none (ENO-D1). It is returned
// as received, z bits included; act only on Global().Meaning() (ENO-16).
func (o *SYNOption) Global() Global { return o.global }

// ExplicitGlobal reports whether the option carried a global suboption.
func (o *SYNOption) ExplicitGlobal() bool { return o.explicit }

// NumGlobals is the number of global suboption bytes, the ignored ones
// included. More than one breaks ENO-7 on the sender's side.
func (o *SYNOption) NumGlobals() int { return int(o.globals) }

// Len is the number of TEP suboptions.
func (o *SYNOption) Len() int { return int(o.n) }

// Vacuous reports an option with no TEP suboption (§4.6, ENO-38, ENO-39).
func (o *SYNOption) Vacuous() bool { return o.n == 0 }

// At returns the i-th TEP suboption in wire order, 0 ≤ i < Len().
func (o *SYNOption) At(i int) Suboption {
	r := o.subs[i]
	if r.b&0x80 == 0 {
		return Suboption{Byte: r.b}
	}
	return Suboption{Byte: r.b, Data: o.raw[r.off : int(r.off)+int(r.n) : int(r.off)+int(r.n)]}
}

// Count is the number of suboptions with TEP t, whatever their v bit.
func (o *SYNOption) Count(t TEP) int {
	c := 0
	for _, r := range o.subs[:o.n] {
		if TEP(r.b&0x7f) == t {
			c++
		}
	}
	return c
}

// Find returns the first suboption with TEP t, whatever its v bit.
func (o *SYNOption) Find(t TEP) (Suboption, bool) {
	for i, r := range o.subs[:o.n] {
		if TEP(r.b&0x7f) == t {
			return o.At(i), true
		}
	}
	return Suboption{}, false
}

// SYNTEP returns the segment's SYN TEP: the last TEP in the option, the one
// that decides what SYN data means (ENO-D5).
func (o *SYNOption) SYNTEP() (TEP, bool) {
	if o.n == 0 {
		return 0, false
	}
	return TEP(o.subs[o.n-1].b & 0x7f), true
}
