package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The edge modes of the tool (encrypted_tool_test.go): TCP edge cases run
// with real Linux sockets, each scenario the same over a plain path and
// through the encrypting pair (edge_test.go).
//
// edge-server listens on edgeBase+i for scenario i of edgeScens and prints
// one line per connection, "EDGESRV scen=<name> peer=<client> key=value...",
// once the connection is over. edge-client runs one scenario against one
// address and prints "EDGE scen=<name> local=<its address> key=value...".
// Byte streams are the stream tool's (marker every markerEvery bytes), so
// the capture of the untrusted link shows any plaintext, and every receiver
// checks each byte and the EOF at the exact length (recvStream).

// edgeModes are the tool modes of this file; runTool dispatches to them.
var edgeModes = map[string]func([]string) int{
	"edge-server": edgeServerMain,
	"edge-client": edgeClientMain,
}

const edgeBase = 6001

var edgeScens = []string{"banner", "banner-close", "shutwr", "pingpong", "oob-inline", "oob", "rst-client", "rst-server-idle",
	"rst-server-mid", "simclose", "unread-close", "reuse", "rst-immediate"}

func edgePort(scen string) int {
	for i, s := range edgeScens {
		if s == scen {
			return edgeBase + i
		}
	}
	return 0
}

// Stream seeds of the scenarios (any distinct values).
const (
	seedBanner, seedRequest, seedReply = 7, 8, 9
	seedShutwr, seedAbort              = 11, 13
	seedCloseA, seedCloseB, seedReuse  = 20, 21, 31
)

// Sizes: enough for several windows where a scenario is about a transfer.
const (
	bannerLen, requestLen, replyLen = 1500, 1000, 100000
	shutwrLen                       = 2 << 20
	abortAfter                      = 1 << 20 // rst-client: bytes the client reads before it aborts
	simcloseLen, reuseLen           = 10000, 1000
)

// errName names how a socket call ended, for the test to compare.
func errName(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.As(err, &ne) && ne.Timeout():
		return "TIMEOUT"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// readExact reads n bytes of stream seed from r, without waiting for EOF.
func readExact(r io.Reader, n int, seed uint64) error {
	got, want := make([]byte, n), make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil {
		return err
	}
	newStream(seed).fill(want)
	if !bytes.Equal(got, want) {
		return errors.New("CORRUPT")
	}
	return nil
}

// abort closes c with SO_LINGER 0: the ABORT call, an RST in place of a
// FIN, with whatever is unsent discarded (RFC 9293 §3.10.5).
func abort(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// queued is how many bytes c holds unread (SIOCINQ); atMark reports whether
// the next byte to read is the urgent mark (SIOCATMARK).
func queued(c *net.TCPConn) (n int, atMark bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		m, _ := unix.IoctlGetInt(int(fd), unix.SIOCATMARK)
		atMark = m != 0
	})
	return n, atMark
}

func edgeServerMain(args []string) int {
	fs := flag.NewFlagSet("edge-server", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, scen := range edgeScens {
		ln, err := net.Listen("tcp", fmt.Sprintf("[::]:%d", edgePort(scen)))
		if err != nil {
			fmt.Println("tool error:", err)
			return 1
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					line := edgeServe(scen, c.(*net.TCPConn))
					fmt.Printf("EDGESRV scen=%s peer=%v %s\n", scen, c.RemoteAddr(), line)
				}()
			}
		}()
	}
	fmt.Println("edge server ready")
	select {}
}

