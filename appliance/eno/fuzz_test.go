package eno

import (
	"bytes"
	"testing"
)

// synSeeds are SYN-form options from the tests: valid, edge and malformed.
var synSeeds = [][]byte{
	h("45 03 23"), h("45 04 01 23"), h("45 04 24 23"), h("45 02"), h("45 03 01"),
	h("45 06 01 00 03 23"), h("45 04 1d 23"), h("45 08 82 a3 aa bb cc 24"),
	h("45 06 21 a3 01 02"), h("45 03 a3"), cat(h("45 28 a3"), rep(0x5a, 37)),
	cat(h("45 14 a3"), idA, nonceA), cat(h("45 15 01 a3"), idB, nonceB),
	h("45 03 80"), h("45 05 80 23 00"), h("45 05 81 a3 00"), h("45 04 9f a3"),
	h("45 01"), h("44 02"), h("45 05 23 24 23"),
}

// FuzzParseSYN: ParseSYN never panics; whatever parses re-encodes to an
// option with the same meaning (global bits, explicitness, suboptions) that
// is no longer than the original; and negotiating with it, from either
// side, is consistent with PutSYNACK.
func FuzzParseSYN(f *testing.F) {
	for _, s := range synSeeds {
		f.Add(s)
	}
	b := Settings{Offers: offers(0x23, 0x24, 0x21, 0x22), Valid: matchIDs}
	a := Settings{Offers: offers(0x23, 0x24), Valid: matchIDs}
	f.Fuzz(func(t *testing.T, opt []byte) {
		o, err := ParseSYN(opt)
		if err != nil {
			if o.Present() {
				t.Fatalf("error %v with a present option", err)
			}
			if out := a.Negotiate(h("45 03 23"), opt); len(opt) > 0 && out.Reason != Malformed {
				t.Fatalf("Negotiate with malformed peer: %v", out.Reason)
			}
			return
		}
		if !bytes.Equal(o.Bytes(), opt) || o.Len() > MaxSuboptions {
			t.Fatalf("parsed %d suboptions of % x", o.Len(), opt)
		}
		ss := subs(&o)
		var buf [MaxOptionLen]byte
		n, err := EncodeSYN(buf[:], o.Global(), o.ExplicitGlobal(), ss)
		if err != nil {
			t.Fatalf("re-encoding % x: %v", opt, err)
		}
		if n > len(opt) {
			t.Fatalf("re-encoding % x grew to % x", opt, buf[:n])
		}
		o2, err := ParseSYN(buf[:n])
		if err != nil {
			t.Fatalf("re-encoded % x does not parse: %v", buf[:n], err)
		}
		if o2.Global() != o.Global().Meaning() || o2.ExplicitGlobal() != o.ExplicitGlobal() || !sameSubs(subs(&o2), ss) {
			t.Fatalf("% x re-encoded as % x changed meaning", opt, buf[:n])
		}

		// Host B answering this SYN sends something valid, and both ends
		// then agree on the TEP and the transcript (ENO-25).
		var ack [MaxOptionLen]byte
		m, r := b.PutSYNACK(ack[:], opt, chooseStatic)
		if r == Success {
			ob, oa := b.Negotiate(ack[:m], opt), b.Negotiate(opt, ack[:m])
			if !ob.OK() || !oa.OK() || ob.TEPByte != oa.TEPByte || ob.Role != RoleB || oa.Role != RoleA ||
				!bytes.Equal(ob.Transcript(), cat(opt, ack[:m])) || !bytes.Equal(oa.Transcript(), ob.Transcript()) {
				t.Fatalf("answer % x to % x: B %v, A %v", ack[:m], opt, ob.Reason, oa.Reason)
			}
		} else if m != 0 {
			t.Fatalf("PutSYNACK wrote %d bytes with reason %v", m, r)
		}
		// As the peer of an active opener: a success names a TEP in both.
		out := a.Negotiate(h("45 04 24 23"), opt)
		if out.OK() {
			if o.Count(out.TEP()) != 1 || out.Peer().TEP() != out.TEP() || out.Local().TEP() != out.TEP() {
				t.Fatalf("negotiated %#x from % x", out.TEP(), opt)
			}
		}
	})
}

// FuzzScanOptions: ScanOptions never panics, its spans lie inside the area
// and start with kind 69, cutting them out leaves no ENO option, and
// negotiation over the area never panics.
func FuzzScanOptions(f *testing.F) {
	f.Add(linuxSYN)
	f.Add(cat(linuxSYN, h("45 03 23")))
	f.Add(h("45 03 23 01 45 04 01 23"))
	f.Add(h("01 01 45 02 00 45 02 00"))
	f.Add(h("fd 05 45 4e 23 45 03 23"))
	f.Add(h("22 0a 01 02 03 04 05 06 07 08"))
	f.Add(h("fe 06 f9 89 01 02"))
	f.Add(h("45 03 23 08 00"))
	f.Add(h("01 45 05 23"))
	f.Add(bytes.Repeat(h("45 02"), 20))
	f.Add(benchArea)
	s := Settings{Offers: offers(0x23), PassiveRole: true, Valid: matchIDs}
	f.Fuzz(func(t *testing.T, area []byte) {
		sc := ScanOptions(area)
		if sc.End > len(area) || sc.NumENO > MaxENOOptions || sc.NOPs > len(area) {
			t.Fatalf("scan %+v of %d bytes", sc, len(area))
		}
		var stripped []byte
		prev := 0
		for _, sp := range sc.ENO[:sc.NumENO] {
			if int(sp.Off) < prev || int(sp.Off)+int(sp.Len) > sc.End {
				t.Fatalf("span %+v out of order or past End %d", sp, sc.End)
			}
			if opt := sp.Of(area); opt[0] != Kind || int(opt[1]) != len(opt) {
				t.Fatalf("span %+v is % x", sp, opt)
			}
			stripped = append(stripped, area[prev:sp.Off]...)
			prev = int(sp.Off) + int(sp.Len)
		}
		stripped = append(stripped, area[prev:sc.End]...)
		if sc.Err == nil {
			if s2 := ScanOptions(stripped); s2.NumENO != 0 || s2.Err != nil {
				t.Fatalf("stripping % x left %d ENO options, err %v", area, s2.NumENO, s2.Err)
			}
		}
		opt, r := sc.SYNOption(area)
		if (r == Success) != (opt != nil) {
			t.Fatalf("SYNOption % x with reason %v", opt, r)
		}
		out := s.NegotiateOptions(h("45 04 01 23"), area)
		if r != Success && out.Reason != r {
			t.Fatalf("NegotiateOptions reason %v, scan said %v", out.Reason, r)
		}
	})
}
