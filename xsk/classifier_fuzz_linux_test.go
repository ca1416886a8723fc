package xsk

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/xsk/classifiertest"
)

// classifyRef is the classifier's specification in Go (docs/architecture.md §3, see
// the package documentation): the reason counter a frame must land in, with
// the fast path on (off, every frame is cntAllToXSK). The BPF program is
// checked against it on the table and by FuzzClassifier.
func classifyRef(f []byte, listed func(FlowKey) bool) int {
	be16 := func(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
	isVLAN := func(et uint16) bool { return et == ethP8021Q || et == ethP8021AD }
	if len(f) < 14 {
		return cntTruncated
	}
	et, off := be16(f[12:]), 14
	for tag := 0; tag < 2 && isVLAN(et); tag++ {
		if len(f) < off+4 {
			return cntTruncated
		}
		et, off = be16(f[off+2:]), off+4
	}
	if isVLAN(et) {
		return cntUnparsed
	}
	var k FlowKey
	switch et {
	case ethPIPv4:
		if len(f) < off+20 {
			return cntTruncated
		}
		ip := f[off:]
		if ip[0]>>4 != 4 {
			return cntUnparsed
		}
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] == 1 { // ICMPv4: fragments and unfragmented error messages go to the engine
			icmp := off + ihl
			if ihl >= 20 && be16(ip[6:])&0x3fff != 0 {
				return cntFragment
			}
			if ihl >= 20 && len(f) > icmp && slices.Contains(icmpv4Errors, int32(f[icmp])) {
				return cntICMPError
			}
			return cntNonTCP
		}
		if ip[9] != 6 {
			return cntNonTCP
		}
		if ihl < 20 {
			return cntUnparsed
		}
		if be16(ip[6:])&0x3fff != 0 {
			return cntFragment
		}
		k.Family = 4
		copy(k.Src[:4], ip[12:16])
		copy(k.Dst[:4], ip[16:20])
		off += ihl
	case ethPIPv6:
		if len(f) < off+40 {
			return cntTruncated
		}
		ip := f[off:]
		if ip[0]>>4 != 6 {
			return cntUnparsed
		}
		switch nh := ip[6]; {
		case nh == 6:
		case slices.Contains(ipv6ExtHeaders, int32(nh)):
			return cntIPv6Ext
		case nh == 58 && len(f) > off+40 && ip[40] >= 1 && ip[40] <= 4: // ICMPv6 error message
			return cntICMPError
		default:
			return cntNonTCP
		}
		k.Family = 6
		copy(k.Src[:], ip[8:24])
		copy(k.Dst[:], ip[24:40])
		off += 40
	default:
		return cntNonTCP
	}
	if len(f) < off+20 {
		return cntTruncated
	}
	tcp := f[off:]
	if tcp[13]&packettest.SYN != 0 {
		return cntSYN
	}
	if tcp[13]&(packettest.FIN|packettest.RST) != 0 {
		return cntFINRST
	}
	k.SrcPort, k.DstPort = be16(tcp[0:]), be16(tcp[2:])
	if listed(k) {
		return cntFastPath
	}
	return cntUnknownFlow
}

// TestClassifyRefTable: the reference agrees with the table of
// xsk/classifiertest (it models the arrival port's switch as SetFastPath).
func TestClassifyRefTable(t *testing.T) {
	for _, c := range classifiertest.Cases() {
		got := cntAllToXSK
		if c.FastPath[c.Port] {
			keys := keysOf(c.Listed)
			got = classifyRef(c.Frame, func(k FlowKey) bool { return slices.Contains(keys, k) })
		}
		if want := counterOf(t, c.Reason); got != want {
			t.Errorf("%s: reference says counter %d, table says %s (%d)", c, got, c.Reason, want)
		}
	}
}

// FuzzClassifier runs arbitrary frames through the loaded BPF classifier
// (BPF_PROG_TEST_RUN) and requires the verdict and the counters classifyRef
// predicts, with the table's standard map. Needs root.
func FuzzClassifier(f *testing.F) {
	seen := map[string]bool{}
	for _, c := range classifiertest.Cases() {
		if !seen[string(c.Frame)] {
			seen[string(c.Frame)] = true
			f.Add(c.Frame)
		}
	}
	if testing.Short() {
		f.Skip("needs BPF")
	}
	requireRoot(f)
	b, err := newBump(1, 1) // devmap entries point at lo; nothing is attached
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	listed := keysOf(classifiertest.StandardMap)
	isListed := func(k FlowKey) bool { return slices.Contains(listed, k) }
	for _, k := range listed {
		if err := b.AllowFastPath(k); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 3000 {
			return // BPF_PROG_TEST_RUN refuses runts; XDP never sees them
		}
		for _, on := range []bool{true, false} {
			if err := b.SetFastPath(on); err != nil {
				t.Fatal(err)
			}
			reason := cntAllToXSK
			if on {
				reason = classifyRef(frame, isListed)
			}
			want, wantRet := wantDelta(reason, cntNoSocket), uint32(xdpDrop)
			if reason == cntFastPath || reason == cntNonTCP {
				want, wantRet = wantDelta(reason, cntToPeer), xdpRedirect
			}
			before := b.Stats()
			ret := runXDP(t, b.progs[Inside], frame)
			after := b.Stats()
			if got := diffStats(before.Inside, after.Inside); ret != wantRet || got != want {
				t.Fatalf("fast path %v, frame %x: ret %d counters %+v; reference: ret %d counters %+v", on, frame, ret, got, wantRet, want)
			}
		}
	})
}
