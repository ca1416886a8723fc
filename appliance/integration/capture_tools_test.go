package integration

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/deploy/topology"
)

// TestCaptureTools runs the operator's capture tools on a capture of real
// encrypted connections through two tcpincd (key log on, a rekey every
// 256 KiB): the Wireshark dissector (deploy/wireshark/tcpinc.lua) in tshark
// must find TCP-ENO, Init1 and Init2, and frames whose stream offsets chain
// from message_len through every clen, with rekey frames each way and no
// expert error; tcpincctl decode with either appliance's key log must give
// back exactly the bytes the hosts sent, for a fresh and a resumed session.
func TestCaptureTools(t *testing.T) {
	e := newEncEnv(t, 95)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tcpincd.yaml")
	if err := os.WriteFile(cfg, []byte("engine:\n  rekey_bytes: 262144\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[topology.Node]string{topology.GwA: filepath.Join(dir, "keys-gwA"), topology.GwB: filepath.Join(dir, "keys-gwB")}
	e.daemonArgs = map[topology.Node][]string{}
	for gw, k := range keys {
		e.daemonArgs[gw] = []string{"--config", cfg, "--key-log", k, "--key-log-enabled"}
	}
	e.restartDaemons(t)
	var st struct {
		Warnings []string `json:"warnings"`
	}
	if err := e.admin(topology.GwA, "/api/v1/status", &st); err != nil || len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "KEY LOG ON") {
		t.Errorf("status while the key log is on: warnings %q, %v", st.Warnings, err)
	}
	if out := e.gw[topology.GwA].Output(); !strings.Contains(out, "KEY LOG ON") {
		t.Errorf("no key log warning in the daemon's log:\n%s", out)
	}

	path := filepath.Join(dir, "capture.pcapng")
	c, err := e.topo.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(e.topo.Addr(topology.HostB).V4, 5001)
	const n, m = 1 << 20, 600 << 10
	type run struct {
		r    result
		seed uint64
	}
	var runs []run
	for i := 0; i < 2; i++ { // the second one resumes the first one's session
		r := e.transfer(t, topology.HostA, dst, e.streamB, n, m, time.Minute)
		checkTransfer(t, r, n, m)
		runs = append(runs, run{r, e.seed})
	}
	if _, err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	keepCapture(t, path)

	for i, ru := range runs {
		t.Run(fmt.Sprintf("dissector/conn%d", i+1), func(t *testing.T) { dissected(t, path, ru.r.local, i == 1) })
	}
	ctl := goBuild(t, "github.com/tcpinc/tcpinc/cmd/tcpincctl", "tcpincctl")
	for _, gw := range []topology.Node{topology.GwA, topology.GwB} {
		t.Run("decode/"+string(gw), func(t *testing.T) {
			out := filepath.Join(dir, "plain-"+string(gw))
			b, err := exec.Command(ctl, "decode", "--keylog", keys[gw], "-o", out, path).CombinedOutput()
			if err != nil {
				t.Fatalf("tcpincctl decode: %v\n%s", err, b)
			}
			t.Logf("%s", b)
			for i, ru := range runs {
				client := fileAddr(ru.r.local)
				up := glob1(t, filepath.Join(out, "*-"+client+"-*.bin"))
				down := glob1(t, filepath.Join(out, "*-*-"+client+".bin"))
				want := make([]byte, n)
				newStream(ru.seed).fill(want)
				if len(up) != 32+n || !bytes.Equal(up[32:], want) {
					t.Errorf("connection %d: client's stream decrypts to %d bytes, not the 32-byte header and the %d bytes sent", i+1, len(up), n)
				}
				want = make([]byte, m)
				newStream(ru.seed + 1).fill(want)
				if !bytes.Equal(down, want) {
					t.Errorf("connection %d: server's stream decrypts to %d bytes, not the %d bytes sent", i+1, len(down), m)
				}
			}
			if !strings.Contains(string(b), "resumed") || !strings.Contains(string(b), "fresh key exchange") {
				t.Errorf("want one fresh and one resumed session:\n%s", b)
			}
		})
	}
}

func fileAddr(a netip.AddrPort) string {
	return strings.NewReplacer(":", "_", "[", "", "]", "").Replace(a.String())
}

func glob1(t *testing.T, pattern string) []byte {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %d files", pattern, len(m))
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dissected checks tshark's view, with the dissector, of the connection
// from client.
func dissected(t *testing.T, capture string, client netip.AddrPort, resumed bool) {
	script, err := filepath.Abs("../../deploy/wireshark/tcpinc.lua")
	if err != nil {
		t.Fatal(err)
	}
	filter := fmt.Sprintf("tcp.port == %d", client.Port())
	args := []string{"-X", "lua_script:" + script, "-n", "-r", capture, "-Y", filter, "-T", "fields",
		"-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "tcp.srcport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "tcpeno.tep", "-e", "tcpeno.b", "-e", "tcpeno.resume_id",
		"-e", "tcpcrypt.init1", "-e", "tcpcrypt.init2", "-e", "tcpcrypt.message_len", "-e", "tcpcrypt.sym_cipher",
		"-e", "tcpcrypt.frame.offset", "-e", "tcpcrypt.frame.clen", "-e", "tcpcrypt.frame.rekey"}
	tshark := func(args ...string) string {
		cmd := exec.Command("tshark", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || strings.Contains(strings.ToLower(stderr.String()), "lua") {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		return string(out)
	}
	out := tshark(args...)
	if bad := tshark("-X", "lua_script:"+script, "-n", "-r", capture, "-Y",
		filter+" && (tcpcrypt.malformed || tcpeno.malformed || tcpcrypt.gap)"); bad != "" {
		t.Errorf("expert info on a real connection:\n%s", bad)
	}
	type dir struct {
		next          uint64 // where the next frame must start
		frames, rekey int
		init          bool
	}
	dirs := map[bool]*dir{true: {}, false: {}} // keyed by "from the client"
	var synTEP, synAckB, synAckResume string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 13 {
			t.Fatalf("tshark line %q", line)
		}
		fromClient := f[0] == strconv.Itoa(int(client.Port()))
		syn, ack := f[1] == "1" || f[1] == "True", f[2] == "1" || f[2] == "True"
		switch {
		case syn && !ack:
			synTEP = f[3]
		case syn && ack:
			synAckB, synAckResume = f[4], f[5]
			if !strings.HasPrefix(f[3], "0x2") {
				t.Errorf("SYN-ACK without a tcpcrypt TEP: %q", f[3])
			}
		}
		d := dirs[fromClient]
		if f[6] != "" || f[7] != "" {
			if resumed {
				t.Errorf("Init message in a resumed session: %q", line)
			}
			d.init = true
			ml, _ := strconv.ParseUint(f[8], 10, 64)
			d.next = ml
			if f[7] != "" && f[9] == "" {
				t.Errorf("Init2 without the chosen AEAD: %q", line)
			}
		}
		if f[10] == "" {
			continue
		}
		offs, clens, rekeys := strings.Split(f[10], ","), strings.Split(f[11], ","), strings.Split(f[12], ",")
		for i := range offs {
			off, _ := strconv.ParseUint(offs[i], 10, 64)
			clen, _ := strconv.ParseUint(clens[i], 10, 64)
			if off != d.next {
				t.Fatalf("frame at stream offset %d, want %d (the previous frame's end): %q", off, d.next, line)
			}
			d.next = off + 3 + clen
			d.frames++
			if rekeys[i] == "1" {
				d.rekey++
			}
		}
	}
	if !strings.Contains(synTEP, "0x23") || synAckB != "1" {
		t.Errorf("SYN TEPs %q, SYN-ACK b %q", synTEP, synAckB)
	}
	if resumed != (synAckResume != "") {
		t.Errorf("resumed %v but SYN-ACK resumption identifier %q", resumed, synAckResume)
	}
	for from, d := range dirs {
		if d.init == resumed || d.frames == 0 {
			t.Errorf("from client %v: Init seen %v, %d frames", from, d.init, d.frames)
		}
	}
	// 1 MiB and 600 KiB under a 256 KiB rekey threshold: both sides rekey.
	if dirs[true].rekey == 0 || dirs[false].rekey == 0 {
		t.Errorf("rekey frames: %d from the client, %d from the server", dirs[true].rekey, dirs[false].rekey)
	}
}
