// Package wireshark holds the tcpinc Wireshark/tshark dissector
// (tcpinc.lua); this test runs it in tshark over captures it builds.
package wireshark

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/keylog/keylogtest"
	"github.com/tcpinc/tcpinc/appliance/packet/packettest"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
)

// Tshark runs tshark with the dissector on capture and returns its output:
// with fields, one line per frame, fields separated by '|'.
func Tshark(t *testing.T, capture string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatalf("tshark is not installed (scripts/deps.sh installs it): %v", err)
	}
	script, err := filepath.Abs("tcpinc.lua")
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"-X", "lua_script:" + script, "-n", "-r", capture}, args...)
	cmd := exec.Command(bin, all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// A Lua error is printed, and tshark goes on without the script.
	if err != nil || strings.Contains(stderr.String(), "Lua") || strings.Contains(stderr.String(), "lua") {
		t.Fatalf("tshark %v: %v\n%s", all, err, stderr.String())
	}
	return string(out)
}

// Fields runs tshark -T fields with the given -e fields and returns one
// map per frame (empty values left out).
func fields(t *testing.T, capture, filter string, names ...string) []map[string]string {
	t.Helper()
	args := []string{"-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, n := range append([]string{"frame.number"}, names...) {
		args = append(args, "-e", n)
	}
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimRight(Tshark(t, capture, args...), "\n"), "\n") {
		if line == "" {
			continue
		}
		m := map[string]string{}
		for i, v := range strings.Split(line, "|") {
			if v != "" && i <= len(names) {
				m[append([]string{"frame.number"}, names...)[i]] = v
			}
		}
		out = append(out, m)
	}
	return out
}

func writeCapture(t *testing.T, frames [][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.pcapng")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapng.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		if err := w.WritePacket(time.Unix(1700000000, int64(i)*1e6), fr); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func chunks(n, size int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, bytes.Repeat([]byte{byte(i)}, size))
	}
	return out
}

// A whole tcpcrypt connection (real key exchange and frames, a rekey each
// way, a retransmitted and a reordered segment): the SYN options, both Init
// messages and every frame's stream offset, rekey bit and clen, as the
// stream was built; no expert error.
func TestDissectConnection(t *testing.T) {
	data := [2][][]byte{chunks(7, 900), chunks(5, 1300)}
	opt := keylogtest.Options{Data: data, RekeyAt: [2]int{3, 2}, Retransmit: true,
		Server: netip.MustParseAddrPort("198.51.100.2:5001")}
	res, err := keylogtest.Build(opt)
	if err != nil {
		t.Fatal(err)
	}
	capture := writeCapture(t, res.Frames)
	rows := fields(t, capture, "", "tcpeno.form", "tcpeno.tep", "tcpeno.b", "tcpeno.v",
		"tcpcrypt.init1", "tcpcrypt.init2", "tcpcrypt.magic", "tcpcrypt.message_len", "tcpcrypt.cipher", "tcpcrypt.sym_cipher",
		"tcpcrypt.nonce", "tcpcrypt.pubkey", "tcpcrypt.frame.offset", "tcpcrypt.frame.rekey", "tcpcrypt.frame.clen", "ip.src")
	if len(rows) != len(res.Frames) {
		t.Fatalf("%d rows for %d frames", len(rows), len(res.Frames))
	}
	syn, synack, third := rows[0], rows[1], rows[2]
	if syn["tcpeno.form"] != "1" || syn["tcpeno.tep"] != "0x23" || syn["tcpeno.b"] != "" || syn["tcpeno.v"] != "0" {
		t.Errorf("SYN: %v", syn)
	}
	if synack["tcpeno.form"] != "1" || synack["tcpeno.tep"] != "0x23" || synack["tcpeno.b"] != "1" {
		t.Errorf("SYN-ACK: %v", synack)
	}
	if third["tcpeno.form"] != "0" || third["tcpeno.tep"] != "" {
		t.Errorf("third segment: %v", third)
	}
	i1, i2 := rows[3], rows[4]
	if i1["tcpcrypt.init1"] == "" || !strings.HasPrefix(i1["tcpcrypt.magic"], "0x15101a0e") ||
		i1["tcpcrypt.message_len"] != fmt.Sprint(res.InitLen[0]) || i1["tcpcrypt.cipher"] != "0x0001,0x0010" ||
		len(i1["tcpcrypt.nonce"]) != 64 || len(i1["tcpcrypt.pubkey"]) != 64 {
		t.Errorf("Init1: %v", i1)
	}
	if i2["tcpcrypt.init2"] == "" || i2["tcpcrypt.message_len"] != fmt.Sprint(res.InitLen[1]) || i2["tcpcrypt.sym_cipher"] != "0x0001" {
		t.Errorf("Init2: %v", i2)
	}
	// Collect each side's frames in capture order.
	var offs [2][]uint64
	var rekeys, clens [2][]string
	for _, r := range rows {
		if r["tcpcrypt.frame.offset"] == "" {
			continue
		}
		side := 0
		if r["ip.src"] != packettest.HostA4.String() {
			side = 1
		}
		for _, o := range strings.Split(r["tcpcrypt.frame.offset"], ",") {
			var v uint64
			fmt.Sscan(o, &v)
			offs[side] = append(offs[side], v)
		}
		rekeys[side] = append(rekeys[side], strings.Split(r["tcpcrypt.frame.rekey"], ",")...)
		clens[side] = append(clens[side], strings.Split(r["tcpcrypt.frame.clen"], ",")...)
	}
	for side := range offs {
		if !slices.Equal(offs[side], res.FrameOffsets[side]) {
			t.Errorf("side %d frame offsets %v, want %v", side, offs[side], res.FrameOffsets[side])
		}
		for i := range rekeys[side] {
			want := "0"
			if i == opt.RekeyAt[side] {
				want = "1"
			}
			if rekeys[side][i] != want || clens[side][i] != fmt.Sprint(len(data[side][i])+17) {
				t.Errorf("side %d frame %d: rekey %s clen %s", side, i, rekeys[side][i], clens[side][i])
			}
		}
	}
	if out := fields(t, capture, "tcpcrypt.malformed || tcpeno.malformed || tcpcrypt.gap"); len(out) != 0 {
		t.Errorf("expert info on a good capture: %v", out)
	}
}