func edgeServe(scen string, c *net.TCPConn) string {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(90 * time.Second))
	switch scen {
	case "banner":
		// The server speaks first (an SMTP or SSH banner), then answers a
		// request and closes.
		if _, err := sendStream(c, bannerLen, seedBanner, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		if err := readExact(c, requestLen, seedRequest); err != nil {
			return "request=" + errName(err)
		}
		if _, err := sendStream(c, replyLen, seedReply, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		return "err=nil"
	case "banner-close":
		_, err := sendStream(c, 3000, seedBanner, 0, 0, nil)
		return "err=" + errName(err)
	case "shutwr":
		// The client half-closed at once; the server sends after its EOF.
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			return fmt.Sprintf("read=%d err=%s", len(b), errName(err))
		}
		_, err := sendStream(c, shutwrLen, seedShutwr, 0, 0, nil)
		if err == nil {
			err = c.CloseWrite()
		}
		return "err=" + errName(err)
	case "pingpong":
		_ = c.SetNoDelay(true)
		b := make([]byte, 1)
		for n := 0; ; n++ {
			if _, err := io.ReadFull(c, b); err != nil {
				return fmt.Sprintf("rounds=%d err=%s", n, errName(err))
			}
			if _, err := c.Write(b); err != nil {
				return fmt.Sprintf("rounds=%d err=%s", n, errName(err))
			}
		}
	case "oob-inline", "oob":
		return oobServe(c, scen == "oob-inline")
	case "rst-client":
		// Send until the client's RST stops us.
		_, err := sendStream(c, math.MaxInt64, seedAbort, 0, 0, nil)
		return "err=" + errName(err)
	case "rst-server-idle":
		if err := readExact(c, 10, seedAbort); err != nil {
			return "read=" + errName(err)
		}
		time.Sleep(300 * time.Millisecond) // let the connection go quiet: both sides' ACKs done
		abort(c)
		return "err=nil"
	case "rst-server-mid":
		// 2 MB into the socket, most of it still unsent when it aborts.
		if _, err := sendStream(c, 2<<20, seedAbort, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		abort(c)
		return "err=nil"
	case "unread-close":
		// Read 10 of the 20 bytes the client sent in one write, then
		// close with the other 10 unread: the stack resets (RFC 1122
		// §4.2.2.13: data lost is shown by an RST, not a FIN).
		if err := readExact(c, 10, seedAbort); err != nil {
			return "read=" + errName(err)
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if n, _ := queued(c); n >= 10 {
				break
			}
		}
		_ = c.Close()
		return "err=nil"
	case "simclose":
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return "hdr=" + errName(err)
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(hdr[:])))
		if _, err := sendStream(c, simcloseLen, seedCloseB, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		time.Sleep(time.Until(at))
		werr := c.CloseWrite()
		n, _, err := recvStream(c, simcloseLen, seedCloseA)
		return fmt.Sprintf("got=%d err=%s werr=%s", n, errName(err), errName(werr))
	case "reuse":
		// The server closes first: its end of the tuple is in TIME-WAIT
		// when the client's next SYN comes (RFC 9293 §3.6).
		_, err := sendStream(c, reuseLen, seedReuse, 0, 0, nil)
		return "err=" + errName(err)
	case "rst-immediate":
		b := make([]byte, 10)
		n, err := c.Read(b)
		return fmt.Sprintf("got=%d err=%s", n, errName(err))
	}
	return "err=unknown_scenario"
}

// oobServe waits for the client's FIN before reading anything, so that
// every byte, and the urgent pointer, is queued: a read that starts while
// the urgent byte arrives would pass over it, and Linux forgets the urgent
// byte once a read goes past the mark. Then it reads to EOF, taking the
// urgent byte out of band at the mark unless inline (RFC 9293 §3.8.5,
// RFC 6093). It reports the bytes read in band, the urgent byte, and the
// offset of the mark (-1: none).
func oobServe(c *net.TCPConn, inline bool) string {
	rc, err := c.SyscallConn()
	if err != nil {
		return "err=" + errName(err)
	}
	_ = rc.Control(func(fd uintptr) {
		if inline {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_OOBINLINE, 1)
		}
		for err == nil {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			var k int
			k, err = unix.Poll(pfd, 30_000)
			if errors.Is(err, unix.EINTR) {
				err = nil
				continue
			}
			if err == nil && k == 0 {
				err = errors.New("no FIN within 30 s")
			}
			if err == nil && pfd[0].Revents&unix.POLLRDHUP != 0 {
				break
			}
		}
	})
	if err != nil {
		return "err=" + errName(err)
	}
	var got, oob []byte
	mark := -1
	buf := make([]byte, 64)
	for {
		if _, at := queued(c); at && mark < 0 {
			mark = len(got)
			if !inline {
				_ = rc.Control(func(fd uintptr) {
					b := make([]byte, 1)
					if k, _, e := unix.Recvfrom(int(fd), b, unix.MSG_OOB|unix.MSG_DONTWAIT); e == nil {
						oob = b[:k]
					}
				})
			}
		}
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Sprintf("got=%q oob=%q mark=%d err=%s", got, oob, mark, errName(err))
		}
	}
}

