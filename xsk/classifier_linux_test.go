package xsk

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// runXDP runs prog on frame with BPF_PROG_TEST_RUN and returns its action.
// The kernel refuses frames shorter than an Ethernet header (EINVAL), as it
// never gives one to an XDP program (bpf_xdp_adjust_head/tail enforce the
// same floor); such frames are checked for that refusal, and the
// classifier's own bounds checks start to matter at 14 bytes.
func runXDP(t *testing.T, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if len(frame) < 14 {
		if !errors.Is(err, unix.EINVAL) {
			t.Fatalf("BPF_PROG_TEST_RUN of a %d-byte frame: %v, want EINVAL", len(frame), err)
		}
		return 0
	}
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN (%d-byte frame): %v", len(frame), err)
	}
	return ret
}

var (
	ip4a   = netip.MustParseAddr("10.77.0.1")
	ip4b   = netip.MustParseAddr("10.77.0.2")
	ip6a   = netip.MustParseAddr("fd77::1")
	ip6b   = netip.MustParseAddr("fd77::2")
	listed = []FlowKey{
		flowKeyOf(ip4a, ip4b, 40000, 443),
		flowKeyOf(ip6a, ip6b, 40000, 443),
	}
	vlan100 = [2]uint16{ethP8021Q, 100}
	sTag200 = [2]uint16{ethP8021AD, 200}
)

type classifierCase struct {
	name   string
	frame  []byte
	reason int  // the reason counter that must move
	toPeer bool // devmap path (else the engine path)
}

func tcp4(sport, dport uint16, flags uint8, o ip4Opts, tags ...[2]uint16) []byte {
	return ether(ethPIPv4, ipv4(ip4a, ip4b, 6, tcp(sport, dport, flags, []byte("data")), o), tags...)
}

func tcp6(sport, dport uint16, flags uint8, tags ...[2]uint16) []byte {
	return ether(ethPIPv6, ipv6(ip6a, ip6b, 6, tcp(sport, dport, flags, []byte("data"))), tags...)
}

