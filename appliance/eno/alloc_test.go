package eno

import "testing"

// Inputs live in package variables, as packet buffers do, so the tests
// measure the functions and not the test's own literals.
var (
	benchSYN      = cat(h("45 15 24 a3"), idA, nonceA)
	benchSYNACK   = cat(h("45 15 01 a3"), idB, nonceB)
	benchArea     = cat(h("02 04 05 b4 04 02 08 0a"), rep(0, 8), h("03 03 07"), benchSYN)
	benchAnswer   = cat(idB, nonceB)
	benchSubs     = []Suboption{{Byte: 0x24}, {Byte: 0xa3, Data: cat(idA, nonceA)}}
	benchSettings = Settings{Offers: []Offer{{0x23, cat(idA, nonceA)}, {TEP: 0x24}}, Valid: matchIDs}
	benchBSide    = Settings{Offers: offers(0x23, 0x24), Valid: matchIDs}
	sinkOutcome   Outcome
	sinkInt       int
)

// chooseStatic answers every resumption offer with a fixed answer, without
// allocating, as a real cache lookup would.
func chooseStatic(_ TEP, peer Suboption, room int) ([]byte, bool) {
	if peer.V() && len(peer.Data) >= 9 && room >= len(benchAnswer) {
		return benchAnswer, true
	}
	return nil, true
}

func TestZeroAllocs(t *testing.T) {
	var buf [MaxOptionLen]byte
	tests := []struct {
		name string
		fn   func()
	}{
		{"ParseSYN", func() {
			o, err := ParseSYN(benchSYN)
			if err != nil || o.Len() != 2 {
				panic(err)
			}
			sinkInt += len(o.At(1).Data)
		}},
		{"ParseSYN malformed", func() {
			if _, err := ParseSYN(h45overrun); err == nil {
				panic("accepted")
			}
		}},
		{"ParseNonSYN", func() {
			if ParseNonSYN(benchSYN) != nil {
				panic("rejected")
			}
		}},
		{"EncodeSYN", func() {
			n, err := EncodeSYN(buf[:], GlobalB, true, benchSubs)
			if err != nil {
				panic(err)
			}
			sinkInt += n
		}},
		{"Settings.PutSYN", func() {
			n, err := benchSettings.PutSYN(buf[:])
			if err != nil {
				panic(err)
			}
			sinkInt += n
		}},
		{"Settings.PutSYN with budget", func() {
			n, err := benchSettings.PutSYN(buf[:20])
			if err != nil {
				panic(err)
			}
			sinkInt += n
		}},
		{"Settings.PutSYNACK", func() {
			n, r := benchBSide.PutSYNACK(buf[:], benchSYN, chooseStatic)
			if r != Success {
				panic(r)
			}
			sinkInt += n
		}},
		{"Settings.Negotiate", func() {
			sinkOutcome = benchSettings.Negotiate(benchSYN, benchSYNACK)
			if !sinkOutcome.OK() {
				panic(sinkOutcome.Reason)
			}
			sinkInt += len(sinkOutcome.Transcript()) + len(sinkOutcome.Peer().Data)
		}},
		{"Settings.NegotiateOptions", func() {
			sinkOutcome = benchBSide.NegotiateOptions(benchSYNACK, benchArea)
			if !sinkOutcome.OK() {
				panic(sinkOutcome.Reason)
			}
		}},
		{"ScanOptions", func() {
			s := ScanOptions(benchArea)
			opt, r := s.SYNOption(benchArea)
			if r != Success {
				panic(r)
			}
			sinkInt += len(opt)
		}},
		{"PutNonSYN", func() {
			n, _ := PutNonSYN(buf[:])
			sinkInt += n
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
			}
		})
	}
}

var h45overrun = h("45 06 01 85 a3 00")
