package admin_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
	"github.com/tcpinc/tcpinc/appliance/admin/admintest"
)

// serve runs srv on ln until the test ends.
func serve(t *testing.T, srv *admin.Server, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
}

// TestListenNeedsTokenOffLoopback: a bind anyone else can reach needs a
// token; the daemon refuses to start without one.
func TestListenNeedsTokenOffLoopback(t *testing.T) {
	open := admin.NewServer(admintest.New(), admin.Options{})
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:9470", "[2001:db8::1]:9470"} {
		ln, err := open.Listen(addr)
		if !errors.Is(err, admin.ErrTokenRequired) {
			t.Errorf("Listen(%q) without token: %v, want ErrTokenRequired", addr, err)
		}
		if ln != nil {
			ln.Close()
		}
	}
	for _, addr := range []string{"admin.example:9470", "127.0.0.1", "unix:"} {
		if ln, err := open.Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		ln, err := open.Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
	withToken := admin.NewServer(admintest.New(), admin.Options{Token: "t"})
	ln, err := withToken.Listen("0.0.0.0:0")
	if err != nil {
		t.Fatalf("Listen(0.0.0.0:0) with token: %v", err)
	}
	ln.Close()
}

func TestListenLoopbackServes(t *testing.T) {
	srv := admin.NewServer(admintest.New(), admin.Options{})
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, ln)
	c, err := admin.NewClient(ln.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("health: %+v %v", h, err)
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")

	// A stale socket left by a dead daemon is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	fix := admintest.New()
	srv := admin.NewServer(fix, admin.Options{})
	ln, err := srv.Listen("unix:" + path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	serve(t, srv, ln)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}

	c, err := admin.NewClient("unix:"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.FlushCache(context.Background(), "198.51.100.7")
	if err != nil || res.Flushed != 1 {
		t.Fatalf("flush over unix socket: %+v %v", res, err)
	}

	// A live socket is not taken over.
	if ln2, err := srv.Listen("unix:" + path); err == nil {
		ln2.Close()
		t.Errorf("second Listen on a served socket succeeded")
	}
	// Nor is a file that is not a socket.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if ln3, err := srv.Listen("unix:" + file); err == nil {
		ln3.Close()
		t.Errorf("Listen on a regular file succeeded")
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := admin.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	var ue *admin.UnreachableError
	if !errors.As(err, &ue) || ue.Addr != addr {
		t.Fatalf("error %v (%T), want an UnreachableError for %s", err, err, addr)
	}
}