func classifierCases() []classifierCase {
	data := uint8(tcpACK | tcpPSH)
	quoted4 := ipv4(ip4a, ip4b, 6, tcp(40000, 443, data, nil), ip4Opts{})[:28] // the IP header and 8 bytes of TCP
	quoted6 := ipv6(ip6a, ip6b, 6, tcp(40000, 443, data, nil))
	quoted4r := ipv4(ip4b, ip4a, 6, tcp(443, 40000, data, []byte("delivered plaintext")), ip4Opts{})
	quoted6r := ipv6(ip6b, ip6a, 6, tcp(443, 40000, data, []byte("delivered plaintext")))
	hbh := append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp(40000, 443, data, nil)...) // hop-by-hop, then TCP
	cases := []classifierCase{
		{"ARP", ether(0x0806, arpRequest(ip4a, ip4b)), cntNonTCP, true},
		{"ICMPv4 echo", ether(ethPIPv4, ipv4(ip4a, ip4b, 1, icmpMsg(8, nil), ip4Opts{})), cntNonTCP, true},
		{"UDP", ether(ethPIPv4, ipv4(ip4a, ip4b, 17, udp(5353, 53, []byte("q")), ip4Opts{})), cntNonTCP, true},
		{"IPv6 ND (ICMPv6 NS)", ether(ethPIPv6, ipv6(ip6a, ip6b, 58, icmpMsg(135, make([]byte, 16)))), cntNonTCP, true},
		{"IPv6 UDP", ether(ethPIPv6, ipv6(ip6a, ip6b, 17, udp(1, 2, nil))), cntNonTCP, true},
		{"IPv6 ESP", ether(ethPIPv6, ipv6(ip6a, ip6b, 50, make([]byte, 24))), cntNonTCP, true},
		{"LLDP", ether(0x88cc, make([]byte, 32)), cntNonTCP, true},
		{"IPv4 UDP fragment", ether(ethPIPv4, ipv4(ip4a, ip4b, 17, make([]byte, 8), ip4Opts{fragOff: 100})), cntNonTCP, true},
		{"TCP SYN v4", tcp4(40000, 443, tcpSYN, ip4Opts{}), cntSYN, false},
		{"TCP SYN v4 of a listed flow", tcp4(40000, 443, tcpSYN, ip4Opts{}), cntSYN, false},
		{"TCP SYN-ACK v6", tcp6(443, 40000, tcpSYN|tcpACK), cntSYN, false},
		{"TCP data v4 listed", tcp4(40000, 443, data, ip4Opts{}), cntFastPath, true},
		{"TCP FIN v4 listed", tcp4(40000, 443, tcpFIN|tcpACK, ip4Opts{}), cntFINRST, false},
		{"TCP RST v4 listed", tcp4(40000, 443, tcpRST, ip4Opts{}), cntFINRST, false},
		{"TCP RST-ACK v6 listed", tcp6(40000, 443, tcpRST|tcpACK), cntFINRST, false},
		{"TCP FIN v4 unlisted", tcp4(40001, 443, tcpFIN|tcpACK, ip4Opts{}), cntFINRST, false},
		{"TCP SYN-FIN v4 listed (SYN counts)", tcp4(40000, 443, tcpSYN|tcpFIN, ip4Opts{}), cntSYN, false},
		{"VLAN TCP FIN listed", tcp4(40000, 443, tcpFIN|tcpACK, ip4Opts{}, vlan100), cntFINRST, false},
		{"TCP data v6 listed", tcp6(40000, 443, data), cntFastPath, true},
		{"TCP data v4 unlisted (ports)", tcp4(40001, 443, data, ip4Opts{}), cntUnknownFlow, false},
		{"TCP data v4 unlisted (reverse direction)", ether(ethPIPv4, ipv4(ip4b, ip4a, 6, tcp(443, 40000, data, nil), ip4Opts{})), cntUnknownFlow, false},
		{"TCP data v6 unlisted", tcp6(40000, 444, data), cntUnknownFlow, false},
		{"TCP v4 with IP options listed", tcp4(40000, 443, data, ip4Opts{options: []byte{1, 1, 1, 0}}), cntFastPath, true},
		{"VLAN TCP listed", tcp4(40000, 443, data, ip4Opts{}, vlan100), cntFastPath, true},
		{"VLAN TCP unlisted", tcp4(40002, 443, data, ip4Opts{}, vlan100), cntUnknownFlow, false},
		{"VLAN TCP SYN", tcp4(40000, 443, tcpSYN, ip4Opts{}, vlan100), cntSYN, false},
		{"VLAN ARP", ether(0x0806, arpRequest(ip4a, ip4b), vlan100), cntNonTCP, true},
		{"QinQ TCP v6 listed", tcp6(40000, 443, data, sTag200, vlan100), cntFastPath, true},
		{"QinQ TCP unlisted", tcp4(1, 2, data, ip4Opts{}, sTag200, vlan100), cntUnknownFlow, false},
		{"QinQ ICMPv6", ether(ethPIPv6, ipv6(ip6a, ip6b, 58, icmpMsg(128, nil)), sTag200, vlan100), cntNonTCP, true},
		// ICMP errors go to the engine, on either port (the table runs on
		// both): from the inside one may quote decrypted plaintext of a
		// delivered segment, from the outside a path MTU error needs its
		// quoted sequence number translated. Informational ICMP and
		// errors the engine could not read (fragmented, bad IHL, no type
		// byte) are non-TCP.
		{"VLAN ICMPv4 fragmentation needed, IP options", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, icmpErr(3, 4, quoted4), ip4Opts{options: []byte{1, 1, 1, 0}}), vlan100), cntICMPError, false},
		{"ICMPv4 fragmentation needed, fragmented", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, icmpErr(3, 4, quoted4), ip4Opts{moreFrag: true})), cntNonTCP, true},
		{"ICMPv4 time exceeded, non-first fragment", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, icmpErr(11, 0, quoted4), ip4Opts{fragOff: 10})), cntNonTCP, true},
		{"ICMPv4 fragmentation needed, IHL 4", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, icmpErr(3, 4, quoted4), ip4Opts{ihl: 4})), cntNonTCP, true},
		{"ICMPv4, no header", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, nil, ip4Opts{})), cntNonTCP, true},
		{"ICMPv4, one byte of header", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, []byte{11}, ip4Opts{})), cntICMPError, false},
		{"ICMPv4 timestamp", ether(ethPIPv4, ipv4(ip4a, ip4b, 1, icmpMsg(13, make([]byte, 12)), ip4Opts{})), cntNonTCP, true},
		{"ICMPv4 echo reply", ether(ethPIPv4, ipv4(ip4a, ip4b, 1, icmpMsg(0, nil), ip4Opts{})), cntNonTCP, true},
		{"QinQ ICMPv6 packet too big", ether(ethPIPv6, ipv6(ip6b, ip6a, 58, icmpErr(2, 0, quoted6)), sTag200, vlan100), cntICMPError, false},
		{"ICMPv6, no header", ether(ethPIPv6, ipv6(ip6b, ip6a, 58, nil)), cntNonTCP, true},
		{"ICMPv6 type 0 (reserved)", ether(ethPIPv6, ipv6(ip6b, ip6a, 58, icmpErr(0, 0, quoted6))), cntNonTCP, true},
		{"ICMPv6 type 5 (unassigned)", ether(ethPIPv6, ipv6(ip6b, ip6a, 58, icmpErr(5, 0, quoted6))), cntNonTCP, true},
		{"ICMPv6 echo reply", ether(ethPIPv6, ipv6(ip6a, ip6b, 58, icmpMsg(129, nil))), cntNonTCP, true},
		{"ICMPv6 router advertisement", ether(ethPIPv6, ipv6(ip6a, ip6b, 58, icmpMsg(134, make([]byte, 8)))), cntNonTCP, true},
		{"three VLAN tags", tcp4(40000, 443, data, ip4Opts{}, sTag200, vlan100, vlan100), cntUnparsed, false},
		{"IPv6 hop-by-hop then TCP", ether(ethPIPv6, ipv6(ip6a, ip6b, 0, hbh)), cntIPv6Ext, false},
		{"IPv6 fragment header", ether(ethPIPv6, ipv6(ip6a, ip6b, 44, make([]byte, 40))), cntIPv6Ext, false},
		{"IPv4 TCP first fragment", tcp4(40000, 443, data, ip4Opts{moreFrag: true}), cntFragment, false},
		{"IPv4 TCP non-first fragment", tcp4(40000, 443, data, ip4Opts{fragOff: 185}), cntFragment, false},
		{"IPv4 last fragment", tcp4(40000, 443, data, ip4Opts{fragOff: 185, moreFrag: false}), cntFragment, false},
		{"IPv4 IHL 4", tcp4(40000, 443, data, ip4Opts{ihl: 4}), cntUnparsed, false},
		{"IPv4 IHL 15 past the end", tcp4(40000, 443, data, ip4Opts{ihl: 15}), cntTruncated, false},
		{"ethertype IPv4, version 6", tcp4(40000, 443, data, ip4Opts{version: 6}), cntUnparsed, false},
		{"ethertype IPv6, version 4", ether(ethPIPv6, ipv4(ip4a, ip4b, 6, tcp(1, 2, data, make([]byte, 40)), ip4Opts{})), cntUnparsed, false},
	}
	// Every ICMP error type and code class, sent by the far host about a
	// segment to it and by the near host about a segment it was delivered
	// (the quote's direction does not matter to the classifier).
	for _, e := range []struct {
		name      string
		typ, code uint8
	}{
		{"destination unreachable (net)", 3, 0}, {"port unreachable", 3, 3}, {"fragmentation needed", 3, 4},
		{"administratively prohibited", 3, 13}, {"source quench", 4, 0}, {"redirect", 5, 1},
		{"time exceeded", 11, 0}, {"reassembly time exceeded", 11, 1}, {"parameter problem", 12, 0},
	} {
		cases = append(cases,
			classifierCase{"ICMPv4 " + e.name + " from b", ether(ethPIPv4, ipv4(ip4b, ip4a, 1, icmpErr(e.typ, e.code, quoted4), ip4Opts{})), cntICMPError, false},
			classifierCase{"ICMPv4 " + e.name + " from a", ether(ethPIPv4, ipv4(ip4a, ip4b, 1, icmpErr(e.typ, e.code, quoted4r), ip4Opts{})), cntICMPError, false})
	}
	for _, e := range []struct {
		name      string
		typ, code uint8
	}{
		{"destination unreachable", 1, 4}, {"packet too big", 2, 0}, {"time exceeded", 3, 0}, {"parameter problem", 4, 1},
	} {
		cases = append(cases,
			classifierCase{"ICMPv6 " + e.name + " from b", ether(ethPIPv6, ipv6(ip6b, ip6a, 58, icmpErr(e.typ, e.code, quoted6))), cntICMPError, false},
			classifierCase{"ICMPv6 " + e.name + " from a", ether(ethPIPv6, ipv6(ip6a, ip6b, 58, icmpErr(e.typ, e.code, quoted6r)), vlan100), cntICMPError, false})
	}
	// Truncated at every length: an IPv4 and an IPv6 fast-path segment
	// without payload. Only the complete frame takes the fast path.
	for _, full := range [][]byte{
		ether(ethPIPv4, ipv4(ip4a, ip4b, 6, tcp(40000, 443, data, nil), ip4Opts{})),
		ether(ethPIPv6, ipv6(ip6a, ip6b, 6, tcp(40000, 443, data, nil)), vlan100),
	} {
		for n := 0; n <= len(full); n++ {
			c := classifierCase{name: "truncated", frame: full[:n], reason: cntTruncated}
			if n == len(full) {
				c.name, c.reason, c.toPeer = "complete", cntFastPath, true
			}
			cases = append(cases, c)
		}
	}
	return cases
}

