package flow

import (
	"net/netip"
	"testing"
)

func BenchmarkSymmetricHash(b *testing.B) {
	k := KeyFrom(netip.MustParseAddrPort("10.0.0.1:12345"), netip.MustParseAddrPort("192.0.2.1:443"))
	b.ReportAllocs()
	var s uint64
	for b.Loop() {
		k.SrcPort++
		s += k.SymmetricHash()
	}
	_ = s
}
