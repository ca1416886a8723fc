package admin

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tcpinc/tcpinc/appliance/admin/ui"
	"github.com/tcpinc/tcpinc/appliance/eno"
)

// route is one entry of the handler table. Paths use net/http's pattern
// syntax, which is also OpenAPI's ({id}); api/openapi.yaml lists the same
// (path, method) pairs, checked by TestOpenAPIMatchesRoutes.
type route struct {
	method string
	path   string
	public bool // served without the bearer token
	// query lists the query parameters the route takes; any other is a
	// 400 naming it. nil with free: the handler reads what it wants (pprof).
	query  []string
	free   bool
	handle func(*Server, http.ResponseWriter, *http.Request, url.Values)
}

var routes = []route{
	{method: "GET", path: "/healthz", public: true, handle: (*Server).healthz},
	{method: "GET", path: "/api/v1/status", handle: (*Server).status},
	{method: "GET", path: "/api/v1/flows", query: []string{"encrypted", "state", "address", "port", "limit", "cursor"}, handle: (*Server).flows},
	{method: "GET", path: "/api/v1/flows/{id}", handle: (*Server).flow},
	{method: "GET", path: "/api/v1/sessions", query: []string{"src", "sport", "dst", "dport"}, handle: (*Server).session},
	{method: "GET", path: "/api/v1/config", handle: (*Server).getConfig},
	{method: "PUT", path: "/api/v1/config", handle: (*Server).putConfig},
	{method: "POST", path: "/api/v1/cache/flush", handle: (*Server).flushCache},
	{method: "GET", path: "/metrics", free: true, handle: (*Server).metrics},
	{method: "GET", path: "/debug/pprof/", free: true, handle: (*Server).pprofIndex},
	{method: "GET", path: "/debug/pprof/{profile}", free: true, handle: (*Server).pprofProfile},
	// The status page: static assets only (the data comes from the API with
	// the token), so a browser can load it without an Authorization header.
	{method: "GET", path: ui.Prefix, public: true, free: true, handle: (*Server).statusPage},
}

// query returns r's query parameters after checking that each is one of
// allowed and appears at most once; otherwise it writes a 400 naming it.
func query(w http.ResponseWriter, r *http.Request, allowed []string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed query string: "+err.Error(), "")
		return nil, false
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			msg := fmt.Sprintf("unknown query parameter %q", k)
			if len(allowed) > 0 {
				msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
			}
			writeError(w, http.StatusBadRequest, msg, k)
			return nil, false
		}
		if len(q[k]) > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q given %d times", k, len(q[k])), k)
			return nil, false
		}
	}
	return q, true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, q url.Values) {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, q url.Values) {
	st := s.src.Status()
	c := s.src.Counters()
	cfg := s.src.Config()
	doc := StatusDoc{
		Version:            st.Version,
		Started:            st.Started.UTC(),
		UptimeSeconds:      seconds(s.now().Sub(st.Started)),
		Ports:              make([]PortDoc, 0, len(st.Ports)),
		Workers:            st.Workers,
		FastPath:           st.FastPath,
		CPUFeatures:        orEmpty(st.CPUFeatures),
		AEADPreference:     orEmpty(st.AEADPreference),
		AEADPreferenceFrom: st.AEADPreferenceFrom,
		Warnings:           orEmpty(st.Warnings),
		Counters:           countersDoc(&c),
		Config: ConfigSummary{
			DefaultPolicy: cfg.DefaultPolicy,
			Policies:      len(cfg.Policies),
			TEPs:          orEmpty(cfg.TEPs),
			AEADs:         orEmpty(cfg.AEADs),
			Resumption:    cfg.Resumption,
		},
	}
	for _, p := range st.Ports {
		cpus := p.CPUs
		if cpus == nil {
			cpus = []int{}
		}
		doc.Ports = append(doc.Ports, PortDoc{Name: p.Name, Interface: p.Interface, XDPMode: p.XDPMode,
			BindMode: p.BindMode, Backend: p.Backend, BackendReason: p.BackendReason, Queues: p.Queues, CPUs: cpus,
			Path: p.Path, PathReason: p.PathReason, MTU: p.MTU, SegmentMTU: p.SegmentMTU, Link: p.Link})
	}
	doc.Flows.Total, doc.Flows.Encrypted = s.src.FlowCounts()
	if c.FastPathKnown {
		doc.Flows.FastPath = &c.FastPathFlows
	}
	writeJSON(w, http.StatusOK, doc)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Paging limits of /api/v1/flows.
const (
	DefaultFlowLimit = 100
	MaxFlowLimit     = 1000
)

func (s *Server) flows(w http.ResponseWriter, r *http.Request, q url.Values) {
	var f FlowFilter
	if v := q.Get("encrypted"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("encrypted must be true or false (got %q)", v), "encrypted")
			return
		}
		f.Encrypted = &b
	}
	f.State = q.Get("state")
	if f.State != "" && !slices.Contains(FlowStates, f.State) {
		// A state no flow is ever in would list nothing, as if none were.
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state must be one of %s (got %q)", strings.Join(FlowStates, ", "), f.State), "state")
		return
	}
	if v := q.Get("address"); v != "" {
		p, err := parseAddressFilter(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "address")
			return
		}
		f.Address = p
	}
	if v := q.Get("port"); v != "" {
		p, err := parsePort(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "port "+err.Error(), "port")
			return
		}
		f.Port = p
	}
	limit := DefaultFlowLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxFlowLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be between 1 and %d (got %q)", MaxFlowLimit, v), "limit")
			return
		}
		limit = n
	}
	var after uint64 // flow IDs start at 1
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor must be a next_cursor value from a previous page (got %q)", v), "cursor")
			return
		}
		after = n
	}

	// Stable order: ascending flow ID. A page holds the matching flows with
	// the lowest IDs above the cursor, so flows that come or go between
	// pages never shift the others; one more than the limit tells whether
	// a next page exists. The workers select them (Source.FlowPage):
	// memory and copying stay O(limit) however many flows they track.
	page := FlowsPage{Flows: []FlowDoc{}}
	flows, matched := s.src.FlowPage(f, after, limit+1)
	page.Total = matched
	if len(flows) > limit {
		flows = flows[:limit]
		page.NextCursor = strconv.FormatUint(flows[limit-1].ID, 10)
	}
	now := s.now()
	for i := range flows {
		page.Flows = append(page.Flows, flowDoc(&flows[i], now))
	}
	writeJSON(w, http.StatusOK, page)
}

