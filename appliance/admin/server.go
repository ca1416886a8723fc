package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server.
type Options struct {
	// Token, when set, is the bearer token every request but /healthz must
	// carry ("Authorization: Bearer <token>"). Listen refuses a bind that
	// is neither loopback nor a unix socket without one.
	Token string
	// Now is the clock for ages and uptime; nil means time.Now.
	Now func() time.Time
	// Logger receives an audit line for each change (config applied, cache
	// flushed) and each internal error; nil discards them.
	Logger *slog.Logger
}

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// ErrTokenRequired is returned by Listen for a bind that is neither
// loopback nor a unix socket when the server has no token.
var ErrTokenRequired = errors.New("admin: a bearer token is required to listen on a non-loopback address")

// Server serves the admin API over a Source.
type Server struct {
	src         Source
	token       [sha256.Size]byte // hash of the token, compared in constant time
	hasToken    bool
	now         func() time.Time
	log         *slog.Logger
	handler     http.Handler
	registry    *prometheus.Registry
	promHandler http.Handler

	applyMu sync.Mutex // serialises PUT /api/v1/config (read, merge, apply)

	httpMu sync.Mutex
	https  []*http.Server
}

// NewServer returns a server over src.
func NewServer(src Source, opt Options) *Server {
	s := &Server{src: src, now: opt.Now, log: opt.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opt.Token != "" {
		s.token = sha256.Sum256([]byte(opt.Token))
		s.hasToken = true
	}
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(
		newCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.promHandler = promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	s.handler = s.buildMux()
	return s
}

// Handler returns the API's HTTP handler, for a daemon that serves it on a
// listener of its own (Listen's checks then are the daemon's to make).
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the admin listener. addr is "host:port" with an IP literal
// or "localhost", or "unix:/path/to/socket" (created mode 0600; a stale
// socket left by a dead daemon is replaced). A non-loopback host needs a
// token (ErrTokenRequired).
func (s *Server) Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %q: want host:port or unix:/path", addr)
	}
	switch host {
	case "localhost":
	case "": // every interface
		if !s.hasToken {
			return nil, fmt.Errorf("%w (listen %q: all interfaces)", ErrTokenRequired, addr)
		}
	default:
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return nil, fmt.Errorf("admin: listen %q: host must be an IP address, localhost or unix:/path", addr)
		}
		if !ip.IsLoopback() && !s.hasToken {
			return nil, fmt.Errorf("%w (listen %q)", ErrTokenRequired, addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	// "localhost" must have resolved to loopback.
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() && !s.hasToken {
		ln.Close()
		return nil, fmt.Errorf("%w (listen %q bound %v)", ErrTokenRequired, addr, ta)
	}
	return ln, nil
}

func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("admin: listen unix: empty path")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin: listen unix %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: listen unix %s: another process is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Serve serves the API on ln until Shutdown; it returns http.ErrServerClosed
// after a Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: /debug/pprof/profile streams for ?seconds=.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	s.httpMu.Lock()
	s.https = append(s.https, hs)
	s.httpMu.Unlock()
	return hs.Serve(ln)
}

// Shutdown stops every Serve, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.httpMu.Lock()
	hs := s.https
	s.https = nil
	s.httpMu.Unlock()
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// buildMux registers the route table: one handler per path, which checks
// the method itself so that a wrong method gets a JSON 405 too.
func (s *Server) buildMux() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string]map[string]route{}
	var paths []string
	for _, rt := range routes {
		if byPath[rt.path] == nil {
			byPath[rt.path] = map[string]route{}
			paths = append(paths, rt.path)
		}
		byPath[rt.path][rt.method] = rt
	}
	for _, p := range paths {
		methods := byPath[p]
		var allow []string
		for _, rt := range routes {
			if rt.path == p {
				allow = append(allow, rt.method)
			}
		}
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			rt, ok := methods[r.Method]
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s not allowed on %s (allowed: %s)", r.Method, p, strings.Join(allow, ", ")), "")
				return
			}
			if !rt.public && !s.authorized(w, r) {
				return
			}
			var q url.Values
			if !rt.free {
				if q, ok = query(w, r, rt.query); !ok {
					return
				}
			}
			rt.handle(s, w, r, q)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path, "")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r) {
			writeError(w, http.StatusForbidden, "Host header "+r.Host+" is not a loopback name; use an IP address or localhost", "")
			return
		}
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			// A JSON content type cannot be sent cross-origin without a CORS
			// preflight, which this server never grants: no web page can
			// change the config or flush the cache.
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", "")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		mux.ServeHTTP(w, r)
	})
}

// hostAllowed guards a token-less (loopback) server against DNS rebinding:
// a browser sends the attacker's host name, never an IP literal or
// localhost. Unix-socket requests (no remote address) are exempt.
func (s *Server) hostAllowed(r *http.Request) bool {
	if s.hasToken || r.RemoteAddr == "" || r.RemoteAddr == "@" {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// authorized checks the bearer token; on failure it writes the 401.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if !s.hasToken {
		return true
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tcpincd"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)", "")
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tcpincd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "wrong bearer token", "")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client went away if this fails; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, ErrorBody{Error: msg, Field: field})
}

// readBody reads a request body bounded by MaxBodyBytes; on failure it
// writes the error response and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes), "")
		} else {
			writeError(w, http.StatusBadRequest, "reading request body: "+err.Error(), "")
		}
		return nil, false
	}
	return body, true
}

// writeDecodeError answers a body decodeStrict refused.
func writeDecodeError(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, err.Error(), fieldOf(err))
}
