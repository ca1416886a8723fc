package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpinc/tcpinc/appliance/packet"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
)

// TCP MD5 (RFC 2385) and TCP-AO (RFC 5925) sign every segment end to end:
// the MD5 digest covers the TCP header without its options (the data
// offset among it, which an added ENO option changes) and the data; the
// TCP-AO MAC covers the options too. Routers sign their BGP sessions so.
// A signed SYN is left alone both ways: it crosses unchanged (no ENO, no
// MSS clamp), as does the other host's signed SYN-ACK, the connection
// stays plain, counted as tcp_auth, and under the require policy it does
// not leave plain. So does a signed SYN-ACK from the inside host answering
// a far SYN with ENO: no ENO is added to it. (Before, the SYN left with
// ENO, the far host dropped it as forged, and only the syn_retries
// fallback connected, three seconds late; and a signed SYN from outside
// reached the host with its MSS lowered, which breaks TCP-AO.)
func TestSignedSYNsLeftAlone(t *testing.T) {
	md5 := append([]byte{19, 18}, bytes.Repeat([]byte{0xd5}, 16)...)
	ao := []byte{29, 16, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // key IDs and a 96-bit MAC
	eno := []byte{69, 3, 0x23, 1}                                     // and a NOP
	for _, c := range []struct {
		name string
		sig  []byte
	}{{"MD5", md5}, {"TCP-AO", ao}} {
		// What Linux sends with a key: no timestamps beside the signature.
		opts := append(append(packettest.MSSOption(1460), 1, 3, 3, 7, 4, 2, 1, 1), c.sig...)
		unchanged := func(t *testing.T, what string, got [][]byte, want []byte) {
			t.Helper()
			if len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("%s: %d frames, first %x; want the segment unchanged, %x", what, len(got), got, want)
			}
		}
		plainAuth := func(t *testing.T, g *gw) {
			t.Helper()
			if fi := flowInfo(t, g.e); fi.State != "plain" || fi.Encrypted {
				t.Fatalf("flow %+v, want plain", fi)
			}
			if n := g.e.Counters().Fallbacks[FallbackTCPAuth].Load(); n != 1 {
				t.Fatalf("%d tcp_auth fallbacks, want 1", n)
			}
		}
		t.Run(c.name+"/outbound", func(t *testing.T) {
			ga := newGW(t, Config{TEPs: testTEPs})
			syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, opts, nil)
			_, toOut := ga.push(Inside, syn)
			unchanged(t, "a's SYN", toOut, syn)
			plainAuth(t, ga)
			sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, opts, nil)
			toIn, _ := ga.push(Outside, sa)
			unchanged(t, "b's SYN-ACK", toIn, sa)
		})
		t.Run(c.name+"/inbound", func(t *testing.T) {
			gb := newGW(t, Config{TEPs: testTEPs})
			syn := tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(append([]byte(nil), eno...), opts...), nil)
			toIn, _ := gb.push(Outside, syn)
			unchanged(t, "a's SYN with ENO", toIn, syn)
			plainAuth(t, gb)
			sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, opts, nil)
			_, toOut := gb.push(Inside, sa)
			unchanged(t, "b's SYN-ACK", toOut, sa)
		})
		t.Run(c.name+"/host SYN-ACK", func(t *testing.T) {
			gb := newGW(t, Config{TEPs: testTEPs})
			gb.push(Outside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(synOpts(1460, 1), eno...), nil))
			sa := tcpFrame(addrB, addrA, isnB, isnA+1, synF|ackF, 65160, opts, nil)
			_, toOut := gb.push(Inside, sa)
			unchanged(t, "b's signed SYN-ACK", toOut, sa)
			plainAuth(t, gb)
		})
		t.Run(c.name+"/require", func(t *testing.T) {
			pol := []PolicyRule{{Prefix: mustPrefix(addrB.Addr().String() + "/32"), Policy: Require}}
			ga := newGW(t, Config{TEPs: testTEPs, Policies: pol})
			toIn, toOut := ga.push(Inside, tcpFrame(addrA, addrB, isnA, 0, synF, 64240, opts, nil))
			none(t, "signed SYN to a required prefix", toOut)
			none(t, "signed SYN to a required prefix, back", toIn)
		})
	}
}

