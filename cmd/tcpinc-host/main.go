// Command tcpinc-host opens TCP connections that negotiate TCP-ENO (RFC 8547)
// and tcpcrypt (RFC 8548) in the host's own kernel handshake (package
// hostmode), and moves data over them: to check a path end to end, or an
// appliance against an independent implementation.
//
//	tcpinc-host listen  -addr :7000 [-mode echo|sink|source] [-bytes N]
//	tcpinc-host connect -addr 10.0.0.2:7000 [-mode echo|source|sink] [-bytes N] [-count K]
//
// Each connection prints one JSON line: addresses, whether it is encrypted
// (or why not), role, negotiated TEP, session ID, names, transcript, AEAD,
// whether it resumed, the bytes moved and, for an echo client, whether the
// echo came back intact. A listener prints {"event":"listening",...} first.
// Compare the session_id printed at both ends (or with an appliance's
// /api/v1/sessions): equal IDs mean no one relayed the key exchange.
//
// -plain uses ordinary sockets (no TCP-ENO), for the hosts behind an
// appliance. Run as root (BPF and cgroups).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
	"github.com/tcpinc/tcpinc/hostmode"
)

type options struct {
	addr, mode, bind string
	bytes            int64
	count            int
	plain            bool
	cfg              hostmode.Config
	timeout, between time.Duration
	hold             time.Duration
	local            *net.TCPAddr
}

// record is the JSON line of one connection.
type record struct {
	Event      string `json:"event"`
	Local      string `json:"local,omitempty"`
	Remote     string `json:"remote,omitempty"`
	Encrypted  bool   `json:"encrypted"`
	Reason     string `json:"fallback_reason,omitempty"`
	Role       string `json:"role,omitempty"`
	NegTEP     string `json:"negtep,omitempty"`
	SessionID  string `json:"session_id,omitempty"`
	SelfName   string `json:"self_name,omitempty"`
	PeerName   string `json:"peer_name,omitempty"`
	Transcript string `json:"transcript,omitempty"`
	AEAD       string `json:"aead,omitempty"`
	Resumed    bool   `json:"resumed"`
	Sent       int64  `json:"sent"`
	Received   int64  `json:"received"`
	SentSHA    string `json:"sent_sha256,omitempty"`
	RecvSHA    string `json:"recv_sha256,omitempty"`
	EchoOK     *bool  `json:"echo_ok,omitempty"`
	Seconds    string `json:"seconds,omitempty"`
	Error      string `json:"error,omitempty"`
}

var outMu sync.Mutex

