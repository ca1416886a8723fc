package integration

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// The chaos soak's traffic tools (chaos_test.go), run like the others
// (encrypted_tool_test.go) in the host namespaces:
//
//   - chat-server / chat-client: a long-lived interactive connection. The
//     client sends an 8-byte seed, then, until its duration is over, a few
//     bytes of the seed's stream at a time with pauses of seconds, and
//     waits for the server's echo of them; the server checks every byte
//     against the stream and echoes it. Both print one line at the end.
//   - short-client: a stream of short connections to stream servers (the
//     stream protocol of encrypted_tool_test.go: a few KB each way, then
//     closed), one line per connection.

func init() {
	edgeModes["chat-server"] = chatServerMain
	edgeModes["chat-client"] = chatClientMain
	edgeModes["short-client"] = shortClientMain
}

// chaosIdle is how long the chaos tools wait for progress before failing:
// well above what a host needs to recover from the soak's events (a 4 s
// blackout and seconds of 30 % loss back off the hosts' retransmission
// timers to tens of seconds).
const chaosIdle = 150 * time.Second

func chatServerMain(args []string) int {
	fs := flag.NewFlagSet("chat-server", flag.ContinueOnError)
	listen := fs.String("listen", "[::]:5003", "address")
	if fs.Parse(args) != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Println("tool error:", err)
		return 1
	}
	fmt.Println("chat server ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Println("tool error:", err)
			return 1
		}
		go chatServe(c.(*net.TCPConn))
	}
}

func chatServe(c *net.TCPConn) {
	defer c.Close()
	tc := idleConn{c, chaosIdle}
	var hdr [8]byte
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		fmt.Printf("chat-srv %v: header: %v\n", c.RemoteAddr(), err)
		return
	}
	seed := binary.BigEndian.Uint64(hdr[:])
	s := newStream(seed)
	buf, exp := make([]byte, 4096), make([]byte, 4096)
	var got int64
	var rerr error
	for {
		k, err := tc.Read(buf)
		if k > 0 {
			s.fill(exp[:k])
			for i := range k {
				if buf[i] != exp[i] {
					rerr = fmt.Errorf("CORRUPT byte at offset %d of the stream", got+int64(i))
					break
				}
			}
			if rerr != nil {
				break
			}
			got += int64(k)
			if _, err := tc.Write(buf[:k]); err != nil {
				rerr = fmt.Errorf("%s: echo after %d bytes: %w", stamp(), got, err)
				break
			}
		}
		if err == io.EOF {
			_ = c.CloseWrite()
			break
		}
		if err != nil {
			rerr = fmt.Errorf("%s: receive after %d bytes: %w", stamp(), got, err)
			break
		}
	}
	fmt.Printf("chat-srv seed=%d recv_bytes=%d err=%q\n", seed, got, errText(rerr))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func chatClientMain(args []string) int {
	fs := flag.NewFlagSet("chat-client", flag.ContinueOnError)
	addr := fs.String("addr", "", "server")
	seed := fs.Uint64("seed", 1, "stream seed")
	dur := fs.Duration("dur", time.Minute, "how long to chat")
	if fs.Parse(args) != nil {
		return 2
	}
	t0 := time.Now()
	local, sent, rounds, err := chat(*addr, *seed, *dur)
	fmt.Printf("chat seed=%d local=%s start=%d end=%d sent=%d rounds=%d err=%q\n", *seed, local, t0.UnixMilli(), time.Now().UnixMilli(), sent, rounds, errText(err))
	if err != nil {
		return 1
	}
	return 0
}

