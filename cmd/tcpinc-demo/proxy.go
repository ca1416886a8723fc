package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// dialIn connects to addr from inside network namespace ns. A socket belongs
// to the namespace it was created in, so once connected it works from any
// thread; only the creating thread has to switch.
func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread's namespace changes: keep it locked and let it die
		// with the goroutine instead of returning it to the scheduler if
		// switching back fails.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// statusProxy serves, on a loopback port of the demo's own namespace, the
// admin API of a gateway (which listens on its namespace's loopback), so a
// browser on this machine can open the status page. It returns the URL and
// a stop function.
func statusProxy(ns, admin string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	target := &url.URL{Scheme: "http", Host: admin}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dialIn(ctx, ns, admin) },
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/ui/", func() { _ = srv.Close() }, nil
}
