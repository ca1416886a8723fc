// Package admin is tcpincd's local admin API: an HTTP server over a Source
// that the daemon implements, and a Client for it (used by tcpincctl).
//
// The server listens on loopback by default or on a unix socket. Any other
// bind needs a bearer token, or Listen refuses. Requests and responses are
// JSON with snake_case names. Request bodies are decoded strictly: an unknown
// field is a 400 that names the field. Every error body is
// {"error": "...", "field": "..."}. Routes live in one table (routes.go),
// in the style of tailscale's localapi. api/openapi.yaml documents each of
// them, and a test checks that the table and the document agree.
//
// Endpoints: /healthz, /api/v1/status, /api/v1/flows, /api/v1/flows/{id},
// /api/v1/sessions (the appliance's TCP_ENO_SESSID for hosts behind it:
// draft-ietf-tcpinc-api §2.1, ENO-73), /api/v1/config (validated, applied
// atomically through Source.ApplyConfig), /api/v1/cache/flush
// (TCP_CRYPT_CACHE_FLUSH for one far side or all of them), /metrics
// (Prometheus, read from Source.Counters at scrape time) and /debug/pprof.
//
// The daemon mounts it like this:
//
//	srv := admin.NewServer(src, admin.Options{Token: token, Logger: log})
//	ln, err := srv.Listen(cfg.Admin) // refuses a non-loopback bind without a token
//	if err != nil {
//		return err
//	}
//	go srv.Serve(ln) // returns http.ErrServerClosed after Shutdown
//	defer srv.Shutdown(ctx)
//
// The package does not import the engine. The daemon adapts engine.FlowInfo
// and its counters to FlowInfo and Counters, which keeps this package
// testable over a fixed in-memory Source (package admintest).
package admin
