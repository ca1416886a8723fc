package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/tcpinc/tcpinc/deploy/netns"
)

// dialIn connects to addr from inside network namespace ns. A socket belongs
// to the namespace it was created in, so once connected it works from any
// thread; only the creating thread has to switch.
func dialIn(ctx context.Context, ns, addr string) (c net.Conn, err error) {
	err = netns.Do(ns, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
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
