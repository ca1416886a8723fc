package eno

import "testing"

func BenchmarkParseSYN(b *testing.B) {
	for _, bc := range []struct {
		name string
		opt  []byte
	}{
		{"fresh-3B", h("45 03 23")},
		{"resume-21B", benchSYN},
		{"max-40B", cat(h("45 28 01 21 22 24 82 a0 01 02 03"), rep(0x23, 29))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.opt)))
			var o SYNOption
			for b.Loop() {
				if err := o.Parse(bc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPutSYN(b *testing.B) {
	var buf [MaxOptionLen]byte
	for _, bc := range []struct {
		name string
		s    *Settings
		dst  int
	}{
		{"fresh", &Settings{Offers: offers(0x23, 0x24)}, 40},
		{"resume", &benchSettings, 40},
		{"resume-budget-drop", &benchSettings, 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n, _ := bc.s.PutSYN(buf[:bc.dst])
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := bc.s.PutSYN(buf[:bc.dst]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPutSYNACK(b *testing.B) {
	var buf [MaxOptionLen]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSYN)))
	for b.Loop() {
		if _, r := benchBSide.PutSYNACK(buf[:], benchSYN, chooseStatic); r != Success {
			b.Fatal(r)
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	for _, bc := range []struct {
		name        string
		s           *Settings
		local, peer []byte
		wantTEPByte byte
	}{
		{"fresh", &Settings{}, h("45 04 24 23"), h("45 04 01 23"), 0x23},
		{"resume", &benchSettings, benchSYN, benchSYNACK, 0xa3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.local) + len(bc.peer)))
			for b.Loop() {
				sinkOutcome = bc.s.Negotiate(bc.local, bc.peer)
			}
			if sinkOutcome.TEPByte != bc.wantTEPByte {
				b.Fatalf("TEP byte %#x", sinkOutcome.TEPByte)
			}
		})
	}
}

func BenchmarkScanOptions(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchArea)))
	for b.Loop() {
		s := ScanOptions(benchArea)
		sinkInt += s.NumENO
	}
}