// parseAddressFilter accepts an address ("192.0.2.7") or a prefix
// ("192.0.2.0/24").
func parseAddressFilter(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address must be an IP address or prefix (got %q)", v)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// Flows carry IPv4 addresses unmapped; so must the filter.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address must be an IP address or prefix (got %q)", v)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parsePort(v string) (uint16, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("must be between 1 and 65535 (got %q)", v)
	}
	return uint16(n), nil
}

func (s *Server) flow(w http.ResponseWriter, r *http.Request, q url.Values) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("flow id must be a decimal number (got %q)", v), "id")
		return
	}
	found, ok := s.src.Flow(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no flow %d (it may have closed)", id), "id")
		return
	}
	d := flowDoc(&found, s.now())
	d.Stream = found.Stream
	writeJSON(w, http.StatusOK, d)
}

// session answers what getsockopt(TCP_ENO_SESSID) would answer on the
// connection's src socket. There is no empty success: a connection the
// appliance does not track is a 404, and one without a session ID (not
// encrypted, or still negotiating) is a 409 (ENO-73; docs/protocol.md §17).
func (s *Server) session(w http.ResponseWriter, r *http.Request, q url.Values) {
	var ends [2]netip.AddrPort
	for i, names := range [2][2]string{{"src", "sport"}, {"dst", "dport"}} {
		a, p := q.Get(names[0]), q.Get(names[1])
		if a == "" {
			writeError(w, http.StatusBadRequest, "missing query parameter "+names[0], names[0])
			return
		}
		if p == "" {
			writeError(w, http.StatusBadRequest, "missing query parameter "+names[1], names[1])
			return
		}
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be an IP address (got %q)", names[0], a), names[0])
			return
		}
		port, err := parsePort(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, names[1]+" "+err.Error(), names[1])
			return
		}
		ends[i] = netip.AddrPortFrom(addr.Unmap(), port)
	}
	src, dst := ends[0], ends[1]
	f, found := s.src.Lookup(src, dst)
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no connection between %v and %v passes through this appliance", src, dst), "")
		return
	}
	if !f.Encrypted {
		reason, msg := f.FallbackReason, ""
		if reason == "" {
			reason = "negotiating"
			msg = fmt.Sprintf("connection %v -> %v has no session ID yet: TCP-ENO negotiation is not complete (state %s); TCP_ENO_SESSID would fail with ENOTCONN", src, dst, f.State)
		} else {
			msg = fmt.Sprintf("connection %v -> %v is not encrypted (%s); TCP_ENO_SESSID would fail with EINVAL", src, dst, reason)
		}
		writeJSON(w, http.StatusConflict, ErrorBody{Error: msg, Reason: reason})
		return
	}
	srcRole, ok := roleOf(&f, src)
	if !ok || f.SessionID == ([33]byte{}) {
		// Failure must never look like success (docs/protocol.md §17).
		s.log.Error("engine reported an encrypted flow without a valid role or session ID", "flow", f.ID, "role", f.Role)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("flow %d is marked encrypted but has no valid session ID or role", f.ID), "")
		return
	}
	globals, ok := transcriptGlobals(f.Transcript)
	if !ok {
		s.log.Error("engine reported an encrypted flow whose transcript does not parse", "flow", f.ID)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("flow %d is marked encrypted but its negotiation transcript does not parse", f.ID), "")
		return
	}
	sid := f.SessionID[:]
	self := append([]byte{srcRole}, sid...)
	peer := append([]byte{srcRole ^ 1}, sid...)
	writeJSON(w, http.StatusOK, SessionDoc{
		Src:           src.String(),
		Dst:           dst.String(),
		FlowID:        strconv.FormatUint(f.ID, 10),
		SessionID:     hex.EncodeToString(sid),
		Role:          string("AB"[srcRole]),
		NegTEP:        fmt.Sprintf("0x%02x", sid[0]),
		TEP:           tepName(sid[0]),
		AEAD:          f.AEAD,
		SelfName:      hex.EncodeToString(self),
		PeerName:      hex.EncodeToString(peer),
		Resumed:       f.Resumed,
		KeyGeneration: f.KeyGeneration,
		SelfGOpt:      int(globals[srcRole]),
		PeerGOpt:      int(globals[srcRole^1]),
		Transcript:    hex.EncodeToString(f.Transcript),
	})
}

