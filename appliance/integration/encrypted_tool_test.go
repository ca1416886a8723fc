package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the traffic tool that runs in the host
// namespaces (started through `env TEI_TOOL=<mode> <test binary> args`), so
// the endpoints are real Linux TCP sockets driven by Go with no extra build.
//
// stream mode (the 100 MB transfers): the client sends a 32-byte header
// (bytes to send n, bytes wanted m, seed, rate limit), then n bytes of the seed's
// stream, then half-closes; the server answers with m bytes of stream
// seed+1 at the same time, then half-closes. Each receiver regenerates the
// sender's stream and compares every byte as it arrives, so a corrupt
// byte is found at its offset even when the connection later fails, and
// each side prints the sha256 of what it sent and of what it received for
// the test to compare across the two ends.
//
// The streams are random bytes with marker (a string the capture must not
// show) written every markerEvery bytes, so any plaintext leak of any part
// of the transfer contains it.

// marker is the string the hosts send that must never appear on the
// untrusted link while connections are encrypted.
const marker = "TCPINC-PLAINTEXT-MARKER-5c1d"

const markerEvery = 1000

const toolEnv = "TEI_TOOL"

func TestMain(m *testing.M) {
	if mode := os.Getenv(toolEnv); mode != "" {
		os.Exit(runTool(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// stream produces the deterministic bytes of one direction: blocks of
// markerEvery bytes, each the marker followed by random bytes, so the bytes
// at an offset do not depend on how reads and writes were chunked.
type stream struct {
	rng   *rand.ChaCha8
	block [markerEvery]byte
	pos   int // next byte of block
}

func newStream(seed uint64) *stream {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], seed)
	return &stream{rng: rand.NewChaCha8(k), pos: markerEvery}
}

// fill writes the next len(b) bytes of the stream into b.
func (s *stream) fill(b []byte) {
	for len(b) > 0 {
		if s.pos == markerEvery {
			copy(s.block[:], marker)
			_, _ = s.rng.Read(s.block[len(marker):])
			s.pos = 0
		}
		n := copy(b, s.block[s.pos:])
		s.pos += n
		b = b[n:]
	}
}

func runTool(mode string, args []string) int {
	if f := edgeModes[mode]; f != nil { // edge_tool_test.go
		return f(args)
	}
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	listen := fs.String("listen", "[::]:5001", "server address")
	addr := fs.String("addr", "", "client: server address")
	n := fs.Int64("n", 0, "client: bytes to send")
	m := fs.Int64("m", 0, "client: bytes to receive")
	seed := fs.Uint64("seed", 1, "client: stream seed")
	idle := fs.Duration("idle", 30*time.Second, "client: fail when no byte moves for this long")
	rate := fs.Int64("rate", 0, "client: bytes per second each way (0: as fast as TCP goes)")
	pause := fs.Duration("pause", 0, "client: wait this long after the header before sending (keeps the connection open for inspection)")
	readPause := fs.Duration("readpause", 0, "client: wait this long after the header before reading (the server fills the client's window)")
	count := fs.Int("count", 1000, "http client: requests")
	size := fs.Int("size", 10000, "http client: body bytes per request")
	dstOpts := fs.Bool("dstopts", false, "client: a destination options header (IPv6) on every segment it sends")
	md5 := fs.String("md5", "", "client and stream server: sign every segment with this TCP MD5 key (RFC 2385)")
	md5Peers := fs.String("md5peer", "", "stream server: comma-separated client addresses the -md5 key is for")
	mptcp := fs.Bool("mptcp", false, "client and stream server: Multipath TCP (RFC 8684)")
	keepAlive := fs.Duration("keepalive", 0, "client and stream server: TCP keep-alive probes after this long idle, then every this long, 3 unanswered fail (0: Go's default; negative: none)")
	gap := fs.Duration("gap", 0, "client and stream server: send half of the bytes, go quiet this long, then send the rest")
	tfo := fs.Bool("tfo", false, "client and stream server: TCP Fast Open (RFC 7413; TCP_FASTOPEN_CONNECT, TCP_FASTOPEN)")
	dscp := fs.Int("dscp", -1, "client and stream server: after the -gap, mark the socket's packets with this DSCP (IP_TOS, IPV6_TCLASS)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch mode {
	case "stream-server":
		err = streamServer(*listen, *gap, sockOpts{md5: *md5, md5Peers: *md5Peers, mptcp: *mptcp, keepAlive: *keepAlive, tfo: *tfo, dscpAfterGap: *dscp})
	case "stream-client":
		err = streamClient(clientRun{addr: *addr, n: *n, m: *m, seed: *seed, rate: *rate, idle: *idle, pause: *pause, readPause: *readPause, gap: *gap,
			sock: sockOpts{dstOpts: *dstOpts, md5: *md5, mptcp: *mptcp, keepAlive: *keepAlive, tfo: *tfo, dscpAfterGap: *dscp}})
	case "http-server":
		err = httpServer(*listen)
	case "http-client":
		err = httpClient(*addr, *count, *size)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Println("tool error:", err)
		return 1
	}
	return 0
}

// setDstOpts makes the socket's IPv6 packets carry a destination options
// header (RFC 3542 §4.1, IPV6_DSTOPTS): next header (the kernel fills it
// in), length 0 (8 bytes in all), PadN of 4.
func setDstOpts(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DSTOPTS, string([]byte{0, 0, 1, 4, 0, 0, 0, 0}))
	}); err != nil {
		return err
	}
	return serr
}