// IPsec AH (RFC 4302) authenticates the whole IPv6 packet, TCP header and
// options included: an IPv6 SYN under AH got TCP-ENO added (the walk over
// extension headers reached TCP through AH), the far host dropped it as
// forged, and the connection came up only on the SYN retransmitted without
// ENO, seconds late (never under require). It is left alone like a signed
// SYN, both ways, and so is the host's SYN-ACK under AH to a far SYN with
// ENO. The same over IPv4 (wrapAH4).
func TestAHSYNsLeftAlone(t *testing.T) {
	a, b := netip.AddrPortFrom(packettest.HostA6, 40000), netip.AddrPortFrom(packettest.HostB6, 443)
	ah := []packettest.Ext{{Proto: 51, Data: append([]byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 7}, bytes.Repeat([]byte{0xa5}, 12)...)}}
	seg := func(src, dst netip.AddrPort, seq, ack uint32, flags uint8, opts []byte) []byte {
		return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), Ext: ah, TCP: &packettest.TCP{
			SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: flags, Window: 64240, Options: opts}}.Bytes()
	}
	unchanged := func(t *testing.T, g *gw, from PortID, frame []byte) {
		t.Helper()
		in, out := g.rawPush(from, frame)
		got := append(in, out...)
		if len(got) != 1 || !bytes.Equal(got[0], frame) {
			t.Fatalf("%d frames, first %x; want the segment unchanged, %x", len(got), got, frame)
		}
		if n := g.e.Counters().Fallbacks[FallbackTCPAuth].Load(); n != 1 {
			t.Fatalf("%d tcp_auth fallbacks, want 1", n)
		}
	}
	opts := packettest.MSSOption(1440)
	t.Run("outbound", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Inside, seg(a, b, isnA, 0, synF, opts))
	})
	t.Run("inbound", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Outside, seg(a, b, isnA, 0, synF, append(append([]byte(nil), opts...), 69, 3, 0x23, 1)))
	})
	t.Run("host SYN-ACK", func(t *testing.T) {
		gb := newGW(t, Config{TEPs: testTEPs})
		gb.rawPush(Outside, tcpFrame(a, b, isnA, 0, synF, 64240, append(synOpts(1440, 1), 69, 3, 0x23, 1), nil))
		unchanged(t, gb, Inside, seg(b, a, isnB, isnA+1, synF|ackF, opts))
	})
	t.Run("IPv4 outbound", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Inside, wrapAH4(tcpFrame(addrA, addrB, isnA, 0, synF, 64240, opts, nil)))
	})
	t.Run("IPv4 inbound", func(t *testing.T) {
		unchanged(t, newGW(t, Config{TEPs: testTEPs}), Outside, wrapAH4(tcpFrame(addrA, addrB, isnA, 0, synF, 64240, append(append([]byte(nil), opts...), 69, 3, 0x23, 1), nil)))
	})
}

// An IPv4 AH policy that two hosts add while their connection is encrypted
// puts their segments under AH, protocol 51: the classifier passed those
// through the kernel as not TCP, and the decoder took them for another
// protocol, so host a's data crossed the untrusted link in plaintext. They
// go to the workers and are TCP to the engine (they cannot be sent on with
// their AH: the far host's AH check fails, as for a signed segment).
func TestAHDataOfEncryptedConnectionNotPlain(t *testing.T) {
	pr := handshake(t)
	h := newHosts()
	pr.tsA++
	secret := bytes.Repeat([]byte("AH-SECRET-"), 50)
	in, out := pr.ga.rawPush(Inside, wrapAH4(tcpFrame(addrA, addrB, h.aNext, h.bNext, ackF|pshF, 502, tsOpt(pr.tsA, pr.tsB), secret)))
	for _, f := range append(in, out...) {
		if bytes.Contains(f, []byte("AH-SECRET")) {
			t.Fatalf("plaintext left G_A: %x", f)
		}
	}
	if len(out) == 0 {
		t.Fatal("nothing sent on: the data was not taken as the connection's")
	}
}

// wrapAH4 puts an Authentication Header (12-byte ICV) between the IPv4
// header of frame (no options, no tags) and its TCP segment.
func wrapAH4(frame []byte) []byte {
	ah := append([]byte{6, 24/4 - 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 9}, bytes.Repeat([]byte{0xa5}, 12)...)
	f := append(append(append([]byte(nil), frame[:34]...), ah...), frame[34:]...)
	ip := f[14:]
	ip[9] = 51
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+uint16(len(ah)))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:20], 0))
	return f
}
