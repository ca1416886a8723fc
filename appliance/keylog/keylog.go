// Package keylog writes and reads the tcpcrypt key log: a debugging aid, off
// by default, in the spirit of TLS's SSLKEYLOGFILE. Each line gives the
// master key of one key generation of one connection, from which both
// directions' traffic keys follow (RFC 8548 §3.3, §3.8). Anyone holding the
// file can decrypt those connections from a capture, and later generations
// of them: it is as secret as the traffic itself.
//
// A line, fields separated by one space:
//
//	TCPCRYPT <inside> <outside> <role> <orig-role> <aead> <session-id> <generation> <mk>
//
// inside and outside are the connection's addr:port on each side of the
// appliance that wrote it; role is that appliance's TCP-ENO role (A or B),
// orig-role its role in the session that produced ss[0] (it decides which
// direction uses k_ab, TC-38); aead is the cryptopool suite name; session-id
// and mk (mk[generation]) are hex. Lines starting with # are comments.
package keylog

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/appliance/engine"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// Label starts every key line.
const Label = "TCPCRYPT"

// Entry is one parsed line.
type Entry struct {
	Inside, Outside netip.AddrPort
	Role, OrigRole  tcpcrypt.Role
	Suite           cryptopool.Suite
	SessionID       [tcpcrypt.SessionIDLen]byte
	Generation      uint64
	MasterKey       [tcpcrypt.SecretLen]byte // mk[Generation]
}

// SendsAB reports whether the inside host's side (the appliance that wrote
// the line) sends with k_ab.
func (e *Entry) SendsAB() bool { return e.OrigRole == tcpcrypt.RoleA }

// Resumed reports whether the session was resumed (the v bit of the TEP
// byte that starts the session ID, RFC 8548 §3.4).
func (e *Entry) Resumed() bool { return e.SessionID[0]&0x80 != 0 }

// MasterKeyAt returns mk[g] for g >= e.Generation.
func (e *Entry) MasterKeyAt(g uint64) ([]byte, error) {
	if g < e.Generation {
		return nil, fmt.Errorf("keylog: generation %d is below the logged %d", g, e.Generation)
	}
	mk := append([]byte(nil), e.MasterKey[:]...)
	for i := e.Generation; i < g; i++ {
		mk = tcpcrypt.NextMasterKey(mk)
	}
	return mk, nil
}

func roleName(r tcpcrypt.Role) string {
	if r == tcpcrypt.RoleA {
		return "A"
	}
	return "B"
}

// Format renders the line for generation k.Generation of k's session, its
// master key k.MasterKey (no newline).
func Format(k engine.KeyLogEntry) string {
	s := k.Session
	return fmt.Sprintf("%s %s %s %s %s %s %x %d %x", Label, k.Inside, k.Outside,
		roleName(s.Role), roleName(s.OrigRole), s.Suite, s.ID[:], k.Generation, k.MasterKey[:])
}

// Writer appends lines to a file; its Log method is the engine's
// Deps.KeyLog, safe to call from every worker at once. A worker only
// formats the line and puts it in a bounded queue; one goroutine writes
// the queue to the file, so a slow file (NFS, a full disk) never stalls
// the workers: when the queue is full the line is lost and counted. After
// a write error the Writer takes no more lines (the file has a gap).
type Writer struct {
	f     *os.File
	lines chan string
	done  chan struct{} // closed when the writing goroutine has ended

	mu     sync.RWMutex // Log holds it shared while it queues, Close alone
	closed bool

	failed  atomic.Bool
	errMu   sync.Mutex
	err     error         // the first write error
	written atomic.Uint64 // lines in the file
	lost    atomic.Uint64 // lines refused or not written
}

// QueueLines is how many lines wait for the writing goroutine at most.
const QueueLines = 1024

// closeWait bounds how long Close waits for the queue to be written (a
// variable for the tests).
var closeWait = 5 * time.Second