// sockOpts are what a stream client or server asks of its sockets.
type sockOpts struct {
	dstOpts  bool   // client: an IPv6 destination options header on every segment
	md5      string // a TCP MD5 key: the client's for the server, the server's for md5Peers
	md5Peers string // server: comma-separated client addresses
	mptcp    bool   // Multipath TCP
	// keepAlive: TCP keep-alive probes after keepAlive idle, then every
	// keepAlive, three unanswered ones failing the connection (0: Go's
	// default of 15 s; negative: none).
	keepAlive time.Duration
	// tfo: TCP Fast Open; a client's first write goes in its SYN once it
	// holds a cookie for the server.
	tfo bool
	// dscpAfterGap, unless negative: the DSCP the socket's packets carry
	// from the quiet gap halfway on (an application that marks its
	// connection once it is up, as OpenSSH does for an interactive session).
	dscpAfterGap int
}

// halfway is what so does to c at the gap: mark it with dscpAfterGap.
func (so sockOpts) halfway(c *net.TCPConn) func() error {
	if so.dscpAfterGap < 0 {
		return nil
	}
	return func() error { return setDSCP(c, so.dscpAfterGap) }
}

// setDSCP marks c's packets with DSCP d: IP_TOS, and IPV6_TCLASS too on an
// IPv6 socket (whose IPv4-mapped peers take IP_TOS).
func setDSCP(c *net.TCPConn, d int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, d<<2)
		if dom, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || dom == unix.AF_INET6 {
			serr = errors.Join(serr, err, unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, d<<2))
		}
	}); err != nil {
		return err
	}
	return serr
}

// keepAliveOff is the net package's KeepAlive for so: negative turns
// keep-alives off (with keepAliveConfig's Enable false).
func (so sockOpts) keepAliveOff() time.Duration { return min(so.keepAlive, 0) }

// keepAliveConfig is so's keep-alive setting as the net package takes it.
func (so sockOpts) keepAliveConfig() net.KeepAliveConfig {
	if so.keepAlive <= 0 {
		return net.KeepAliveConfig{}
	}
	return net.KeepAliveConfig{Enable: true, Idle: so.keepAlive, Interval: so.keepAlive, Count: 3}
}