// transcriptGlobals returns the global suboptions of host A's and host B's
// options in a negotiation transcript (A's option then B's, each with kind
// and length: RFC 8547 §4.8), implicit 0 where an option has none (§4.2).
func transcriptGlobals(tr []byte) (g [2]eno.Global, ok bool) {
	for i := range g {
		if len(tr) < 2 || int(tr[1]) < 2 || int(tr[1]) > len(tr) {
			return g, false
		}
		o, err := eno.ParseSYN(tr[:tr[1]])
		if err != nil {
			return g, false
		}
		g[i], tr = o.Global(), tr[tr[1]:]
	}
	return g, len(tr) == 0
}

// roleOf returns the TCP-ENO role byte (0 for A, 1 for B; TCP_ENO_ROLE) of
// the end point ep of f. The appliance speaks for the inside host, so that
// host has the appliance's role and the far side the other one.
func roleOf(f *FlowInfo, ep netip.AddrPort) (byte, bool) {
	var r byte
	switch f.Role {
	case "A":
		r = 0
	case "B":
		r = 1
	default:
		return 0, false
	}
	if ep == f.Outside && ep != f.Inside {
		r ^= 1
	}
	return r, true
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request, q url.Values) {
	writeJSON(w, http.StatusOK, s.src.Config())
}

// putConfig decodes the body over the running config (fields left out keep
// their values; lists are replaced whole), validates the result and hands
// it to the Source, which applies all of it or nothing.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, q url.Values) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	cfg := s.src.Config()
	cfg.Policies = slices.Clone(cfg.Policies) // never write into the Source's slices
	cfg.TEPs = slices.Clone(cfg.TEPs)
	cfg.AEADs = slices.Clone(cfg.AEADs)
	if err := decodeStrict(body, &cfg); err != nil {
		writeDecodeError(w, err)
		return
	}
	if err := cfg.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "), fieldOf(err))
		return
	}
	if err := s.src.ApplyConfig(cfg); err != nil {
		if f := fieldOf(err); f != "" {
			writeError(w, http.StatusBadRequest, err.Error(), f)
			return
		}
		s.log.Error("config apply failed", "err", err)
		writeError(w, http.StatusInternalServerError, "applying config: "+err.Error(), "")
		return
	}
	s.log.Info("config applied", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ApplyResult{Applied: true, Config: s.src.Config()})
}

// flushCache is TCP_CRYPT_CACHE_FLUSH for the appliance: drop the cached
// resumption state of one far side or of all (RFC 8548 §3.5, TC-41).
func (s *Server) flushCache(w http.ResponseWriter, r *http.Request, q url.Values) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req FlushRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			writeDecodeError(w, err)
			return
		}
	}
	var far netip.Addr
	if req.Address != "" {
		a, err := netip.ParseAddr(req.Address)
		if err != nil || a.Zone() != "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("address must be an IP address (got %q)", req.Address), "address")
			return
		}
		far = a.Unmap()
	}
	n, err := s.src.FlushCache(far)
	if err != nil {
		s.log.Error("cache flush failed", "err", err)
		writeError(w, http.StatusInternalServerError, "flushing cache: "+err.Error(), "")
		return
	}
	res := FlushResult{Flushed: n}
	if far.IsValid() {
		res.Address = far.String()
	}
	s.log.Info("resumption cache flushed", "address", res.Address, "entries", n, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, q url.Values) {
	s.promHandler.ServeHTTP(w, r)
}

var uiHandler = ui.Handler()

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request, _ url.Values) {
	uiHandler.ServeHTTP(w, r)
}

func (s *Server) pprofIndex(w http.ResponseWriter, r *http.Request, q url.Values) { pprof.Index(w, r) }

func (s *Server) pprofProfile(w http.ResponseWriter, r *http.Request, q url.Values) {
	switch r.PathValue("profile") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // named profiles: heap, goroutine, allocs, ...
	}
}
