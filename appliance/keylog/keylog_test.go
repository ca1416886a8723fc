package keylog_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/keylog"
	"github.com/tcpinc/tcpinc/appliance/keylog/keylogtest"
	"github.com/tcpinc/tcpinc/appliance/pcapng"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

func chunks(prefix string, n, size int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		b := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(b, fmt.Sprintf("%s %d ", prefix, i))
		out = append(out, b)
	}
	return out
}

func capture(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapng.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	for i, f := range frames {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func decrypt(t *testing.T, pcap []byte, keys string) []keylog.Conn {
	t.Helper()
	entries, err := keylog.Read(strings.NewReader(keys))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapng.NewReader(bytes.NewReader(pcap))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := keylog.Decrypt(r, entries)
	if err != nil {
		t.Fatal(err)
	}
	return conns
}

// A whole connection with a rekey each way, a retransmitted and a reordered
// segment decrypts to exactly the bytes sent, per direction.
func TestDecrypt(t *testing.T) {
	data := [2][][]byte{chunks("client", 7, 900), chunks("server", 5, 1300)}
	res, err := keylogtest.Build(keylogtest.Options{Data: data, RekeyAt: [2]int{3, 2}, Retransmit: true})
	if err != nil {
		t.Fatal(err)
	}
	conns := decrypt(t, capture(t, res.Frames), "# comment\n"+res.KeyLog)
	if len(conns) != 1 || conns[0].Key == nil {
		t.Fatalf("conns %+v", conns)
	}
	for side, s := range conns[0].Streams {
		want := bytes.Join(data[side], nil)
		if s.Err != nil || !bytes.Equal(s.Plaintext, want) {
			t.Fatalf("side %d: %d bytes, err %v; want %d bytes", side, len(s.Plaintext), s.Err, len(want))
		}
		if s.Frames != len(data[side]) || s.Generations != 2 || !s.FIN || s.InitLen != res.InitLen[side] || s.Gap {
			t.Fatalf("side %d: %+v", side, s)
		}
	}
}

// A key log line for another session (same addresses) opens nothing: the
// decoder reports the authentication failure and returns no plaintext.
func TestDecryptWrongKey(t *testing.T) {
	data := [2][][]byte{chunks("c", 2, 100), chunks("s", 2, 100)}
	res, err := keylogtest.Build(keylogtest.Options{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	other, err := keylogtest.Build(keylogtest.Options{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	conns := decrypt(t, capture(t, res.Frames), other.KeyLog)
	for _, s := range conns[0].Streams {
		if !errors.Is(s.Err, tcpcrypt.ErrFrameAuth) || len(s.Plaintext) != 0 {
			t.Fatalf("wrong key: %+v", s)
		}
	}
}

// A capture missing a segment decrypts up to the hole and says so.
func TestDecryptGap(t *testing.T) {
	data := [2][][]byte{chunks("c", 6, 900), chunks("s", 1, 10)}
	res, err := keylogtest.Build(keylogtest.Options{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	frames := append([][]byte(nil), res.Frames[:6]...) // drops a client segment
	frames = append(frames, res.Frames[7:]...)
	s := decrypt(t, capture(t, frames), res.KeyLog)[0].Streams[0]
	if !s.Gap || !s.Partial || s.Frames == 0 || s.Frames == len(data[0]) || !bytes.HasPrefix(bytes.Join(data[0], nil), s.Plaintext) {
		t.Fatalf("gap: %d frames, gap %v", s.Frames, s.Gap)
	}
}

func TestKeyLogLines(t *testing.T) {
	res, err := keylogtest.Build(keylogtest.Options{Data: [2][][]byte{{[]byte("x")}, {[]byte("y")}}})
	if err != nil {
		t.Fatal(err)
	}
	es, err := keylog.Read(strings.NewReader(res.KeyLog))
	if err != nil || len(es) != 1 {
		t.Fatalf("%v %v", es, err)
	}
	e := es[0]
	if e.SessionID != res.Session.ID || e.MasterKey != res.Session.MasterKey || e.Role != tcpcrypt.RoleA || !e.SendsAB() || e.Resumed() {
		t.Fatalf("entry %+v", e)
	}
	mk2, _ := e.MasterKeyAt(2)
	if want := tcpcrypt.NextMasterKey(tcpcrypt.NextMasterKey(e.MasterKey[:])); !bytes.Equal(mk2, want) {
		t.Fatal("MasterKeyAt(2)")
	}
	for _, bad := range []string{
		"TCPCRYPT 1.2.3.4:1 5.6.7.8:2 A A aes128gcm 00 0 00",
		"TCPCRYPT x 5.6.7.8:2 A A aes128gcm " + strings.Repeat("00", 33) + " 0 " + strings.Repeat("00", 32),
		"TCPCRYPT 1.2.3.4:1 5.6.7.8:2 C A aes128gcm " + strings.Repeat("00", 33) + " 0 " + strings.Repeat("00", 32),
		"TCPCRYPT 1.2.3.4:1 5.6.7.8:2 A A rot13 " + strings.Repeat("00", 33) + " 0 " + strings.Repeat("00", 32),
		"TLS 1 2",
	} {
		if _, err := keylog.Read(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// The writer appends, creates the file 0600 and writes one line per call.
func TestWriter(t *testing.T) {
	res, err := keylogtest.Build(keylogtest.Options{Data: [2][][]byte{{[]byte("x")}, {[]byte("y")}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "keys")
	w, err := keylog.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Log(res.Entry) {
		t.Fatal("Log refused a line")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 1 || w.Lost() != 0 {
		t.Fatalf("written %d, lost %d; want 1 and 0", w.Written(), w.Lost())
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(p)
	if !strings.HasSuffix(string(b), res.KeyLog) || !strings.HasPrefix(string(b), "# ") {
		t.Fatalf("file:\n%s", b)
	}
}

// An existing key log file wider than 0600 (0644: the keys readable by
// every user) is made 0600; before, O_CREATE's mode applied only to a new
// file and the existing one kept 0644.
func TestWriterExistingFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte("# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	w, err := keylog.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("existing key log file: mode %v, %v; want 0600", st.Mode(), err)
	}
}

// A symbolic link or a FIFO as the key log is refused, and the link's
// target is left alone; before, the link was followed (the keys went
// wherever it pointed) and a FIFO waited for a reader, then for every line.
func TestWriterRefusesOtherThanRegularFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo} {
		if w, err := keylog.Create(p); err == nil {
			w.Close()
			t.Fatalf("Create(%s) accepted it", filepath.Base(p))
		}
	}
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Fatalf("the link's target was written: %q", b)
	}
}

// A key log file that does not take lines (a FIFO or pipe nobody reads, a
// hung NFS mount) never blocks Log, which runs on the workers: once the
// queue is full, lines are refused and counted lost. Before, Log wrote to
// the file itself under a mutex all workers shared, so one blocked write
// stopped every worker, and with it all traffic.
func TestWriterSlowFileDoesNotBlockLog(t *testing.T) {
	defer keylog.SetCloseWait(100 * time.Millisecond)()
	res, err := keylogtest.Build(keylogtest.Options{Data: [2][][]byte{{[]byte("x")}, {[]byte("y")}}})
	if err != nil {
		t.Fatal(err)
	}
	r, f, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // never read: the pipe's buffer fills, then writes block
	w := keylog.NewWriterOn(f)
	const lines = 3 * keylog.QueueLines
	taken := make(chan int)
	go func() {
		n := 0
		for range lines {
			if w.Log(res.Entry) {
				n++
			}
		}
		taken <- n
	}()
	var n int
	select {
	case n = <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a file that takes no lines")
	}
	if n == lines || w.Lost() != uint64(lines-n) {
		t.Fatalf("%d of %d lines taken, %d counted lost; want the queue's worth taken and the rest lost", n, lines, w.Lost())
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close reported no lost lines")
	}
	if w.Log(res.Entry) {
		t.Fatal("Log took a line after Close")
	}
}

// Write errors are counted: the line that failed and every later one are
// lost (Lost, Err) and Log refuses lines from then on, so the engine counts
// them (key_log_lost) and the status warns. Before, the first error was
// kept where nothing read it and every later line vanished in silence.
func TestWriterWriteErrorCounted(t *testing.T) {
	res, err := keylogtest.Build(keylogtest.Options{Data: [2][][]byte{{[]byte("x")}, {[]byte("y")}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	w := keylog.NewWriterOn(f)
	w.Log(res.Entry)
	for deadline := time.Now().Add(5 * time.Second); w.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the write error was not recorded")
		}
	}
	if w.Log(res.Entry) {
		t.Fatal("Log took a line after a write error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close reported no write error")
	}
	if w.Written() != 0 || w.Lost() != 2 {
		t.Fatalf("written %d, lost %d; want 0 and 2", w.Written(), w.Lost())
	}
}

// pcapng written here reads back; tshark's editcap turns it into classic
// pcap, which reads back the same.
func TestPcapFormats(t *testing.T) {
	res, err := keylogtest.Build(keylogtest.Options{Data: [2][][]byte{chunks("c", 3, 500), chunks("s", 2, 500)}})
	if err != nil {
		t.Fatal(err)
	}
	raw := capture(t, res.Frames)
	read := func(b []byte) [][]byte {
		r, err := pcapng.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			out = append(out, bytes.Clone(p.Data))
		}
		return out
	}
	got := read(raw)
	if len(got) != len(res.Frames) || !bytes.Equal(got[3], res.Frames[3]) {
		t.Fatalf("pcapng: %d frames back of %d", len(got), len(res.Frames))
	}
	editcap, err := exec.LookPath("editcap")
	if err != nil {
		t.Fatalf("editcap (package wireshark-common, installed with tshark): %v", err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pcapng"), filepath.Join(dir, "out.pcap")
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(editcap, "-F", "pcap", in, out).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v %s", err, b)
	}
	pcap, _ := os.ReadFile(out)
	got = read(pcap)
	if len(got) != len(res.Frames) || !bytes.Equal(got[5], res.Frames[5]) {
		t.Fatalf("pcap: %d frames back of %d", len(got), len(res.Frames))
	}
}
