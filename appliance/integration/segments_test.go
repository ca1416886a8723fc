package integration

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// tcpSeg is one TCP segment of a capture, as tshark dissects it.
type tcpSeg struct {
	src, dst    netip.AddrPort
	syn, ack    bool
	options     []byte
	payloadLen  int
	optionKinds []int
}

// segments reads the TCP segments of a capture with tshark.
func segments(t *testing.T, path string) []tcpSeg {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport",
		"-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcp.options", "-e", "tcp.len").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	var segs []tcpSeg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 10 {
			continue
		}
		addr := func(v4, v6, port string) netip.AddrPort {
			a, err := netip.ParseAddr(v4)
			if err != nil {
				a, _ = netip.ParseAddr(v6)
			}
			p, _ := strconv.Atoi(port)
			return netip.AddrPortFrom(a, uint16(p))
		}
		s := tcpSeg{src: addr(f[0], f[1], f[2]), dst: addr(f[3], f[4], f[5]), syn: f[6] == "1" || f[6] == "True", ack: f[7] == "1" || f[7] == "True"}
		s.options, _ = hex.DecodeString(strings.ReplaceAll(f[8], ":", ""))
		s.payloadLen, _ = strconv.Atoi(f[9])
		s.optionKinds = optionKinds(s.options)
		segs = append(segs, s)
	}
	return segs
}

// eachOption calls fn with the kind and data of each option of a TCP
// options region but NOP and EOL (RFC 9293 §3.1), until fn returns false
// or the region ends or is malformed.
func eachOption(b []byte, fn func(kind int, data []byte) bool) {
	for len(b) > 0 && b[0] != 0 {
		if b[0] == 1 {
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) || !fn(int(b[0]), b[2:b[1]]) {
			return
		}
		b = b[b[1]:]
	}
}

// optionKinds lists the kinds of the options in an options region.
func optionKinds(b []byte) []int {
	var kinds []int
	eachOption(b, func(kind int, _ []byte) bool {
		kinds = append(kinds, kind)
		return true
	})
	return kinds
}

// enoData returns the data of the TCP-ENO option (kind 69) in an options
// region, or false.
func enoData(b []byte) (data []byte, ok bool) {
	eachOption(b, func(kind int, d []byte) bool {
		if kind == 69 {
			data, ok = d, true
		}
		return !ok
	})
	return data, ok
}

// hasKind reports whether s carries an option of that kind.
func hasKind(s tcpSeg, kind int) bool {
	for _, k := range s.optionKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// noMarker checks the raw capture file and tshark's view of every frame
// for the hosts' marker, and that the capture does hold payload (so the
// check can fail).
func noMarker(t *testing.T, path string, minPayload int) {
	t.Helper()
	keepCapture(t, path)
	if st, err := os.Stat(path); err != nil || st.Size() > 1<<30 {
		t.Fatalf("capture %s: %v (size over 1 GiB?): the test must bound its capture", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(raw, []byte(marker)); i >= 0 {
		t.Errorf("the marker %q appears in the capture of the untrusted link (file offset %d): plaintext leaked", marker, i)
	}
	out, err := exec.Command("tshark", "-r", path, "-n", "-Y", `frame contains "`+marker+`"`, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("frames carrying the marker on the untrusted link: %s", strings.ReplaceAll(s, "\n", " "))
	}
	total := 0
	for _, s := range segments(t, path) {
		total += s.payloadLen
	}
	if total < minPayload {
		t.Errorf("the capture holds %d bytes of TCP payload, want at least %d: the marker check proves nothing", total, minPayload)
	}
}
