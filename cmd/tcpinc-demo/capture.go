package main

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// ENO is TCP option kind 69 (RFC 8547 §4.1).
const enoKind = 69

// segment is one captured TCP segment, as tshark's fields give it.
type segment struct {
	frame            int
	src, dst         netip.AddrPort
	flags            string // tshark's tcp.flags.str, e.g. "·······A··S·"
	payloadLen       int
	options, payload []byte
}

func (s segment) syn() bool { return strings.Contains(s.flags, "S") }
func (s segment) ack() bool { return strings.Contains(s.flags, "A") }

// eno returns the contents of the segment's ENO option (after kind and
// length) and whether it has one.
func (s segment) eno() ([]byte, bool) {
	o := s.options
	for len(o) > 0 {
		switch o[0] {
		case 0: // end of options
			return nil, false
		case 1: // NOP
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			return nil, false
		}
		if o[0] == enoKind {
			return o[2:o[1]], true
		}
		o = o[o[1]:]
	}
	return nil, false
}

// describeENO spells a SYN-form ENO option's contents out with the eno
// package's parser: the global suboption's b and a bits, and each TEP
// suboption (its name, and for v = 1 the length of its data: a resumption
// offer carries an identifier half and a nonce, RFC 8548 §3.5).
func describeENO(c []byte) string {
	if len(c) == 0 {
		return "ENO [empty]"
	}
	o, err := eno.ParseSYN(append([]byte{enoKind, byte(len(c) + 2)}, c...))
	if err != nil {
		return fmt.Sprintf("ENO [malformed: %v]", err)
	}
	var parts []string
	if o.ExplicitGlobal() {
		g := o.Global()
		parts = append(parts, fmt.Sprintf("global b=%d a=%d", btoi(g.B()), btoi(g.A())))
	}
	for i := 0; i < o.Len(); i++ {
		sub := o.At(i)
		name := tcpcrypt.TEP(sub.TEP()).String()
		if sub.V() {
			name += fmt.Sprintf(" v=1 (%d bytes: resumption)", len(sub.Data))
		}
		parts = append(parts, name)
	}
	return "ENO [" + strings.Join(parts, ", ") + "]"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readCapture loads every TCP segment of the capture file.
func (d *demo) readCapture(path string) ([]segment, error) {
	out, err := d.tshark("-r", path, "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
		"-e", "frame.number", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
		"-e", "tcp.flags.str", "-e", "tcp.len", "-e", "tcp.options", "-e", "tcp.payload")
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 9 {
			continue
		}
		var s segment
		s.frame, _ = strconv.Atoi(f[0])
		src, err1 := netip.ParseAddr(f[1])
		dst, err2 := netip.ParseAddr(f[3])
		sp, _ := strconv.Atoi(f[2])
		dp, _ := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil {
			continue // IPv6 lines carry no ip.src; the demo's traffic is IPv4
		}
		s.src, s.dst = netip.AddrPortFrom(src, uint16(sp)), netip.AddrPortFrom(dst, uint16(dp))
		s.flags = f[5]
		s.payloadLen, _ = strconv.Atoi(f[6])
		s.options, _ = hex.DecodeString(strings.ReplaceAll(f[7], ":", ""))
		s.payload, _ = hex.DecodeString(strings.ReplaceAll(f[8], ":", ""))
		segs = append(segs, s)
	}
	return segs, nil
}

// conn is one captured connection's segments, seen from the client (hA).
type conn struct {
	client, server netip.AddrPort
	segs           []segment
}

func (c *conn) handshake() (syn, synack *segment) {
	for i := range c.segs {
		s := &c.segs[i]
		if s.syn() && !s.ack() && s.src == c.client && syn == nil {
			syn = s
		}
		if s.syn() && s.ack() && s.src == c.server && synack == nil {
			synack = s
		}
	}
	return syn, synack
}

func (c *conn) markerSegments() int {
	n := 0
	for _, s := range c.segs {
		if strings.Contains(string(s.payload), marker) {
			n++
		}
	}
	return n
}

func (c *conn) dataSegments() (n, bytes int) {
	for _, s := range c.segs {
		if s.payloadLen > 0 {
			n++
			bytes += s.payloadLen
		}
	}
	return n, bytes
}

func connOf(segs []segment, client, server netip.AddrPort) *conn {
	c := &conn{client: client, server: server}
	for _, s := range segs {
		if (s.src == client && s.dst == server) || (s.src == server && s.dst == client) {
			c.segs = append(c.segs, s)
		}
	}
	return c
}

