package netnstest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// Transfer sends size pseudo-random bytes (from seed) over one TCP
// connection from namespace src to a listener on addr (an address of
// namespace dst, no port) and checks by SHA-256 that every byte arrived, in
// order. Each side gives up after timeout.
func Transfer(src, dst, addr string, size int, seed uint64, timeout time.Duration) error {
	return TransferWith(src, dst, addr, size, seed, timeout, nil)
}

// TransferWith is Transfer with the client's socket set up by control
// (as net.Dialer.Control) before it connects: socket options.
func TransferWith(src, dst, addr string, size int, seed uint64, timeout time.Duration, control func(network, address string, c syscall.RawConn) error) error {
	var ln net.Listener
	if err := netns.Do(dst, func() (err error) { ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0")); return }); err != nil {
		return err
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		done <- r
	}()
	var c net.Conn
	if err := netns.Do(src, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second, Control: control}
		c, err = d.Dial("tcp", ln.Addr().String())
		return
	}); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	buf := make([]byte, 256<<10)
	h := sha256.New()
	for left := size; left > 0; {
		b := buf[:min(len(buf), left)]
		for i := 0; i < len(b); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(b)
		if _, err := c.Write(b); err != nil {
			c.Close()
			return fmt.Errorf("send: %w", err)
		}
		left -= len(b)
	}
	c.Close()
	r := <-done
	if r.err != nil {
		return fmt.Errorf("receive: %w", r.err)
	}
	if r.n != int64(size) || r.sum != [32]byte(h.Sum(nil)) {
		return fmt.Errorf("received %d bytes, sha256 %x; sent %d, %x", r.n, r.sum, size, h.Sum(nil))
	}
	return nil
}