// conn builds a handshake with the given SYN and SYN-ACK ENO options, then
// the client's stream bytes a and the server's b, each in one segment.
func conn(synOpt, synAckOpt, a, b []byte) [][]byte {
	c := netip.AddrPortFrom(packettest.HostA4, 40001)
	s := netip.AddrPortFrom(packettest.HostB4, 5001)
	const isnC, isnS = 1000, 9000
	f := func(src, dst netip.AddrPort, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
		return packettest.Frame{Src: src.Addr(), Dst: dst.Addr(), TCP: &packettest.TCP{SrcPort: src.Port(), DstPort: dst.Port(),
			Seq: seq, Ack: ack, Flags: flags, Window: 1000, Options: opts, Payload: payload}}.Bytes()
	}
	out := [][]byte{
		f(c, s, isnC, 0, packettest.SYN, synOpt, nil),
		f(s, c, isnS, isnC+1, packettest.SYN|packettest.ACK, synAckOpt, nil),
		f(c, s, isnC+1, isnS+1, packettest.ACK, []byte{69, 2}, nil),
	}
	if a != nil {
		out = append(out, f(c, s, isnC+1, isnS+1, packettest.ACK|packettest.PSH, nil, a))
	}
	if b != nil {
		out = append(out, f(s, c, isnS+1, isnC+1+uint32(len(a)), packettest.ACK|packettest.PSH, nil, b))
	}
	return out
}

// init1 is a well-formed Init1 for X25519 with one AEAD.
func init1() []byte {
	m := binary.BigEndian.AppendUint32(nil, 0x15101a0e)
	m = binary.BigEndian.AppendUint32(m, 9+2+32+32)
	m = append(m, 1, 0x00, 0x01)
	return append(m, make([]byte, 64)...)
}

