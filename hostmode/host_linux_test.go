package hostmode

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/eno"
	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
	"github.com/tcpinc/tcpinc/cryptopool"
)

// The tests run in a network namespace of their own: TestMain re-executes
// the test binary inside one (loopback only) and removes it afterwards.
const nsEnv = "HOSTMODE_TEST_NETNS"

func TestMain(m *testing.M) {
	if os.Getenv(nsEnv) != "" {
		exec.Command("ip", "link", "set", "lo", "up").Run()
		code := m.Run()
		if testHost != nil {
			testHost.Close() // leave and remove its cgroup
		}
		os.Exit(code)
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		os.Exit(m.Run())
	}
	ns := fmt.Sprintf("hmt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "ip netns add: %v %s\n", err, out)
		os.Exit(1)
	}
	args := append([]string{"netns", "exec", ns, os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"="+ns)
	err := cmd.Run()
	exec.Command("ip", "netns", "del", ns).Run()
	code := 0
	if err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	os.Exit(code)
}

var (
	hostOnce sync.Once
	testHost *Host
	hostErr  error
)

func host(t *testing.T) *Host {
	t.Helper()
	if os.Getenv(nsEnv) == "" {
		t.Skip("needs root and ip(8): runs in a network namespace")
	}
	hostOnce.Do(func() {
		testHost, hostErr = New(Config{})
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return testHost
}

// echo serves one connection: reads everything, writes it back, half-closes.
func echo(c *Conn) error {
	defer c.Close()
	if _, err := io.Copy(c, c); err != nil {
		return err
	}
	return c.CloseWrite()
}

// roundTrip sends n random bytes through an echo server and checks them.
func roundTrip(t *testing.T, h *Host, dcfg, lcfg Config, n int) (client, server Info) {
	t.Helper()
	l, err := h.ListenConfig("tcp4", "127.0.0.1:0", lcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := make(chan Info, 1)
	serr := make(chan error, 1)
	go func() {
		c, err := l.AcceptConn()
		if err != nil {
			serr <- err
			return
		}
		srv <- c.Info()
		serr <- echo(c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := h.DialConfig(ctx, "tcp4", l.Addr().String(), dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %d bytes)", err, len(got))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: %d bytes, want %d", len(got), len(data))
	}
	if err := <-serr; err != nil {
		t.Fatalf("server: %v", err)
	}
	return c.Info(), <-srv
}

func TestLoopbackEcho(t *testing.T) {
	h := host(t)
	for _, tep := range tcpcrypt.AllTEPs {
		for _, s := range cryptopool.AllSuites {
			t.Run(fmt.Sprintf("%v/%v", tep, s), func(t *testing.T) {
				cfg := Config{TEPs: []tcpcrypt.TEP{tep}, AEADs: []cryptopool.Suite{s}, NoCache: true}
				ci, si := roundTrip(t, h, cfg, cfg, 200<<10)
				if !ci.Encrypted || !si.Encrypted {
					t.Fatalf("not encrypted: %v / %v", ci.Reason, si.Reason)
				}
				if !bytes.Equal(ci.SessionID, si.SessionID) || ci.SessionID[0] != byte(tep) {
					t.Fatalf("session IDs %x / %x", ci.SessionID, si.SessionID)
				}
				if ci.Suite != s || si.Suite != s || ci.Role != 0 || si.Role != 1 {
					t.Fatalf("suite %v/%v roles %v/%v", ci.Suite, si.Suite, ci.Role, si.Role)
				}
				if !bytes.Equal(ci.SelfName(), si.PeerName()) {
					t.Fatal("names do not match")
				}
			})
		}
	}
}

func TestResumption(t *testing.T) {
	h := host(t)
	for _, tep := range tcpcrypt.AllTEPs {
		t.Run(tep.String(), func(t *testing.T) {
			cfg := Config{TEPs: []tcpcrypt.TEP{tep}, AEADs: []cryptopool.Suite{cryptopool.ChaCha20Poly1305}}
			h.FlushCache()
			c1, s1 := roundTrip(t, h, cfg, cfg, 10<<10)
			if c1.Resumed || s1.Resumed {
				t.Fatal("first connection resumed")
			}
			// The same process is both ends: the client's ticket and the
			// server's are both cached under 127.0.0.1. The dial takes the
			// client's (original role A); the program answers from the
			// server's entry.
			c2, s2 := roundTrip(t, h, cfg, cfg, 10<<10)
			if !c2.Resumed || !s2.Resumed {
				t.Fatalf("second connection not resumed: %v %v", c2.Resumed, s2.Resumed)
			}
			if !bytes.Equal(c2.SessionID, s2.SessionID) || c2.SessionID[0] != byte(tep)|0x80 || c2.NegTEP != byte(tep)|0x80 {
				t.Fatalf("session IDs %x / %x", c2.SessionID, s2.SessionID)
			}
			if c2.Suite != cryptopool.ChaCha20Poly1305 {
				t.Fatal("resumed suite differs")
			}
			c3, s3 := roundTrip(t, h, cfg, cfg, 10<<10)
			if !c3.Resumed || !s3.Resumed || bytes.Equal(c3.SessionID, c2.SessionID) {
				t.Fatal("third connection did not resume with the next secret")
			}
		})
	}
}

func TestFraming(t *testing.T) {
	h := host(t)
	for _, fs := range []int{1, 100, 1400, 16384, 65000, tcpcrypt.MaxData} {
		for _, rekey := range []int{0, 1, 5} {
			t.Run(fmt.Sprintf("frame%d/rekey%d", fs, rekey), func(t *testing.T) {
				n := 2 << 20
				if fs == 1 {
					n = 20 << 10
				}
				dcfg := Config{NoCache: true, Knobs: Knobs{FrameSize: fs, RekeyFrames: rekey, SplitInit: true}}
				lcfg := Config{NoCache: true, Knobs: Knobs{FrameSize: 65000, RekeyFrames: 3, SplitInit: true}}
				ci, si := roundTrip(t, h, dcfg, lcfg, n)
				if !ci.Encrypted || !bytes.Equal(ci.SessionID, si.SessionID) {
					t.Fatal("not encrypted")
				}
			})
		}
	}
}

// TestInitTail: Init messages with bytes in their "ignored" field, both
// ways, which receivers must skip and count into the PRK (RFC 8548 §4.1,
// §3.3): the two ends agree on the session and the data.
func TestInitTail(t *testing.T) {
	h := host(t)
	dcfg := Config{NoCache: true, Knobs: Knobs{InitTail: 29, SplitInit: true}}
	lcfg := Config{NoCache: true, Knobs: Knobs{InitTail: maxInitTail}}
	ci, si := roundTrip(t, h, dcfg, lcfg, 100<<10)
	if !ci.Encrypted || !si.Encrypted || !bytes.Equal(ci.SessionID, si.SessionID) {
		t.Fatalf("encrypted %v/%v, session IDs %x / %x", ci.Encrypted, si.Encrypted, ci.SessionID, si.SessionID)
	}
}

// TestWithTail: the knob's Init messages carry the tail as their ignored
// field, counted by message_len.
func TestWithTail(t *testing.T) {
	ka, err := tcpcrypt.KeyAgreementFor(tcpcrypt.TEPX25519)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ka.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	init1, err := tcpcrypt.AppendInit1(nil, []cryptopool.Suite{cryptopool.AES128GCM}, make([]byte, tcpcrypt.NonceLen), kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	plain := len(init1)
	init1 = withTail(init1, 29)
	r, err := tcpcrypt.NewInit1Reader(tcpcrypt.TEPX25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, done, err := r.Feed(append(init1, 0xff)); n != plain+29 || !done || err != nil {
		t.Fatalf("Feed = %d %v %v, want %d", n, done, err, plain+29)
	}
	m, err := r.Init1()
	if err != nil || len(m.Ignored()) != 29 {
		t.Fatalf("ignored field %x, %v", m.Ignored(), err)
	}
	if got := withTail(make([]byte, 8), 5000); len(got) != 8+maxInitTail {
		t.Fatalf("tail of %d bytes, want the cap %d", len(got)-8, maxInitTail)
	}
}

// A FIN without a FINp frame is an error, not end of file (RFC 8548 §3.7).
func TestFINWithoutFINp(t *testing.T) {
	h := host(t)
	l, err := h.ListenConfig("tcp4", "127.0.0.1:0", Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.AcceptConn()
		if err != nil {
			return
		}
		c.Write([]byte("hello"))
		c.TCP().CloseWrite() // TCP FIN, no FINp frame
		time.Sleep(time.Second)
		c.TCP().Close()
	}()
	c, err := h.DialConfig(context.Background(), "tcp4", l.Addr().String(), Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if string(got) != "hello" || !errors.Is(err, ErrFINWithoutFINp) {
		t.Fatalf("got %q, %v; want hello, ErrFINWithoutFINp", got, err)
	}
}

// Half-close both ways: each side's FINp ends only its direction, and data
// keeps flowing the other way (the server writes after reading EOF).
func TestHalfClose(t *testing.T) {
	h := host(t)
	cfg := Config{NoCache: true, Knobs: Knobs{FrameSize: 1000, RekeyFrames: 5}}
	l, err := h.ListenConfig("tcp4", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte("0123456789"), 50000)
	srvErr := make(chan error, 1)
	go func() {
		c, err := l.AcceptConn()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, payload) {
			srvErr <- fmt.Errorf("server read %d bytes, %v", len(got), err)
			return
		}
		// After the client's FINp: rekeying continues on our side only.
		if _, err := c.Write(payload); err != nil {
			srvErr <- err
			return
		}
		srvErr <- c.CloseWrite()
	}()
	c, err := h.DialConfig(context.Background(), "tcp4", l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrClosedWrite) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("client read %d bytes, %v", len(got), err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
}

// A peer without TCP-ENO: plain TCP both ways, or a reset when encryption
// is required. Sockets the host did not open get no ENO option.
func TestFallback(t *testing.T) {
	h := host(t)
	pl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	c, err := h.DialConfig(context.Background(), "tcp4", pl.Addr().String(), Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if i := c.Info(); i.Encrypted || i.Reason != eno.NoOption || i.SessionID != nil {
		t.Fatalf("info %+v", i)
	}
	c.Write([]byte("plain"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "plain" {
		t.Fatalf("%q %v", buf, err)
	}
	c.Close()
	if _, err := h.DialConfig(context.Background(), "tcp4", pl.Addr().String(), Config{RequireEncryption: true}); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("required encryption: %v", err)
	}

	l, err := h.ListenConfig("tcp4", "127.0.0.1:0", Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			return
		}
		c.Write([]byte("x"))
		c.Close()
	}()
	sc, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	if i := sc.Info(); i.Encrypted || i.Reason != eno.NoOption {
		t.Fatalf("server info %+v", i)
	}
	sc.Close()
}

// The passive-role option on an active open meets a passive opener's b = 1:
// a role clash, so plain TCP (RFC 8547 §4.3).
func TestPassiveRoleClash(t *testing.T) {
	h := host(t)
	l, err := h.ListenConfig("tcp4", "127.0.0.1:0", Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.AcceptConn(); err == nil {
			c.Close()
		}
	}()
	c, err := h.DialConfig(context.Background(), "tcp4", l.Addr().String(), Config{NoCache: true, PassiveRole: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if i := c.Info(); i.Encrypted || i.Reason != eno.RoleClash {
		t.Fatalf("info %+v", i)
	}
}

// B answers with the one TEP it prefers most among those A offered
// (RFC 8547 §4.5, RFC 8548 §3.2), whatever A's order.
func TestSYNACKOneTEP(t *testing.T) {
	h := host(t)
	dcfg := Config{NoCache: true, TEPs: []tcpcrypt.TEP{tcpcrypt.TEPP521, tcpcrypt.TEPP256, tcpcrypt.TEPX448}}
	lcfg := Config{NoCache: true} // x25519, x448, p256, p521
	ci, si := roundTrip(t, h, dcfg, lcfg, 1000)
	if ci.NegTEP != 0x24 || si.NegTEP != 0x24 {
		t.Fatalf("negotiated %#x / %#x, want x448", ci.NegTEP, si.NegTEP)
	}
	tr := ci.Transcript
	if n := int(tr[1]); len(tr) != n+4 || !bytes.Equal(tr[n:], []byte{69, 4, 1, 0x24}) {
		t.Fatalf("transcript %x: B's option is not 45 04 01 24", tr)
	}
}