// setMD5 gives the socket the TCP MD5 signature key (RFC 2385,
// TCP_MD5SIG) for segments to and from peer; an IPv4 peer of an IPv6
// socket is given v4-mapped.
func setMD5(fd int, v6 bool, peer netip.Addr, key string) error {
	var s unix.TCPMD5Sig
	if v6 {
		s.Addr.Family = unix.AF_INET6
		a := peer.As16()
		copy(s.Addr.Data[6:22], a[:]) // after sin6_port and sin6_flowinfo
	} else {
		s.Addr.Family = unix.AF_INET
		a := peer.Unmap().As4()
		copy(s.Addr.Data[2:6], a[:]) // after sin_port
	}
	s.Keylen = uint16(copy(s.Key[:], key))
	return unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &s)
}

// sendStream writes n bytes of stream seed to w, at most rate bytes per
// second if rate > 0, pausing for gap halfway and then calling atGap
// unless nil, and returns their hash.
func sendStream(w io.Writer, n int64, seed uint64, rate int64, gap time.Duration, atGap func() error) (string, error) {
	s := newStream(seed)
	t0 := time.Now()
	h := sha256.New()
	buf := make([]byte, 64<<10)
	half := n / 2
	for left := n; left > 0; {
		if gap > 0 && n-left == half {
			time.Sleep(gap)
			if atGap != nil {
				if err := atGap(); err != nil {
					return "", fmt.Errorf("at the gap: %w", err)
				}
			}
		}
		b := buf[:min(int64(len(buf)), left)]
		if gap > 0 && n-left < half {
			b = b[:min(int64(len(b)), half-(n-left))]
		}
		s.fill(b)
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return "", fmt.Errorf("%s: send at %d of %d: %w", stamp(), n-left, n, err)
		}
		left -= int64(len(b))
		if rate > 0 {
			due := t0.Add(time.Duration(float64(n-left) / float64(rate) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recvStream reads r to EOF, checks every byte against stream seed and
// returns the count and hash of what arrived. A byte that differs is an
// error naming its offset; so is a stream longer or shorter than want.
func recvStream(r io.Reader, want int64, seed uint64) (int64, string, error) {
	s := newStream(seed)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	exp := make([]byte, 64<<10)
	var got int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if got+int64(k) > want {
				return got + int64(k), "", fmt.Errorf("received more than the %d bytes sent", want)
			}
			s.fill(exp[:k])
			if !bytes.Equal(buf[:k], exp[:k]) {
				i := 0
				for buf[i] == exp[i] {
					i++
				}
				return got, "", fmt.Errorf("CORRUPT byte at offset %d of the stream", got+int64(i))
			}
			got += int64(k)
		}
		if err == io.EOF {
			if got != want {
				return got, "", fmt.Errorf("%s: EOF after %d of %d bytes (short stream)", stamp(), got, want)
			}
			return got, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return got, "", fmt.Errorf("%s: receive after %d of %d bytes: %w", stamp(), got, want, err)
		}
	}
}

// idleConn fails a read or write that makes no progress for idle.
type idleConn struct {
	*net.TCPConn
	idle time.Duration
}

func (c idleConn) Read(b []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.idle))
	return c.TCPConn.Read(b)
}

func (c idleConn) Write(b []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.idle))
	return c.TCPConn.Write(b)
}

func streamServer(listen string, gap time.Duration, so sockOpts) error {
	lc := net.ListenConfig{KeepAlive: so.keepAliveOff(), KeepAliveConfig: so.keepAliveConfig()}
	lc.SetMultipathTCP(so.mptcp)
	if so.md5 != "" || so.tfo {
		lc.Control = func(network, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				if so.tfo { // a queue of 64 pending Fast Open requests
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 64)
				}
				if so.md5 == "" {
					return
				}
				for _, p := range strings.Split(so.md5Peers, ",") {
					a, err := netip.ParseAddr(p)
					if err != nil {
						serr = errors.Join(serr, err)
						continue
					}
					serr = errors.Join(serr, setMD5(int(fd), network != "tcp4", a, so.md5))
				}
			}); err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("stream server ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			tc := idleConn{c.(*net.TCPConn), 60 * time.Second}
			var hdr [32]byte
			if _, err := io.ReadFull(tc, hdr[:]); err != nil {
				fmt.Printf("conn %v: header: %v\n", c.RemoteAddr(), err)
				return
			}
			n, m, seed := int64(binary.BigEndian.Uint64(hdr[0:])), int64(binary.BigEndian.Uint64(hdr[8:])), binary.BigEndian.Uint64(hdr[16:])
			rate := int64(binary.BigEndian.Uint64(hdr[24:]))
			var sent string
			var serr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent, serr = sendStream(tc, m, seed+1, rate, gap, so.halfway(tc.TCPConn))
				if serr == nil {
					serr = tc.CloseWrite()
				}
			}()
			got, recv, rerr := recvStream(tc, n, seed)
			wg.Wait()
			fmt.Printf("conn seed=%d recv_bytes=%d recv_sha=%s sent_sha=%s recv_err=%v send_err=%v\n", seed, got, recv, sent, rerr, serr)
		}()
	}
}

