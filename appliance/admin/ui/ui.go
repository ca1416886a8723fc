// Package ui is tcpincd's status page: one static HTML page with its CSS and
// JavaScript, embedded in the binary, that polls the admin API
// (/api/v1/status and /api/v1/flows) and shows the flows table (encryption
// state, role, TEP, AEAD, session ID, key generation, bytes and rate each
// way) and live plots of encrypted vs plain throughput and handshake rate,
// drawn on <canvas> by the page itself. No build step, no code from elsewhere.
//
// The admin server mounts it at Prefix:
//
//	mux.Handle(ui.Prefix, ui.Handler())
//
// The page finds the API relative to itself (../api/v1/), so it works behind
// any listener the admin server has (TCP or unix socket through a proxy). When
// the API needs a bearer token, open the page once as /ui/#token=SECRET: the
// token stays in the browser tab's sessionStorage and is sent as an
// Authorization header.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the path the admin server mounts Handler at.
const Prefix = "/ui/"

//go:embed index.html app.js style.css
var assets embed.FS

// csp allows only the page's own files and fetches to its own origin: the
// page never loads anything from elsewhere, and an injected string can never
// run as script.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page's files under Prefix (index.html at Prefix itself).
// Only GET and HEAD are allowed.
func Handler() http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		if _, err := fs.Stat(assets, name); err != nil || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The page is small and changes with the binary: always revalidate.
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		if name == "index.html" {
			// FileServer redirects /index.html to ./; serve it as the root.
			r2.URL.Path = "/"
		}
		files.ServeHTTP(w, r2)
	})
}
