package eno

import (
	"bytes"
	"testing"
)

// A Linux SYN's options: MSS, SACK permitted, timestamps, NOP, window scale.
var linuxSYN = h("02 04 05 b4 04 02 08 0a 00 01 02 03 00 00 00 00 01 03 03 07")

func TestScanOptions(t *testing.T) {
	tests := []struct {
		name   string
		area   []byte
		eno    []Span
		legacy int
		tfo    bool
		nops   int
		end    int
		err    error
	}{
		{"empty", nil, nil, 0, false, 0, 0, nil},
		{"Linux SYN without ENO", linuxSYN, nil, 0, false, 1, 20, nil},
		{"Linux SYN with ENO appended", cat(linuxSYN, h("45 03 23")),
			[]Span{{20, 3}}, 0, false, 1, 23, nil},
		{"§13 full SYN: 19 bytes of options plus 20-byte resumption", cat(h("02 04 05 b4 04 02 08 0a"), rep(0, 8), h("03 03 07 45 14 a3"), rep(1, 17)),
			[]Span{{19, 20}}, 0, false, 0, 39, nil},
		{"ENO-6 two ENO options in a SYN", h("45 03 23 01 45 04 01 23"),
			[]Span{{0, 3}, {4, 4}}, 0, false, 1, 8, nil},
		{"EOL ends the list; padding after it is not parsed", h("01 01 45 02 00 45 02 00"),
			[]Span{{2, 2}}, 0, false, 2, 4, nil},
		{"ENO-89 legacy 253/0x454E is recorded, not ENO", h("fd 05 45 4e 23"),
			nil, 1, false, 0, 5, nil},
		{"ENO-89 legacy and kind 69 together", h("fd 05 45 4e 23 45 03 23"),
			[]Span{{5, 3}}, 1, false, 0, 8, nil},
		{"253 with another ExID is not legacy ENO", h("fd 04 12 34"), nil, 0, false, 0, 4, nil},
		{"253 too short for an ExID", h("fd 02"), nil, 0, false, 0, 2, nil},
		{"ENO-43 TFO with a cookie", h("22 0a 01 02 03 04 05 06 07 08"), nil, 0, true, 0, 10, nil},
		{"TFO cookie request is empty", h("22 02"), nil, 0, false, 0, 2, nil},
		{"experimental TFO with a cookie", h("fe 06 f9 89 01 02"), nil, 0, true, 0, 6, nil},
		{"experimental TFO cookie request", h("fe 04 f9 89"), nil, 0, false, 0, 4, nil},
		{"option length 0", h("45 03 23 08 00"), []Span{{0, 3}}, 0, false, 0, 3, ErrBadOptionList},
		{"option length 1", h("02 01"), nil, 0, false, 0, 0, ErrBadOptionList},
		{"option runs past the end", h("01 45 05 23"), nil, 0, false, 1, 1, ErrBadOptionList},
		{"kind byte without length at the end", h("45 02 02"), []Span{{0, 2}}, 0, false, 0, 2, ErrBadOptionList},
		{"area longer than 40 bytes", rep(1, 41), nil, 0, false, 0, 0, ErrOptionsTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ScanOptions(tt.area)
			if s.Err != tt.err || s.End != tt.end || s.NOPs != tt.nops || s.NumLegacy != tt.legacy || s.TFO != tt.tfo {
				t.Errorf("err %v end %d nops %d legacy %d tfo %v; want %v %d %d %d %v",
					s.Err, s.End, s.NOPs, s.NumLegacy, s.TFO, tt.err, tt.end, tt.nops, tt.legacy, tt.tfo)
			}
			if s.NumENO != len(tt.eno) {
				t.Fatalf("NumENO %d, want %d", s.NumENO, len(tt.eno))
			}
			for i, sp := range tt.eno {
				if s.ENO[i] != sp {
					t.Errorf("ENO[%d] = %+v, want %+v", i, s.ENO[i], sp)
				}
				if opt := sp.Of(tt.area); opt[0] != Kind {
					t.Errorf("span %d does not start at kind 69: % x", i, opt)
				}
			}
			if s.HasENO() != (len(tt.eno) > 0) {
				t.Errorf("HasENO() = %v", s.HasENO())
			}
		})
	}
}

// Twenty two-byte ENO options fill a 40-byte area: the span array is
// exactly large enough, and a non-SYN segment with many counts as one.
func TestScanOptionsFull(t *testing.T) {
	area := bytes.Repeat(h("45 02"), 20)
	s := ScanOptions(area)
	if s.Err != nil || s.NumENO != MaxENOOptions || s.End != 40 || !s.HasENO() {
		t.Fatalf("err %v NumENO %d end %d", s.Err, s.NumENO, s.End)
	}
	if s.ENO[19] != (Span{38, 2}) {
		t.Errorf("last span %+v", s.ENO[19])
	}
}

func TestScanSYNOption(t *testing.T) {
	tests := []struct {
		name string
		area []byte
		opt  []byte
		want Reason
	}{
		{"one option", cat(linuxSYN, h("45 03 23")), h("45 03 23"), Success},
		{"none", linuxSYN, nil, NoOption},
		{"legacy only is no ENO option", h("fd 05 45 4e 23"), nil, NoOption},
		{"ENO-6 two options: act as if none", h("45 03 23 45 03 23"), nil, MultipleOptions},
		{"malformed list", h("45 03 23 02 00"), nil, BadTCPOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ScanOptions(tt.area)
			opt, r := s.SYNOption(tt.area)
			if r != tt.want || !bytes.Equal(opt, tt.opt) {
				t.Errorf("SYNOption = % x, %v; want % x, %v", opt, r, tt.opt, tt.want)
			}
		})
	}
}

// The spans are what an engine needs to strip ENO options: cutting them out
// leaves a list with none and every other option intact.
func TestScanSpansStrip(t *testing.T) {
	area := cat(h("45 02 02 04 05 b4 01 45 03 23 03 03 07"))
	s := ScanOptions(area)
	var out []byte
	prev := 0
	for _, sp := range s.ENO[:s.NumENO] {
		out = append(out, area[prev:sp.Off]...)
		prev = int(sp.Off) + int(sp.Len)
	}
	out = append(out, area[prev:]...)
	if want := h("02 04 05 b4 01 03 03 07"); !bytes.Equal(out, want) {
		t.Fatalf("stripped % x, want % x", out, want)
	}
	if s2 := ScanOptions(out); s2.NumENO != 0 || s2.Err != nil {
		t.Errorf("after strip: %+v", s2)
	}
}

// A signed SYN, TCP MD5 (kind 19) or TCP-AO (kind 29), is flagged wherever
// the option sits; other options are not.
func TestScanOptionsAuth(t *testing.T) {
	md5 := cat(h("13 12"), rep(0xd5, 16))
	for _, c := range []struct {
		name string
		area []byte
		auth bool
	}{
		{"Linux SYN", linuxSYN, false},
		{"MD5 after MSS, NOP, window scale, SACK permitted", cat(h("02 04 05 b4 01 03 03 07 04 02 01 01"), md5), true},
		{"MD5 first", cat(md5, h("02 04 05 b4")), true},
		{"TCP-AO with a 96-bit MAC", cat(h("02 04 05 b4 1d 10 07 07"), rep(0xa0, 12)), true},
		{"kind 19 inside another option's bytes", h("fe 06 13 12 00 00"), false},
	} {
		if s := ScanOptions(c.area); s.Err != nil || s.Auth != c.auth {
			t.Errorf("%s: Auth %v (err %v), want %v", c.name, s.Auth, s.Err, c.auth)
		}
	}
}