// clientRun is one stream client's connection: n bytes to send, m to
// receive, the streams' seed, a rate limit each way (0: none), how long
// without progress fails it, the pauses before sending and reading, and
// the quiet gap halfway through the bytes it sends.
type clientRun struct {
	addr                        string
	n, m                        int64
	seed                        uint64
	rate                        int64
	idle, pause, readPause, gap time.Duration
	sock                        sockOpts
}

func streamClient(r clientRun) error {
	addr, n, m, seed, rate, idle, pause := r.addr, r.n, r.m, r.seed, r.rate, r.idle, r.pause
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: r.sock.keepAliveOff(), KeepAliveConfig: r.sock.keepAliveConfig()}
	d.SetMultipathTCP(r.sock.mptcp)
	d.Control = func(network, address string, c syscall.RawConn) error {
		if r.sock.dstOpts {
			if err := setDstOpts(network, address, c); err != nil {
				return err
			}
		}
		if r.sock.tfo {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1) }); err != nil || serr != nil {
				return errors.Join(err, serr)
			}
		}
		if r.sock.md5 == "" {
			return nil
		}
		peer, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setMD5(int(fd), network == "tcp6", peer.Addr(), r.sock.md5) }); err != nil {
			return err
		}
		return serr
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := idleConn{c.(*net.TCPConn), max(idle, pause+r.gap+10*time.Second)}
	mp, _ := tc.MultipathTCP()
	fmt.Printf("connected %s -> %s mptcp=%v\n", c.LocalAddr(), c.RemoteAddr(), mp)
	hdr := streamHeader(n, m, seed, rate)
	if _, err := tc.Write(hdr[:]); err != nil {
		return err
	}
	var sent string
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(pause)
		sent, serr = sendStream(tc, n, seed, rate, r.gap, r.sock.halfway(tc.TCPConn))
		if serr == nil {
			serr = tc.CloseWrite()
		}
	}()
	time.Sleep(r.readPause)
	got, recv, rerr := recvStream(tc, m, seed+1)
	if rerr == nil {
		mp, _ = tc.MultipathTCP() // false once MPTCP fell back to TCP
	} else {
		c.Close() // unblocks the sender; the socket can no longer say
	}
	<-done
	fmt.Printf("client seed=%d recv_bytes=%d recv_sha=%s sent_sha=%s mptcp=%v\n", seed, got, recv, sent, mp)
	return errors.Join(rerr, serr)
}

// httpServer answers GET /<k> with k bytes of stream k (markers included).
func httpServer(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("http server ready")
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := strconv.Atoi(r.URL.Path[1:])
		if err != nil || k < 0 || k > 1<<24 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		b := make([]byte, k)
		newStream(uint64(k)).fill(b)
		w.Header().Set("Content-Length", strconv.Itoa(k))
		_, _ = w.Write(b)
	}))
}

