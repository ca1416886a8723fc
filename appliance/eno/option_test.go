package eno

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// h decodes hex with optional spaces: h("45 03 23").
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// rep is n copies of byte b.
func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// cat joins byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// subs collects an option's TEP suboptions in wire order.
func subs(o *SYNOption) []Suboption {
	var out []Suboption
	for i := 0; i < o.Len(); i++ {
		out = append(out, o.At(i))
	}
	return out
}

func sameSubs(a, b []Suboption) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Byte != b[i].Byte || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func TestParseSYN(t *testing.T) {
	tests := []struct {
		name     string
		opt      []byte
		global   Global
		explicit bool
		globals  int
		subs     []Suboption
	}{
		{"ENO-D1 one TEP, implicit global 0x00", h("45 03 23"), 0, false, 0,
			[]Suboption{{Byte: 0x23}}},
		{"§15 B's SYN-ACK, explicit b=1", h("45 04 01 23"), 0x01, true, 1,
			[]Suboption{{Byte: 0x23}}},
		{"§13 A offers X448 and X25519", h("45 04 24 23"), 0, false, 0,
			[]Suboption{{Byte: 0x24}, {Byte: 0x23}}},
		{"ENO-38 vacuous, no contents", h("45 02"), 0, false, 0, nil},
		{"ENO-38 vacuous with global", h("45 03 01"), 0x01, true, 1, nil},
		{"ENO-8 later global suboptions ignored", h("45 06 01 00 03 23"), 0x01, true, 3,
			[]Suboption{{Byte: 0x23}}},
		{"ENO-8 global after the TEPs still counts when first", h("45 04 23 03"), 0x03, true, 1,
			[]Suboption{{Byte: 0x23}}},
		{"ENO-16 z bits kept as received", h("45 04 1d 23"), 0x1d, true, 1,
			[]Suboption{{Byte: 0x23}}},
		{"ENO-D4 length byte then more suboptions", h("45 08 82 a3 aa bb cc 24"), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: h("aa bb cc")}, {Byte: 0x24}}},
		{"ENO-D4 length byte filling the option exactly", h("45 05 80 a3 07"), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: h("07")}}},
		{"ENO-D4 length byte 0x9f announces 32 bytes", cat(h("45 24 9f a3"), rep(0xee, 32)), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: rep(0xee, 32)}}},
		{"ENO-D4 v=1 TEP without length byte runs to the end", h("45 06 21 a3 01 02"), 0, false, 0,
			[]Suboption{{Byte: 0x21}, {Byte: 0xa3, Data: h("01 02")}}},
		{"v=1 TEP at the end with no data", h("45 03 a3"), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: []byte{}}}},
		{"ENO-23 last suboption longer than 32 bytes", cat(h("45 28 a3"), rep(0x5a, 37)), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: rep(0x5a, 37)}}},
		{"data bytes below 0x20 are data, not globals", h("45 05 a3 00 01"), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: h("00 01")}}},
		{"reserved TEP range 0x70-0x7f parses", h("45 04 70 ff"), 0, false, 0,
			[]Suboption{{Byte: 0x70}, {Byte: 0xff, Data: []byte{}}}},
		{"§13 tcpcrypt resumption, 20 bytes", cat(h("45 14 a3"), rep(1, 9), rep(2, 8)), 0, false, 0,
			[]Suboption{{Byte: 0xa3, Data: cat(rep(1, 9), rep(2, 8))}}},
		{"40-byte option is the largest", cat(h("45 28 01 a3"), rep(9, 36)), 0x01, true, 1,
			[]Suboption{{Byte: 0xa3, Data: rep(9, 36)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseSYN(tt.opt)
			if err != nil {
				t.Fatalf("ParseSYN(% x): %v", tt.opt, err)
			}
			if o.Global() != tt.global || o.ExplicitGlobal() != tt.explicit || o.NumGlobals() != tt.globals {
				t.Errorf("global %#x explicit %v count %d, want %#x %v %d",
					o.Global(), o.ExplicitGlobal(), o.NumGlobals(), tt.global, tt.explicit, tt.globals)
			}
			if got := subs(&o); !sameSubs(got, tt.subs) {
				t.Errorf("suboptions %v, want %v", got, tt.subs)
			}
			if o.Vacuous() != (len(tt.subs) == 0) {
				t.Errorf("Vacuous() = %v with %d suboptions", o.Vacuous(), len(tt.subs))
			}
			if !bytes.Equal(o.Bytes(), tt.opt) || !o.Present() {
				t.Errorf("Bytes() = % x", o.Bytes())
			}
		})
	}
}