func wantDelta(reason, outcome int) PortStats {
	var c [numCounters]uint64
	c[reason]++
	c[outcome]++
	return portStatsFrom(c[:])
}

func diffStats(a, b PortStats) PortStats {
	return PortStats{
		ToXSK: b.ToXSK - a.ToXSK, NoSocket: b.NoSocket - a.NoSocket, ToPeer: b.ToPeer - a.ToPeer,
		RedirectMiss: b.RedirectMiss - a.RedirectMiss, FastPath: b.FastPath - a.FastPath,
		NonTCP: b.NonTCP - a.NonTCP, SYN: b.SYN - a.SYN, UnknownFlow: b.UnknownFlow - a.UnknownFlow,
		Truncated: b.Truncated - a.Truncated, Fragment: b.Fragment - a.Fragment,
		IPv6Ext: b.IPv6Ext - a.IPv6Ext, Unparsed: b.Unparsed - a.Unparsed,
		FINRST: b.FINRST - a.FINRST, AllToXSK: b.AllToXSK - a.AllToXSK, ICMPError: b.ICMPError - a.ICMPError,
	}
}

// TestClassifier runs the classifier on named frames with BPF_PROG_TEST_RUN
// and checks the return code and which counters moved (redirect_map returns
// XDP_REDIRECT for either map; the counters tell which one was used).
func TestClassifier(t *testing.T) {
	requireRoot(t)
	const ns = "xskt-cls"
	newNetns(t, ns)
	vethPair(t, ns, "c0", ns, "c1")
	in, out := ifindexIn(t, ns, "c0"), ifindexIn(t, ns, "c1")

	var b *Bump
	var sock *Socket
	if err := inNetns(ns, func() (err error) {
		if b, err = newBump(in, out); err != nil {
			return err
		}
		sock, err = Open(in, Options{NumFrames: 64, RingSize: 32})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); sock.Close() })
	for _, k := range listed {
		if err := b.AllowFastPath(k); err != nil {
			t.Fatal(err)
		}
	}

	check := func(t *testing.T, port PortID, withSocket bool) {
		for _, c := range classifierCases() {
			before := b.Stats()
			var pkBefore uint64
			if c.reason == cntFastPath {
				pkBefore = fastPathTotal(b)
			}
			ret := runXDP(t, b.progs[port], c.frame)
			if len(c.frame) < 14 {
				continue
			}
			after := b.Stats()
			var want PortStats
			wantRet := uint32(xdpRedirect)
			switch {
			case c.toPeer:
				want = wantDelta(c.reason, cntToPeer)
			case withSocket:
				want = wantDelta(c.reason, cntToXSK)
			default:
				want, wantRet = wantDelta(c.reason, cntNoSocket), xdpDrop
			}
			got, other := diffStats(before.Inside, after.Inside), diffStats(before.Outside, after.Outside)
			if port == Outside {
				got, other = other, got
			}
			if ret != wantRet || got != want || other != (PortStats{}) {
				t.Errorf("%s (%d bytes): ret %d, counters %+v (other port %+v); want ret %d, counters %+v",
					c.name, len(c.frame), ret, got, other, wantRet, want)
			}
			if c.reason == cntFastPath && fastPathTotal(b) != pkBefore+1 {
				t.Errorf("%s: per-flow packet count did not move", c.name)
			}
		}
	}
	t.Run("inside/no socket", func(t *testing.T) { check(t, Inside, false) })
	t.Run("outside/no socket", func(t *testing.T) { check(t, Outside, false) })
	if err := b.Register(Inside, 0, sock); err != nil {
		t.Fatal(err)
	}
	t.Run("inside/socket", func(t *testing.T) { check(t, Inside, true) })
	if err := b.Register(Outside, 0, sock); err == nil {
		t.Error("Register accepted a socket bound to the other port")
	}

	// Fast path off (--no-fast-path): every frame of the table, non-TCP
	// and listed flows included, goes to the socket, counted as AllToXSK;
	// on again, the table holds as before.
	t.Run("fast path off", func(t *testing.T) {
		if err := b.SetFastPath(false); err != nil {
			t.Fatal(err)
		}
		for _, c := range classifierCases() {
			if len(c.frame) < 14 {
				continue
			}
			before := b.Stats()
			ret := runXDP(t, b.progs[Inside], c.frame)
			got := diffStats(before.Inside, b.Stats().Inside)
			if want := wantDelta(cntAllToXSK, cntToXSK); ret != xdpRedirect || got != want {
				t.Errorf("%s: fast path off: ret %d counters %+v, want %d %+v", c.name, ret, got, xdpRedirect, want)
			}
		}
		if err := b.SetFastPath(true); err != nil {
			t.Fatal(err)
		}
		// One port off: only its program sends everything to user
		// space (a port whose redirect cannot deliver).
		if err := b.SetPortFastPath(Outside, false); err != nil {
			t.Fatal(err)
		}
		for _, p := range []PortID{Inside, Outside} {
			before := b.Stats()
			ret := runXDP(t, b.progs[p], tcp4(40000, 443, tcpACK, ip4Opts{}))
			got, want := diffStats(before.Inside, b.Stats().Inside), wantDelta(cntFastPath, cntToPeer)
			if p == Outside {
				got, want = diffStats(before.Outside, b.Stats().Outside), wantDelta(cntAllToXSK, cntNoSocket)
			}
			if got != want {
				t.Errorf("outside off: %s program: ret %d counters %+v, want %+v", p, ret, got, want)
			}
		}
		if err := b.SetPortFastPath(Outside, true); err != nil {
			t.Fatal(err)
		}
		before := b.Stats()
		ret := runXDP(t, b.progs[Inside], tcp4(40000, 443, tcpACK, ip4Opts{}))
		if got := diffStats(before.Inside, b.Stats().Inside); ret != xdpRedirect || got != wantDelta(cntFastPath, cntToPeer) {
			t.Errorf("fast path on again: ret %d counters %+v", ret, got)
		}
	})
	t.Run("inside/socket again", func(t *testing.T) { check(t, Inside, true) })

	t.Run("remove fast path", func(t *testing.T) {
		if err := b.RemoveFastPath(listed[0]); err != nil {
			t.Fatal(err)
		}
		if err := b.RemoveFastPath(listed[0]); err != nil {
			t.Fatalf("removing an absent key: %v", err)
		}
		before := b.Stats().Inside
		runXDP(t, b.progs[Inside], tcp4(40000, 443, tcpACK, ip4Opts{}))
		if d := diffStats(before, b.Stats().Inside); d != wantDelta(cntUnknownFlow, cntToXSK) {
			t.Errorf("after RemoveFastPath: %+v", d)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		if err := b.AllowFastPath(FlowKey{Family: 5}); err == nil {
			t.Error("AllowFastPath accepted family 5")
		}
		if err := b.Register(PortID(7), 0, sock); err == nil {
			t.Error("Register accepted port 7")
		}
	})
}

func fastPathTotal(b *Bump) uint64 {
	var sum uint64
	for _, k := range listed {
		n, _ := b.FastPathPackets(k)
		sum += n
	}
	return sum
}