// httpClient runs count requests at once, each on its own connection, and
// checks every body.
func httpClient(addr string, count, size int) error {
	tr := &http.Transport{DisableKeepAlives: true, MaxConnsPerHost: 0}
	cl := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	want := make([]byte, size)
	newStream(uint64(size)).fill(want)
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := func() error {
				resp, err := cl.Get("http://" + addr + "/" + strconv.Itoa(size))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(bufio.NewReader(resp.Body))
				if err != nil {
					return err
				}
				if resp.StatusCode != 200 || !bytes.Equal(body, want) {
					return fmt.Errorf("status %d, body of %d bytes differs", resp.StatusCode, len(body))
				}
				return nil
			}()
			if err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			ok.Add(1)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	fmt.Printf("http ok=%d failed=%d elapsed=%v first_error=%v\n", ok.Load(), bad.Load(), time.Since(t0).Round(time.Millisecond), firstErr.Load())
	if bad.Load() > 0 {
		return fmt.Errorf("%d of %d requests failed", bad.Load(), count)
	}
	return nil
}

// TestStreamTool checks the traffic tool's own checker (no root needed):
// the stream does not depend on chunking, a flipped byte is reported at its
// offset, and a short stream is reported as truncated.
func TestStreamTool(t *testing.T) {
	var buf bytes.Buffer
	sent, err := sendStream(&buf, 1<<20+123, 5, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	// A gap halfway changes when the bytes go, not which.
	var gapped gapWriter
	if again, err := sendStream(&gapped, 1<<20+123, 5, 0, 50*time.Millisecond, nil); err != nil || again != sent || !bytes.Equal(gapped.b, data) {
		t.Fatalf("with a gap: sha %s (without %s), %v", again, sent, err)
	}
	if gapped.at != (1<<20+123)/2 || gapped.wait < 50*time.Millisecond {
		t.Fatalf("the gap came after %d bytes and lasted %v, want after %d, 50ms", gapped.at, gapped.wait, (1<<20+123)/2)
	}
	if bytes.Count(data, []byte(marker)) != (len(data)+markerEvery-1)/markerEvery {
		t.Errorf("%d markers in %d bytes", bytes.Count(data, []byte(marker)), len(data))
	}
	// iotest-style reader with odd chunk sizes.
	n, got, err := recvStream(&oddReader{b: data}, int64(len(data)), 5)
	if err != nil || n != int64(len(data)) || got != sent {
		t.Fatalf("clean stream: %d bytes, sha %s (sent %s), %v", n, got, sent, err)
	}
	bad := bytes.Clone(data)
	bad[777777] ^= 1
	if _, _, err := recvStream(&oddReader{b: bad}, int64(len(bad)), 5); err == nil || !strings.Contains(err.Error(), "offset 777777") {
		t.Errorf("corruption not reported at its offset: %v", err)
	}
	if _, _, err := recvStream(bytes.NewReader(data[:1000]), int64(len(data)), 5); err == nil || !strings.Contains(err.Error(), "short stream") {
		t.Errorf("truncation not reported: %v", err)
	}
}

// gapWriter keeps what is written and the longest pause between writes,
// with the number of bytes before it.
type gapWriter struct {
	b    []byte
	last time.Time
	at   int
	wait time.Duration
}

func (w *gapWriter) Write(p []byte) (int, error) {
	if now := time.Now(); !w.last.IsZero() && now.Sub(w.last) > w.wait {
		w.at, w.wait = len(w.b), now.Sub(w.last)
	}
	w.b = append(w.b, p...)
	w.last = time.Now()
	return len(p), nil
}

type oddReader struct {
	b []byte
	i int
}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.i++
	n := copy(p[:min(len(p), 1+(r.i*7919)%5000)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// streamHeader is what a stream client sends first: the bytes it sends (n)
// and wants back (m), the seed of both streams, and the server's pace in
// bytes per second (0: as fast as it can). The server reads it in
// streamServer.
func streamHeader(n, m int64, seed uint64, rate int64) (hdr [32]byte) {
	binary.BigEndian.PutUint64(hdr[0:], uint64(n))
	binary.BigEndian.PutUint64(hdr[8:], uint64(m))
	binary.BigEndian.PutUint64(hdr[16:], seed)
	binary.BigEndian.PutUint64(hdr[24:], uint64(rate))
	return hdr
}