// Malformed options and streams get expert info; the legacy encoding and
// resumption suboptions are shown with their fields.
func TestDissectMalformedAndForms(t *testing.T) {
	resume := append([]byte{0xa3}, bytes.Repeat([]byte{0xee}, 9)...)
	resume = append(resume, 0x01, 0x02)
	cases := []struct {
		name   string
		frames [][]byte
		filter string // must match the first frame (number) given
		frame  string
		want   map[string]string // fields of that frame
	}{
		{"length byte overruns the option", conn([]byte{69, 5, 0x23, 0x85, 0xa3}, []byte{69, 4, 1, 0x23}, nil, nil),
			"tcpeno.malformed", "1", nil},
		{"length byte last", conn([]byte{69, 4, 0x23, 0x80}, []byte{69, 4, 1, 0x23}, nil, nil),
			"tcpeno.malformed", "1", nil},
		{"length byte before a TEP with v=0", conn([]byte{69, 5, 0x81, 0x23, 0}, []byte{69, 4, 1, 0x23}, nil, nil),
			"tcpeno.malformed", "1", nil},
		{"legacy experimental option", conn([]byte{253, 6, 0x45, 0x4e, 0x01, 0x23}, []byte{2, 4, 5, 0xb4}, nil, nil),
			"tcpeno.legacy", "1", map[string]string{"tcpeno.tep": "0x23", "tcpeno.b": "1", "tcpeno.exid": "0x454e"}},
		{"resumption suboptions", conn(append([]byte{69, byte(2 + len(resume))}, resume...),
			append([]byte{69, byte(3 + len(resume)), 0x01}, resume...), []byte{0, 0, 17}, nil),
			"tcpeno.resume_id", "1", map[string]string{"tcpeno.v": "1", "tcpeno.tep": "0x23",
				"tcpeno.resume_id": strings.Repeat("ee", 9), "tcpeno.resume_nonce": "0102"}},
		{"resumed session: frames from offset 0", conn(append([]byte{69, byte(2 + len(resume))}, resume...),
			append([]byte{69, byte(3 + len(resume)), 0x01}, resume...), append([]byte{1, 0, 17}, make([]byte, 17)...), nil),
			"tcpcrypt.frame", "4", map[string]string{"tcpcrypt.frame.offset": "0", "tcpcrypt.frame.rekey": "1", "tcpcrypt.resumed": "1"}},
		{"Init1 with a bad magic", conn([]byte{69, 3, 0x23}, []byte{69, 4, 1, 0x23}, []byte("GET / HTTP/1.1\r\n\r\n"), nil),
			"tcpcrypt.malformed", "4", map[string]string{"tcpcrypt.init1": "474554202f204854"}},
		{"Init2 with a short message_len", conn([]byte{69, 3, 0x23}, []byte{69, 4, 1, 0x23}, init1(),
			[]byte{0x09, 0x71, 0x05, 0xe0, 0, 0, 0, 10}),
			"tcpcrypt.malformed", "5", map[string]string{"tcpcrypt.message_len": "10"}},
		{"frame with clen below 17", conn([]byte{69, 3, 0x23}, []byte{69, 4, 1, 0x23}, append(init1(), 0, 0, 5, 1, 2, 3, 4, 5), nil),
			"tcpcrypt.malformed", "4", map[string]string{"tcpcrypt.frame.clen": "5", "tcpcrypt.frame.offset": "75"}},
		{"not negotiated: no tcpcrypt", conn([]byte{69, 3, 0x23}, []byte{2, 4, 5, 0xb4}, init1(), nil),
			"tcpcrypt", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			capture := writeCapture(t, c.frames)
			var names []string
			for k := range c.want {
				names = append(names, k)
			}
			slices.Sort(names)
			rows := fields(t, capture, c.filter, names...)
			if c.frame == "" {
				if len(rows) != 0 {
					t.Fatalf("%q matched %v", c.filter, rows)
				}
				return
			}
			if len(rows) == 0 || rows[0]["frame.number"] != c.frame {
				t.Fatalf("%q: rows %v, want frame %s first", c.filter, rows, c.frame)
			}
			for _, k := range names {
				if got := rows[0][k]; !strings.HasPrefix(got, c.want[k]) {
					t.Errorf("%s = %q, want %q", k, got, c.want[k])
				}
			}
		})
	}
}