func TestParseSYNMalformed(t *testing.T) {
	tests := []struct {
		name string
		opt  []byte
		want error
	}{
		{"U-6 length byte is the only content", h("45 03 80"), ErrLengthByteLast},
		{"U-6 length byte after a TEP, last", h("45 04 23 85"), ErrLengthByteLast},
		{"ENO-22 length byte then global suboption", h("45 05 80 00 00"), ErrLengthNotTEP},
		{"ENO-22 length byte then v=0 TEP", h("45 05 80 23 00"), ErrLengthNotTEP},
		{"ENO-22 length byte then length byte", h("45 05 80 80 a3"), ErrLengthNotTEP},
		{"ENO-22 length byte then 0x9f", h("45 05 80 9f 00"), ErrLengthNotTEP},
		{"ENO-21 data one byte past the end", h("45 05 81 a3 00"), ErrLengthOverrun},
		{"ENO-21 32 bytes announced, none there", h("45 04 9f a3"), ErrLengthOverrun},
		{"ENO-21 overrun after valid suboptions", h("45 07 01 23 82 a4 00"), ErrLengthOverrun},
		{"kind is not 69", h("44 02"), ErrNotENO},
		{"legacy option 253 is not ENO", h("fd 05 45 4e 23"), ErrNotENO},
		{"length byte 1", h("45 01"), ErrOptionLength},
		{"length byte 0", h("45 00"), ErrOptionLength},
		{"length byte larger than the slice", h("45 05 23"), ErrOptionLength},
		{"length byte smaller than the slice", h("45 03 23 24"), ErrOptionLength},
		{"empty", nil, ErrOptionLength},
		{"kind only", h("45"), ErrOptionLength},
		{"41 bytes cannot be in a TCP header", cat(h("45 29 a3"), rep(0, 38)), ErrOptionTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseSYN(tt.opt)
			if err != tt.want {
				t.Fatalf("ParseSYN(% x) error %v, want %v", tt.opt, err, tt.want)
			}
			var me *MalformedError
			if !errors.As(err, &me) || me.Rule == "" || me.Error() == "" {
				t.Errorf("error %v is not a *MalformedError with a rule", err)
			}
			if o.Present() || o.Len() != 0 || o.Global() != 0 {
				t.Errorf("failed parse left state: %+v", o)
			}
		})
	}
}

// A failed Parse must not leave an earlier option's state behind.
func TestParseResetsOnError(t *testing.T) {
	var o SYNOption
	if err := o.Parse(h("45 05 01 23 24")); err != nil {
		t.Fatal(err)
	}
	if err := o.Parse(h("45 03 80")); err != ErrLengthByteLast {
		t.Fatalf("error %v", err)
	}
	if o.Present() || o.Len() != 0 || o.ExplicitGlobal() {
		t.Errorf("state left after error: %+v", o)
	}
}

func TestSYNOptionLookups(t *testing.T) {
	o, err := ParseSYN(h("45 0a 24 82 a3 aa bb cc 21 23"))
	if err != nil {
		t.Fatal(err)
	}
	if tep, ok := o.SYNTEP(); !ok || tep != 0x23 { // ENO-D5: the last TEP
		t.Errorf("SYNTEP() = %#x %v, want 0x23", tep, ok)
	}
	if c := o.Count(0x23); c != 2 { // v bit ignored
		t.Errorf("Count(0x23) = %d, want 2", c)
	}
	if s, ok := o.Find(0x23); !ok || s.Byte != 0xa3 || !bytes.Equal(s.Data, h("aa bb cc")) || !s.V() || s.TEP() != 0x23 {
		t.Errorf("Find(0x23) = %+v %v", s, ok)
	}
	if _, ok := o.Find(0x22); ok {
		t.Error("Find(0x22) found a TEP that is not there")
	}
	var empty SYNOption
	if _, ok := empty.SYNTEP(); ok {
		t.Error("SYNTEP of the zero option")
	}
}

func TestNonSYN(t *testing.T) {
	var b [2]byte
	n, err := PutNonSYN(b[:]) // ENO-1: N = 0
	if err != nil || n != 2 || !bytes.Equal(b[:n], h("45 02")) {
		t.Fatalf("PutNonSYN = % x, %v", b[:n], err)
	}
	if _, err := PutNonSYN(b[:1]); err != ErrNoRoom {
		t.Errorf("PutNonSYN into 1 byte: %v", err)
	}
	for _, opt := range [][]byte{h("45 02"), h("45 05 80 00 ff"), h("45 03 00")} {
		if err := ParseNonSYN(opt); err != nil { // ENO-2: contents ignored
			t.Errorf("ParseNonSYN(% x): %v", opt, err)
		}
	}
	for _, opt := range [][]byte{h("45 01"), h("44 02"), h("45 04 00")} {
		if err := ParseNonSYN(opt); err == nil {
			t.Errorf("ParseNonSYN(% x) accepted", opt)
		}
	}
}

