package admin

import "github.com/prometheus/client_golang/prometheus"

// Route is a (method, path) pair of the handler table, for the tests.
type Route struct {
	Method, Path string
	Public       bool
	Query        []string
	Free         bool // query parameters not checked (pprof, metrics)
}

// Routes lists the handler table.
func Routes() []Route {
	var rs []Route
	for _, r := range routes {
		rs = append(rs, Route{r.method, r.path, r.public, r.query, r.free})
	}
	return rs
}

// Registry is the server's metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// DecodeStrict exposes decodeStrict to the fuzz target.
var DecodeStrict = decodeStrict