func chat(addr string, seed uint64, dur time.Duration) (local string, sent int64, rounds int, err error) {
	d := net.Dialer{Timeout: chaosIdle}
	c0, err := d.Dial("tcp", addr)
	if err != nil {
		return "", 0, 0, err
	}
	c := c0.(*net.TCPConn)
	defer c.Close()
	local = c.LocalAddr().String()
	tc := idleConn{c, chaosIdle}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], seed)
	if _, err := tc.Write(hdr[:]); err != nil {
		return local, 0, 0, err
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	s := newStream(seed)
	buf, back := make([]byte, 512), make([]byte, 512)
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		k := 1 + rng.IntN(len(buf))
		s.fill(buf[:k])
		if _, err := tc.Write(buf[:k]); err != nil {
			return local, sent, rounds, fmt.Errorf("%s: send at %d: %w", stamp(), sent, err)
		}
		if _, err := io.ReadFull(tc, back[:k]); err != nil {
			return local, sent, rounds, fmt.Errorf("%s: echo at %d: %w", stamp(), sent, err)
		}
		for i := range k {
			if back[i] != buf[i] {
				return local, sent, rounds, fmt.Errorf("CORRUPT echo byte at offset %d", sent+int64(i))
			}
		}
		sent += int64(k)
		rounds++
		time.Sleep(time.Duration(300+rng.IntN(3700)) * time.Millisecond)
	}
	if err := c.CloseWrite(); err != nil {
		return local, sent, rounds, err
	}
	if k, err := tc.Read(back); k != 0 || err != io.EOF {
		return local, sent, rounds, fmt.Errorf("%s: after close: %d bytes, %v", stamp(), k, err)
	}
	return local, sent, rounds, nil
}

// shortClientMain opens, for -dur, a connection every -every (on
// average) to the -addr list in turn, each sending and receiving between
// -min and -max bytes of the stream protocol, a few at once.
func shortClientMain(args []string) int {
	fs := flag.NewFlagSet("short-client", flag.ContinueOnError)
	addrs := fs.String("addr", "", "comma-separated servers (stream protocol)")
	seed := fs.Uint64("seed", 1, "first stream seed (then +10 per connection)")
	dur := fs.Duration("dur", time.Minute, "how long to open connections")
	every := fs.Duration("every", 500*time.Millisecond, "mean interval between connections")
	lo := fs.Int("min", 1000, "bytes each way, at least")
	hi := fs.Int("max", 8000, "bytes each way, at most")
	if fs.Parse(args) != nil {
		return 2
	}
	rng := rand.New(rand.NewPCG(*seed, 11))
	list := strings.Split(*addrs, ",")
	var wg sync.WaitGroup
	var mu sync.Mutex
	end := time.Now().Add(*dur)
	for i := 0; time.Now().Before(end); i++ {
		addr := list[i%len(list)]
		sd := *seed + uint64(10*i)
		n := int64(*lo + rng.IntN(*hi-*lo+1))
		m := int64(*lo + rng.IntN(*hi-*lo+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := shortConn(addr, sd, n, m)
			mu.Lock()
			fmt.Println(line)
			mu.Unlock()
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(2 * *every))))
	}
	wg.Wait()
	fmt.Println("short-client done")
	return 0
}

func shortConn(addr string, seed uint64, n, m int64) string {
	t0 := time.Now()
	local := ""
	var got int64
	var recv, sent string
	err := func() error {
		d := net.Dialer{Timeout: chaosIdle}
		c0, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c := c0.(*net.TCPConn)
		defer c.Close()
		local = c.LocalAddr().String()
		tc := idleConn{c, chaosIdle}
		hdr := streamHeader(n, m, seed, 0)
		if _, err := tc.Write(hdr[:]); err != nil {
			return err
		}
		var serr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			sent, serr = sendStream(tc, n, seed, 0, 0, nil)
			if serr == nil {
				serr = c.CloseWrite()
			}
		}()
		var rerr error
		got, recv, rerr = recvStream(tc, m, seed+1)
		if rerr != nil {
			c.Close()
		}
		<-done
		return errors.Join(rerr, serr)
	}()
	return fmt.Sprintf("short seed=%d addr=%s local=%s start=%d end=%d n=%d m=%d recv_bytes=%d recv_sha=%s sent_sha=%s err=%q",
		seed, addr, local, t0.UnixMilli(), time.Now().UnixMilli(), n, m, got, recv, sent, errText(err))
}