// analyseCapture shows and checks what the untrusted link carried: the
// TCP-ENO options of each connection's handshake, and whether the marker
// the hosts sent appears in any payload. Encrypted connections must carry
// ENO in both SYNs (b=1 in the SYN-ACK, from the appliance in role B) and no
// marker; the far host's connection must show ENO only in the SYN (nobody
// answers) and the marker in clear — which also proves the marker search
// finds plaintext when there is some.
func (d *demo) analyseCapture(path string, a, b, f netip.Addr, httpPortA, farPort uint16) {
	segs, err := d.readCapture(path)
	if err != nil {
		d.expect("read the capture", err)
		return
	}
	d.say("%d TCP segments captured", len(segs))

	out, err := d.tshark("-r", path, "-n", "-Y", fmt.Sprintf("tcp.option_kind == %d", enoKind), "-T", "fields",
		"-e", "frame.number", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "tcp.flags.str")
	if err == nil && strings.TrimSpace(out) == "" {
		d.say("$ tshark -r untrusted.pcapng -Y 'tcp.option_kind == 69'   (no segment carries TCP-ENO)")
	} else if err == nil {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		d.say("$ tshark -r untrusted.pcapng -Y 'tcp.option_kind == 69'   (%d segments; first 8)", len(lines))
		if len(lines) > 8 {
			lines = lines[:8]
		}
		d.block(strings.Join(lines, "\n"))
	}

	type want struct {
		name    string
		client  netip.AddrPort
		server  netip.AddrPort
		encrypt bool
	}
	var conns []want
	if httpPortA != 0 {
		conns = append(conns, want{"HTTP hA→hB", netip.AddrPortFrom(a, httpPortA), netip.AddrPortFrom(b, httpPort), true})
	}
	if farPort != 0 {
		conns = append(conns, want{"HTTP hA→hF (no appliance)", netip.AddrPortFrom(a, farPort), netip.AddrPortFrom(f, httpPort), false})
	}
	// The held echo connection: find it by its server port.
	for _, s := range segs {
		if s.syn() && !s.ack() && s.dst == netip.AddrPortFrom(b, echoPort) {
			conns = append(conns, want{"echo hA→hB", s.src, s.dst, true})
			break
		}
	}
	for _, w := range conns {
		c := connOf(segs, w.client, w.server)
		d.say("")
		d.say("%s  %s → %s", w.name, w.client, w.server)
		syn, synack := c.handshake()
		if syn == nil || synack == nil {
			d.expect(w.name+": handshake captured", fmt.Errorf("SYN captured: %v, SYN-ACK captured: %v", syn != nil, synack != nil))
			continue
		}
		synENO, synHas := syn.eno()
		ackENO, ackHas := synack.eno()
		d.say("SYN     frame %d: %s", syn.frame, optText(synENO, synHas))
		d.say("SYN-ACK frame %d: %s", synack.frame, optText(ackENO, ackHas))
		n, nb := c.dataSegments()
		m := c.markerSegments()
		d.say("%d data segments, %d payload bytes; %d contain %q", n, nb, m, marker)
		if p := firstPayload(c, w.server); p != nil {
			d.say("first bytes from the server: %s", preview(p))
		}
		if !synHas {
			if d.engineMissing == "" {
				d.engineMissing = "gwA forwarded the SYN without a TCP-ENO option: this tcpincd does not negotiate"
			}
			d.expect(w.name+": gwA added TCP-ENO to the SYN", fmt.Errorf("no option 69 in the SYN"))
		}
		if w.encrypt {
			var err error
			switch {
			case !synHas:
				err = fmt.Errorf("no TCP-ENO in the SYN")
			case !ackHas:
				err = fmt.Errorf("the SYN-ACK has no TCP-ENO option")
			case len(ackENO) == 0 || ackENO[0] >= 0x20 || ackENO[0]&1 == 0:
				err = fmt.Errorf("the SYN-ACK's ENO option does not start with a global suboption with b=1: % x", ackENO)
			}
			d.expect(w.name+": TCP-ENO in SYN and SYN-ACK (b=1)", err)
			if n == 0 {
				d.expect(w.name+": no plaintext on the wire", fmt.Errorf("no data segments captured"))
			} else if m > 0 {
				d.expect(w.name+": no plaintext on the wire", fmt.Errorf("the marker appears in %d segments", m))
			} else {
				d.expect(w.name+": no plaintext on the wire (marker in 0 of "+strconv.Itoa(n)+" data segments)", nil)
			}
			continue
		}
		if !synHas {
			continue
		}
		var err error
		if ackHas {
			err = fmt.Errorf("the far host answered with TCP-ENO (% x)", ackENO)
		} else if m == 0 {
			err = fmt.Errorf("the marker does not appear in the plain connection: the marker search is broken")
		}
		d.expect(w.name+": no TCP-ENO answer, plain TCP (marker visible in "+strconv.Itoa(m)+" segments)", err)
	}
}

func optText(c []byte, ok bool) string {
	if !ok {
		return "no TCP-ENO option"
	}
	return describeENO(c) + fmt.Sprintf("  (option bytes: 45 %02x % x)", len(c)+2, c)
}

func firstPayload(c *conn, from netip.AddrPort) []byte {
	for _, s := range c.segs {
		if s.src == from && len(s.payload) > 0 {
			return s.payload
		}
	}
	return nil
}

// preview shows up to 40 bytes: printable as text, anything else as hex.
func preview(p []byte) string {
	if len(p) > 40 {
		p = p[:40]
	}
	printable := true
	for _, c := range p {
		if (c < 0x20 || c > 0x7e) && c != '\r' && c != '\n' {
			printable = false
		}
	}
	if printable {
		return strconv.Quote(string(p)) + "…"
	}
	return fmt.Sprintf("% x …", p)
}