func emit(r record) {
	b, _ := json.Marshal(r)
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "listen" && os.Args[1] != "connect") {
		fmt.Fprintln(os.Stderr, "usage: tcpinc-host listen|connect -addr ADDR [flags]; -h for flags")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("tcpinc-host "+verb, flag.ExitOnError)
	var o options
	var teps, aeads string
	fs.StringVar(&o.addr, "addr", "", "listen or connect address (host:port)")
	fs.StringVar(&o.bind, "bind", "", "connect from this local address (host or host:port)")
	fs.StringVar(&o.mode, "mode", "echo", "echo, source (send -bytes) or sink (receive)")
	fs.Int64Var(&o.bytes, "bytes", 2<<20, "bytes a client (echo, source) or a source listener sends")
	fs.IntVar(&o.count, "count", 1, "connections a client makes one after another (the second can resume)")
	fs.BoolVar(&o.plain, "plain", false, "ordinary sockets, no TCP-ENO")
	fs.StringVar(&teps, "tep", "", "TEPs, most preferred first: x25519,x448,p256,p521 (default all)")
	fs.StringVar(&aeads, "aead", "", "AEADs, most preferred first: aes128gcm,aes256gcm,chacha20poly1305 (default all)")
	fs.IntVar(&o.cfg.FrameSize, "frame", 16384, "application bytes per tcpcrypt frame, 1..65518")
	fs.IntVar(&o.cfg.RekeyFrames, "rekey", 0, "initiate a rekey every N frames (0: never)")
	fs.BoolVar(&o.cfg.SplitInit, "split-init", false, "send the Init message in two segments")
	fs.IntVar(&o.cfg.InitTail, "init-tail", 0, "bytes in the Init message's ignored field, at most 1024 (receivers must skip them; senders must not send them: tests only)")
	fs.BoolVar(&o.cfg.RequireEncryption, "require", false, "reset connections that do not negotiate tcpcrypt")
	fs.BoolVar(&o.cfg.PassiveRole, "passive-role", false, "set b = 1 on connect (simultaneous open)")
	fs.BoolVar(&o.cfg.NoCache, "no-cache", false, "neither resume nor cache session secrets")
	fs.DurationVar(&o.between, "between", 0, "pause between a client's connections (prints {\"event\":\"pause\"} first)")
	fs.DurationVar(&o.hold, "hold", 0, "after the handshake, print {\"event\":\"established\",...} and wait this long before moving data")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "per-connection deadline")
	_ = fs.Parse(os.Args[2:])
	if o.addr == "" {
		fmt.Fprintln(os.Stderr, "tcpinc-host: -addr is required")
		os.Exit(2)
	}
	for _, n := range split(teps) {
		t, err := parseTEP(n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcpinc-host:", err)
			os.Exit(2)
		}
		o.cfg.TEPs = append(o.cfg.TEPs, t)
	}
	if a := split(aeads); len(a) > 0 {
		s, err := cryptopool.ParseOrder(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcpinc-host:", err)
			os.Exit(2)
		}
		o.cfg.AEADs = s
	}
	if o.bind != "" {
		b := o.bind
		if _, _, err := net.SplitHostPort(b); err != nil {
			b = net.JoinHostPort(b, "0")
		}
		la, err := net.ResolveTCPAddr("tcp", b)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcpinc-host: -bind:", err)
			os.Exit(2)
		}
		o.local, o.cfg.LocalAddr = la, la
	}
	var h *hostmode.Host
	if !o.plain {
		var err error
		if h, err = hostmode.New(o.cfg); err != nil {
			fmt.Fprintln(os.Stderr, "tcpinc-host:", err)
			os.Exit(1)
		}
		defer h.Close()
		// Leave and remove the cgroup also when stopped by a signal.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			h.Close()
			os.Exit(1)
		}()
	}
	var err error
	if verb == "listen" {
		err = listen(h, &o)
	} else {
		err = connect(h, &o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpinc-host:", err)
		if h != nil {
			h.Close()
		}
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseTEP(s string) (tcpcrypt.TEP, error) {
	for _, t := range tcpcrypt.AllTEPs {
		if strings.EqualFold(t.String(), s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown TEP %q (x25519, x448, p256, p521)", s)
}

// conn is what both socket kinds give.
type conn interface {
	net.Conn
	CloseWrite() error
}

func describe(c conn, event string) record {
	r := record{Event: event, Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
	hc, ok := c.(*hostmode.Conn)
	if !ok {
		r.Reason = "plain socket"
		return r
	}
	i := hc.Info()
	r.Encrypted = i.Encrypted
	if !i.Encrypted {
		r.Reason = i.Reason.String()
		return r
	}
	r.Role = i.Role.String()
	r.NegTEP = fmt.Sprintf("%#02x", i.NegTEP)
	r.SessionID = hex.EncodeToString(i.SessionID)
	r.SelfName = hex.EncodeToString(i.SelfName())
	r.PeerName = hex.EncodeToString(i.PeerName())
	r.Transcript = hex.EncodeToString(i.Transcript)
	r.AEAD = i.Suite.String()
	r.Resumed = i.Resumed
	return r
}

func listen(h *hostmode.Host, o *options) error {
	var ln net.Listener
	var err error
	network := "tcp4"
	if host, _, _ := net.SplitHostPort(o.addr); strings.Contains(host, ":") {
		network = "tcp6"
	}
	if h != nil {
		ln, err = h.Listen(network, o.addr)
	} else {
		ln, err = net.Listen(network, o.addr)
	}
	if err != nil {
		return err
	}
	emit(record{Event: "listening", Local: ln.Addr().String()})
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		c := nc.(conn)
		go serve(c, o)
	}
}

// serve runs one accepted connection in the listener's mode.
func serve(c conn, o *options) {
	defer c.Close()
	t0 := time.Now()
	_ = c.SetDeadline(t0.Add(o.timeout))
	established(c, o)
	r := describe(c, "conn")
	sh, rh := sha256.New(), sha256.New()
	var err error
	switch o.mode {
	case "echo":
		// Copy until the client's end of stream, then end ours.
		buf := make([]byte, 64<<10)
		for {
			n, rerr := c.Read(buf)
			if n > 0 {
				rh.Write(buf[:n])
				r.Received += int64(n)
				if _, werr := c.Write(buf[:n]); werr != nil {
					err = werr
					break
				}
				sh.Write(buf[:n])
				r.Sent += int64(n)
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					err = rerr
				}
				break
			}
		}
		if err == nil {
			err = c.CloseWrite()
		}
	case "sink":
		r.Received, err = io.Copy(rh, c)
	case "source":
		r.Sent, err = io.Copy(io.MultiWriter(c, sh), io.LimitReader(newStream(1), o.bytes))
		if err == nil {
			err = c.CloseWrite()
		}
		if err == nil {
			_, err = io.Copy(rh, c)
		}
	}
	finish(&r, sh, rh, t0, err)
	emit(r)
}

// established reports a connection as soon as its handshake is done, so
// that its session can be compared with an appliance's while it is open.
func established(c conn, o *options) {
	if o.hold > 0 {
		emit(describe(c, "established"))
		time.Sleep(o.hold)
	}
}

func finish(r *record, sh, rh io.Writer, t0 time.Time, err error) {
	r.SentSHA = hex.EncodeToString(sh.(interface{ Sum([]byte) []byte }).Sum(nil))
	r.RecvSHA = hex.EncodeToString(rh.(interface{ Sum([]byte) []byte }).Sum(nil))
	r.Seconds = fmt.Sprintf("%.3f", time.Since(t0).Seconds())
	if err != nil {
		r.Error = err.Error()
	}
}

func connect(h *hostmode.Host, o *options) error {
	failed := false
	for i := 0; i < o.count; i++ {
		if i > 0 && o.between > 0 {
			emit(record{Event: "pause"})
			time.Sleep(o.between)
		}
		if !connectOnce(h, o, uint64(i+1)) {
			failed = true
		}
	}
	if failed {
		return errors.New("a connection failed")
	}
	return nil
}

func connectOnce(h *hostmode.Host, o *options, seed uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	t0 := time.Now()
	var c conn
	var err error
	if h != nil {
		c, err = h.DialConfig(ctx, "tcp", o.addr, o.cfg)
	} else {
		d := net.Dialer{LocalAddr: o.local}
		var nc net.Conn
		if nc, err = d.DialContext(ctx, "tcp", o.addr); err == nil {
			c = nc.(*net.TCPConn)
		}
	}
	if err != nil {
		emit(record{Event: "conn", Remote: o.addr, Error: err.Error()})
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(t0.Add(o.timeout))
	established(c, o)
	r := describe(c, "conn")
	sh, rh := sha256.New(), sha256.New()
	var data []byte
	if o.mode != "sink" {
		data = make([]byte, o.bytes)
		_, _ = io.ReadFull(newStream(seed), data)
		sh.Write(data)
	}
	werr := make(chan error, 1)
	go func() {
		var err error
		if data != nil {
			var n int
			n, err = c.Write(data)
			r.Sent = int64(n)
		}
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	var got bytes.Buffer
	_, err = io.Copy(io.MultiWriter(&got, rh), c)
	r.Received = int64(got.Len())
	if e := <-werr; err == nil {
		err = e
	}
	if o.mode == "echo" {
		ok := err == nil && bytes.Equal(got.Bytes(), data)
		r.EchoOK = &ok
		if !ok && err == nil {
			err = fmt.Errorf("echo differs: %d bytes back of %d", got.Len(), len(data))
		}
	}
	finish(&r, sh, rh, t0, err)
	emit(r)
	return err == nil
}

// newStream is a deterministic byte stream, so a sender's data can be told
// apart from another's.
func newStream(seed uint64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	return rand.NewChaCha8(key)
}