func edgeClientMain(args []string) int {
	fs := flag.NewFlagSet("edge-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	scen := fs.String("scen", "", "scenario")
	rounds := fs.Int("rounds", 1000, "pingpong: round trips; reuse: connections")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fmt.Printf("EDGE scen=%s %s\n", *scen, edgeClient(*scen, *addr, *rounds))
	return 0
}

func edgeClient(scen, addr string, rounds int) string {
	if scen == "reuse" {
		return reuseClient(addr, rounds)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial=" + errName(err)
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	return fmt.Sprintf("local=%v %s", c.LocalAddr(), edgeClientConn(scen, c, rounds))
}

func edgeClientConn(scen string, c *net.TCPConn, rounds int) string {
	t0 := time.Now()
	ms := func() string { return fmt.Sprintf("ms=%.1f", time.Since(t0).Seconds()*1000) } // logged only
	switch scen {
	case "banner":
		if err := readExact(c, bannerLen, seedBanner); err != nil {
			return "banner=" + errName(err)
		}
		if _, err := sendStream(c, requestLen, seedRequest, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		n, _, err := recvStream(c, replyLen, seedReply)
		return fmt.Sprintf("got=%d err=%s %s", n, errName(err), ms())
	case "banner-close":
		n, _, err := recvStream(c, 3000, seedBanner)
		return fmt.Sprintf("got=%d err=%s %s", n, errName(err), ms())
	case "shutwr":
		// Half-close before sending anything (RFC 9293 §3.6: the other
		// direction stays open until the server's FIN).
		if err := c.CloseWrite(); err != nil {
			return "shut=" + errName(err)
		}
		n, _, err := recvStream(c, shutwrLen, seedShutwr)
		return fmt.Sprintf("got=%d err=%s %s", n, errName(err), ms())
	case "pingpong":
		_ = c.SetNoDelay(true)
		b := []byte{0}
		for i := 0; i < rounds; i++ {
			b[0] = byte(i)
			if _, err := c.Write(b); err != nil {
				return fmt.Sprintf("got=%d err=%s", i, errName(err))
			}
			if _, err := io.ReadFull(c, b); err != nil {
				return fmt.Sprintf("got=%d err=%s", i, errName(err))
			}
			if b[0] != byte(i) {
				return fmt.Sprintf("got=%d err=CORRUPT", i)
			}
		}
		return fmt.Sprintf("got=%d err=nil %s", rounds, ms())
	case "oob-inline", "oob":
		// "abc", the urgent byte X (MSG_OOB), "def", then the FIN.
		rc, err := c.SyscallConn()
		if err != nil {
			return "err=" + errName(err)
		}
		if _, err := c.Write([]byte("abc")); err != nil {
			return "err=" + errName(err)
		}
		_ = rc.Control(func(fd uintptr) { err = unix.Sendto(int(fd), []byte("X"), unix.MSG_OOB, nil) })
		if err != nil {
			return "oob=" + errName(err)
		}
		if _, err := c.Write([]byte("def")); err != nil {
			return "err=" + errName(err)
		}
		if err := c.CloseWrite(); err != nil {
			return "shut=" + errName(err)
		}
		b, err := io.ReadAll(c)
		return fmt.Sprintf("got=%d err=%s", len(b), errName(err))
	case "rst-client":
		if err := readExact(c, abortAfter, seedAbort); err != nil {
			return "err=" + errName(err)
		}
		abort(c)
		return "err=nil"
	case "rst-server-idle", "unread-close":
		n := 10
		if scen == "unread-close" {
			n = 20
		}
		if _, err := sendStream(c, int64(n), seedAbort, 0, 0, nil); err != nil {
			return "werr=" + errName(err)
		}
		got, err := c.Read(make([]byte, 100))
		return fmt.Sprintf("got=%d err=%s", got, errName(err))
	case "rst-server-mid":
		// Every byte before the RST must be the server's.
		n, _, err := recvStream(c, math.MaxInt64, seedAbort)
		return fmt.Sprintf("got=%d err=%s", n, errName(err))
	case "rst-immediate":
		abort(c)
		return "err=nil"
	case "simclose":
		// Both ends send, then half-close at the same instant: the FINs
		// cross (RFC 9293 §3.6, simultaneous close) after the data.
		at := time.Now().Add(300 * time.Millisecond)
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], uint64(at.UnixNano()))
		if _, err := c.Write(hdr[:]); err != nil {
			return "err=" + errName(err)
		}
		if _, err := sendStream(c, simcloseLen, seedCloseA, 0, 0, nil); err != nil {
			return "err=" + errName(err)
		}
		time.Sleep(time.Until(at))
		werr := c.CloseWrite()
		n, _, err := recvStream(c, simcloseLen, seedCloseB)
		return fmt.Sprintf("got=%d err=%s werr=%s %s", n, errName(err), errName(werr), ms())
	}
	return "err=unknown_scenario"
}

// reuseClient connects rounds times from one local port to addr, whose
// server closes first: each SYN after the first meets the server's
// TIME-WAIT on the same tuple, which a new SYN may reopen (RFC 9293 §3.6.1
// with RFC 6191: timestamps newer than the old connection's), and both
// appliances see a new connection on the tuple of one just closed. Each
// connection must carry the reply exactly, then EOF.
func reuseClient(addr string, rounds int) string {
	port := 40000 + int(time.Now().UnixNano()%20000)
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{Port: port},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
			return errors.Join(err, serr)
		}}
	var worst time.Duration
	retries := 0
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		nc, err := d.Dial("tcp", addr)
		// Our own previous socket on the port is in LAST-ACK until the
		// server ACKs its FIN (a round trip, or an RTO if the FIN or the
		// ACK is lost): the tuple is taken until then (EADDRNOTAVAIL).
		// Retry, as an application would, for a bounded time.
		for deadline := time.Now().Add(30 * time.Second); errors.Is(err, syscall.EADDRNOTAVAIL) && time.Now().Before(deadline); {
			retries++
			time.Sleep(100 * time.Millisecond)
			t0 = time.Now()
			nc, err = d.Dial("tcp", addr)
		}
		if err != nil {
			return fmt.Sprintf("local=:%d round=%d dial=%s", port, i, errName(err))
		}
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		n, _, err := recvStream(nc, reuseLen, seedReuse)
		nc.Close()
		if err != nil {
			return fmt.Sprintf("local=%v round=%d got=%d err=%s", nc.LocalAddr(), i, n, errName(err))
		}
		worst = max(worst, time.Since(t0))
	}
	return fmt.Sprintf("local=:%d got=%d err=nil dial_retries=%d worst_ms=%.1f", port, rounds, retries, worst.Seconds()*1000)
}