// Create opens (appending) or creates path and writes a header comment.
// The file must be a regular file owned by this process's user; it is
// given mode 0600 (an existing file may have been wider). A symbolic link
// as path is refused, not followed; so is a FIFO, without waiting for a
// reader (O_NONBLOCK, which regular files ignore).
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("key log: %w", err)
	}
	if err := ownRegular(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("key log %s: %w", path, err)
	}
	if _, err := fmt.Fprintf(f, "# tcpinc key log (debugging): these keys decrypt the connections below; keep it secret, delete it after use\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("key log: %w", err)
	}
	return newWriter(f), nil
}

// ownRegular refuses anything but a regular file of this process's user
// (a device, a FIFO, another user's file, who could read the keys), then
// makes it 0600. It looks at the open file, so nothing can swap the path
// in between.
func ownRegular(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", st.Mode().Type())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by this process (uid %d)", sys.Uid, os.Geteuid())
	}
	return f.Chmod(0o600)
}

// newWriter starts the goroutine that writes to f.
func newWriter(f *os.File) *Writer {
	w := &Writer{f: f, lines: make(chan string, QueueLines), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	for line := range w.lines {
		if w.failed.Load() {
			w.lost.Add(1)
			continue
		}
		if _, err := w.f.WriteString(line); err != nil {
			w.errMu.Lock()
			w.err = err
			w.errMu.Unlock()
			w.failed.Store(true)
			w.lost.Add(1)
			continue
		}
		w.written.Add(1)
	}
}

// Log queues one line and reports whether it did. It never waits for the
// file: a line finds the queue full, the Writer failed (Err) or closed is
// lost, counted in Lost, and Log reports false.
func (w *Writer) Log(k engine.KeyLogEntry) bool {
	if w.failed.Load() {
		w.lost.Add(1)
		return false
	}
	line := Format(k) + "\n"
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		select {
		case w.lines <- line:
			return true
		default:
		}
	}
	w.lost.Add(1)
	return false
}

// Written is the number of lines written to the file.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Lost is the number of lines Log refused or the file did not take.
func (w *Writer) Lost() uint64 { return w.lost.Load() }

// Err is the first write error, if any.
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Close writes what is queued, waiting up to closeWait for a slow file
// (the lines still queued then are lost), and closes the file. It returns
// the first write error.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.Err()
	}
	w.closed = true
	close(w.lines)
	w.mu.Unlock()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		// A write blocked on a pipe ends when the file closes; the
		// goroutine then counts what is left as lost.
		left := len(w.lines)
		w.f.Close()
		return fmt.Errorf("key log: the file took no line for %v; %d queued lines lost", closeWait, left)
	}
	cerr := w.f.Close()
	if err := w.Err(); err != nil {
		return fmt.Errorf("key log: %w", err)
	}
	return cerr
}

// Read parses a key log. Malformed lines are errors naming their line
// number.
func Read(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("key log line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseLine(line string) (Entry, error) {
	var e Entry
	f := strings.Fields(line)
	if len(f) != 9 || f[0] != Label {
		return e, errors.New("want " + Label + " and 8 fields")
	}
	var err error
	if e.Inside, err = netip.ParseAddrPort(f[1]); err != nil {
		return e, err
	}
	if e.Outside, err = netip.ParseAddrPort(f[2]); err != nil {
		return e, err
	}
	for i, r := range []*tcpcrypt.Role{&e.Role, &e.OrigRole} {
		switch f[3+i] {
		case "A":
			*r = tcpcrypt.RoleA
		case "B":
			*r = tcpcrypt.RoleB
		default:
			return e, fmt.Errorf("role %q", f[3+i])
		}
	}
	if e.Suite, err = cryptopool.ParseSuite(f[5]); err != nil {
		return e, err
	}
	if err := unhex(e.SessionID[:], f[6]); err != nil {
		return e, fmt.Errorf("session id: %w", err)
	}
	if e.Generation, err = strconv.ParseUint(f[7], 10, 64); err != nil {
		return e, err
	}
	if err := unhex(e.MasterKey[:], f[8]); err != nil {
		return e, fmt.Errorf("master key: %w", err)
	}
	return e, nil
}

func unhex(dst []byte, s string) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}