func TestEncodeSYN(t *testing.T) {
	tests := []struct {
		name     string
		g        Global
		explicit bool
		subs     []Suboption
		want     []byte
	}{
		{"implicit global", 0, false, []Suboption{{Byte: 0x23}}, h("45 03 23")},
		{"explicit b=1", GlobalB, true, []Suboption{{Byte: 0x23}}, h("45 04 01 23")},
		{"ENO-15 z bits sent as 0", 0x1f, true, []Suboption{{Byte: 0x23}}, h("45 04 03 23")},
		{"explicit 0x00 kept", 0, true, []Suboption{{Byte: 0x23}}, h("45 04 00 23")},
		{"ENO-20 length byte before data that is not last", 0, false,
			[]Suboption{{Byte: 0xa3, Data: h("aa bb cc")}, {Byte: 0x24}}, h("45 08 82 a3 aa bb cc 24")},
		{"last data needs no length byte", 0, false,
			[]Suboption{{Byte: 0x24}, {Byte: 0xa3, Data: h("aa bb cc")}}, h("45 07 24 a3 aa bb cc")},
		{"last v=1 with no data", 0, false, []Suboption{{Byte: 0xa3}}, h("45 03 a3")},
		{"vacuous", GlobalB, true, nil, h("45 03 01")},
		{"32 bytes with a length byte", 0, false,
			[]Suboption{{Byte: 0xa4, Data: rep(7, 32)}, {Byte: 0x23}}, cat(h("45 25 9f a4"), rep(7, 32), h("23"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := EncodedLen(tt.explicit, tt.subs)
			if err != nil || n != len(tt.want) {
				t.Errorf("EncodedLen = %d, %v; want %d", n, err, len(tt.want))
			}
			var buf [MaxOptionLen]byte
			n, err = EncodeSYN(buf[:], tt.g, tt.explicit, tt.subs)
			if err != nil || !bytes.Equal(buf[:n], tt.want) {
				t.Fatalf("EncodeSYN = % x, %v; want % x", buf[:n], err, tt.want)
			}
			o, err := ParseSYN(buf[:n])
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if o.Global() != tt.g.Meaning() || !sameSubs(subs(&o), normalize(tt.subs)) {
				t.Errorf("round trip: global %#x subs %v", o.Global(), subs(&o))
			}
		})
	}
}

// normalize makes v=1 suboptions carry non-nil data, as parsing does.
func normalize(in []Suboption) []Suboption {
	out := make([]Suboption, len(in))
	for i, s := range in {
		out[i] = s
		if s.V() && s.Data == nil {
			out[i].Data = []byte{}
		}
	}
	return out
}

func TestEncodeSYNErrors(t *testing.T) {
	tests := []struct {
		name     string
		g        Global
		explicit bool
		subs     []Suboption
		dst      int
		want     error
	}{
		{"global byte as TEP", 0, false, []Suboption{{Byte: 0x01}}, 40, ErrBadTEP},
		{"length byte as TEP", 0, false, []Suboption{{Byte: 0x85}}, 40, ErrBadTEP},
		{"data with v=0", 0, false, []Suboption{{Byte: 0x23, Data: h("00")}}, 40, ErrDataWithoutV},
		{"ENO-20 empty data not last", 0, false, []Suboption{{Byte: 0xa3}, {Byte: 0x24}}, 40, ErrDataTooLong},
		{"33 bytes not last", 0, false, []Suboption{{Byte: 0xa3, Data: rep(0, 33)}, {Byte: 0x24}}, 40, ErrDataTooLong},
		{"ENO-D1 implicit global must be 0", GlobalB, false, []Suboption{{Byte: 0x23}}, 40, ErrImplicitValue},
		{"longer than 40", 0, false, []Suboption{{Byte: 0xa3, Data: rep(0, 38)}}, 64, ErrOptionTooLong},
		{"short buffer", 0, false, []Suboption{{Byte: 0x23}}, 2, ErrNoRoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, tt.dst)
			if n, err := EncodeSYN(dst, tt.g, tt.explicit, tt.subs); err != tt.want || n != 0 {
				t.Errorf("EncodeSYN = %d, %v; want %v", n, err, tt.want)
			}
		})
	}
}

// Round trip: build, parse, and get the same meaning back.
func TestRoundTrip(t *testing.T) {
	cases := [][]Suboption{
		{{Byte: 0x23}},
		{{Byte: 0x21}, {Byte: 0x22}, {Byte: 0x23}, {Byte: 0x24}},
		{{Byte: 0xa1, Data: rep(1, 9)}, {Byte: 0xa3, Data: cat(rep(2, 9), rep(3, 8))}},
		{{Byte: 0xa1, Data: rep(1, 1)}, {Byte: 0x7f}, {Byte: 0xa2, Data: rep(2, 2)}, {Byte: 0xa0}},
		nil,
	}
	for _, c := range cases {
		for _, g := range []Global{0, GlobalB, GlobalA, GlobalA | GlobalB} {
			var buf [MaxOptionLen]byte
			n, err := EncodeSYN(buf[:], g, g != 0, c)
			if err != nil {
				t.Fatalf("EncodeSYN(%v): %v", c, err)
			}
			o, err := ParseSYN(buf[:n])
			if err != nil {
				t.Fatalf("ParseSYN(% x): %v", buf[:n], err)
			}
			if o.Global() != g || o.ExplicitGlobal() != (g != 0) || !sameSubs(subs(&o), normalize(c)) {
				t.Errorf("% x parsed to global %#x subs %v", buf[:n], o.Global(), subs(&o))
			}
		}
	}
}
