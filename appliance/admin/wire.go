package admin

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/tcpinc/tcpinc/appliance/tcpcrypt"
)

// The JSON documents of the API (api/openapi.yaml has the same names).

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Field names the request field (JSON path or query parameter) at fault.
	Field string `json:"field,omitempty"`
	// Reason says, for a 409 from /api/v1/sessions, why the connection has
	// no session ID: "negotiating" or its fallback reason.
	Reason string `json:"reason,omitempty"`
}

// Health is the /healthz body.
type Health struct {
	Status string `json:"status"`
}

// StatusDoc is the /api/v1/status body.
type StatusDoc struct {
	Version        string    `json:"version"`
	Started        time.Time `json:"started"`
	UptimeSeconds  float64   `json:"uptime_seconds"`
	Ports          []PortDoc `json:"ports"`
	Workers        int       `json:"workers"`
	FastPath       bool      `json:"fast_path"`
	CPUFeatures    []string  `json:"cpu_features"`
	AEADPreference []string  `json:"aead_preference"`
	// AEADPreferenceFrom: "cpu", "config" or "api" (see Status).
	AEADPreferenceFrom string        `json:"aead_preference_from"`
	Counters           CountersDoc   `json:"counters"`
	Flows              FlowsSummary  `json:"flows"`
	Config             ConfigSummary `json:"config"`
	// Warnings: for example that a key log is being written.
	Warnings []string `json:"warnings"`
}

// PortDoc is one port in StatusDoc.
type PortDoc struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	XDPMode   string `json:"xdp_mode"`
	BindMode  string `json:"bind_mode"`
	// Backend is "afxdp" or "afpacket" (admin.PortStatus), BackendReason why.
	Backend       string `json:"backend"`
	BackendReason string `json:"backend_reason"`
	Queues        int    `json:"queues"`
	CPUs          []int  `json:"cpus"`
	// Path is "kernel" or "user" (admin.PortStatus), PathReason why.
	Path       string `json:"path"`
	PathReason string `json:"path_reason"`
	// MTU and SegmentMTU: admin.PortStatus.
	MTU        int `json:"mtu"`
	SegmentMTU int `json:"segment_mtu"`
	// Link: admin.PortStatus ("up", "no_carrier" or "down"; omitted when
	// not known).
	Link string `json:"link,omitempty"`
}

// FlowsSummary counts flows for StatusDoc: those the engines track, and
// those the kernel fast path forwards (Counters.FastPathFlows; absent when
// not known), which the engines forget while they last.
type FlowsSummary struct {
	Total     int     `json:"total"`
	Encrypted int     `json:"encrypted"`
	FastPath  *uint64 `json:"fast_path,omitempty"`
}

// ConfigSummary is the part of the running config StatusDoc shows.
type ConfigSummary struct {
	DefaultPolicy string   `json:"default_policy"`
	Policies      int      `json:"policies"`
	TEPs          []string `json:"teps"`
	AEADs         []string `json:"aeads"`
	Resumption    bool     `json:"resumption"`
}

// CountersDoc is Counters in JSON.
type CountersDoc struct {
	Ports          []PortCountersDoc          `json:"ports"`
	Paths          map[string]PathCountersDoc `json:"paths"`
	FlowsByState   map[string]uint64          `json:"flows_by_state"`
	Handshakes     map[string]uint64          `json:"handshakes"`
	Fallbacks      map[string]uint64          `json:"fallbacks"`
	Drops          map[string]uint64          `json:"drops"`
	Fragments      map[string]uint64          `json:"fragments"`
	Events         map[string]uint64          `json:"events"`
	AuthFailures   uint64                     `json:"auth_failures"`
	Rekeys         uint64                     `json:"rekeys"`
	Resumptions    uint64                     `json:"resumptions"`
	InitRetransmit uint64                     `json:"init_retransmissions"`
	StrayResets    uint64                     `json:"stray_resets"`
	DupACKs        uint64                     `json:"dup_acks_originated"`
	FramesSealed   uint64                     `json:"frames_sealed"`
	FramesOpened   uint64                     `json:"frames_opened"`
	CacheEntries   uint64                     `json:"cache_entries"`
	FlowMemory     uint64                     `json:"flow_memory_bytes"`
	FlowMemoryPeak uint64                     `json:"flow_memory_peak_bytes"`
	FlowMemoryMax  uint64                     `json:"flow_memory_limit_bytes"`
	FlowMemoryNo   uint64                     `json:"flow_memory_refused"`
	WorkerEvents   map[string]uint64          `json:"worker_events"`
	NegEntries     uint64                     `json:"negotiated_set_entries"`
	NegOverflows   uint64                     `json:"negotiated_set_overflows"`
	NegStoreErrors uint64                     `json:"negotiated_set_store_errors"`
	Workers        []WorkerDoc                `json:"workers"`
}

// PortCountersDoc is PortCounters in JSON.
type PortCountersDoc struct {
	Port      string `json:"port"`
	Direction string `json:"direction"`
	Frames    uint64 `json:"frames"`
	Bytes     uint64 `json:"bytes"`
}

// PathCountersDoc is PathCounters in JSON: Bytes is absent for a path that
// counts frames only (PathCounters.NoBytes), never a 0 that is no count.
type PathCountersDoc struct {
	Frames uint64  `json:"frames"`
	Bytes  *uint64 `json:"bytes,omitempty"`
}

func pathCountersDoc(p PathCounters) PathCountersDoc {
	d := PathCountersDoc{Frames: p.Frames}
	if !p.NoBytes {
		d.Bytes = &p.Bytes
	}
	return d
}

// WorkerDoc is WorkerLoad in JSON.
type WorkerDoc struct {
	Worker    int     `json:"worker"`
	BusyRatio float64 `json:"busy_ratio"`
}

// FlowDoc is one flow.
type FlowDoc struct {
	// ID is a decimal string: flow IDs may exceed what a JSON number keeps
	// exactly in JavaScript (2^53).
	ID             string    `json:"id"`
	Inside         string    `json:"inside"`
	Outside        string    `json:"outside"`
	State          string    `json:"state"`
	Encrypted      bool      `json:"encrypted"`
	FallbackReason string    `json:"fallback_reason,omitempty"`
	Role           string    `json:"role,omitempty"`
	TEP            string    `json:"tep,omitempty"`
	AEAD           string    `json:"aead,omitempty"`
	SessionID      string    `json:"session_id,omitempty"`
	KeyGeneration  uint32    `json:"key_generation"`
	Resumed        bool      `json:"resumed"`
	BytesIn        uint64    `json:"bytes_in"`
	BytesOut       uint64    `json:"bytes_out"`
	PacketsIn      uint64    `json:"packets_in"`
	PacketsOut     uint64    `json:"packets_out"`
	Started        time.Time `json:"started"`
	AgeSeconds     float64   `json:"age_seconds"`
	// Stream is only in a single flow's detail (/api/v1/flows/{id}).
	Stream *Stream `json:"stream,omitempty"`
}

// FlowsPage is the /api/v1/flows body.
type FlowsPage struct {
	Flows []FlowDoc `json:"flows"`
	// Total is how many flows match the filters (on every page): exact
	// with no filter or only State and Encrypted (the workers' counts at
	// the end of the listing), else those the listing read matching
	// (engine.FlowScan: each worker reads its table in slices).
	Total int `json:"total"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// SessionDoc is the /api/v1/sessions body: what TCP_ENO_SESSID and its
// companion options (draft-ietf-tcpinc-api §2.1) return for the connection,
// seen from its src endpoint.
type SessionDoc struct {
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	FlowID    string `json:"flow_id"`
	SessionID string `json:"session_id"`
	// Role is src's TCP-ENO role, "A" or "B" (TCP_ENO_ROLE).
	Role string `json:"role"`
	// NegTEP is TCP_ENO_NEGTEP: the TEP id with B's v bit, as hex ("0x23").
	NegTEP string `json:"negtep"`
	TEP    string `json:"tep"`
	AEAD   string `json:"aead"`
	// SelfName and PeerName are TCP_ENO_SELF_NAME and TCP_ENO_PEER_NAME for
	// src: role byte | session ID, and the same with the role byte negated.
	// Authenticate these, not the bare session ID (docs/protocol.md §17).
	SelfName      string `json:"self_name"`
	PeerName      string `json:"peer_name"`
	Resumed       bool   `json:"resumed"`
	KeyGeneration uint32 `json:"key_generation"`
	// SelfGOpt and PeerGOpt are TCP_ENO_SELF_GOPT and TCP_ENO_PEER_GOPT for
	// src: the global suboptions of src's and dst's SYN-form options as
	// sent (0 when a SYN had none; RFC 8547 §4.2): bit 0 is the passive
	// role bit b, bit 1 the application-aware bit a.
	SelfGOpt int `json:"self_gopt"`
	PeerGOpt int `json:"peer_gopt"`
	// Transcript is TCP_ENO_TRANSCRIPT in hex (RFC 8547 §4.8).
	Transcript string `json:"transcript"`
}

// FlushRequest is the /api/v1/cache/flush body. An empty Address flushes
// every far side.
type FlushRequest struct {
	Address string `json:"address"`
}

// FlushResult is the /api/v1/cache/flush response.
type FlushResult struct {
	Address string `json:"address,omitempty"`
	Flushed int    `json:"flushed"`
}

// ApplyResult is the PUT /api/v1/config response.
type ApplyResult struct {
	Applied bool   `json:"applied"`
	Config  Config `json:"config"`
}

func tepName(b byte) string { return tcpcrypt.TEP(b &^ tcpcrypt.ResumeBit).String() }

func flowDoc(f *FlowInfo, now time.Time) FlowDoc {
	d := FlowDoc{
		ID:             strconv.FormatUint(f.ID, 10),
		Inside:         f.Inside.String(),
		Outside:        f.Outside.String(),
		State:          f.State,
		Encrypted:      f.Encrypted,
		FallbackReason: f.FallbackReason,
		Role:           f.Role,
		KeyGeneration:  f.KeyGeneration,
		Resumed:        f.Resumed,
		BytesIn:        f.BytesIn,
		BytesOut:       f.BytesOut,
		PacketsIn:      f.PacketsIn,
		PacketsOut:     f.PacketsOut,
		Started:        f.Started.UTC(),
		AgeSeconds:     seconds(now.Sub(f.Started)),
	}
	if f.Encrypted {
		d.TEP = tepName(f.TEP)
		d.AEAD = f.AEAD
		d.SessionID = hex.EncodeToString(f.SessionID[:])
	}
	return d
}

func countersDoc(c *Counters) CountersDoc {
	d := CountersDoc{
		Ports:          make([]PortCountersDoc, 0, len(c.Ports)),
		Paths:          make(map[string]PathCountersDoc, len(c.Paths)),
		FlowsByState:   nonNil(c.FlowsByState),
		Handshakes:     nonNil(c.Handshakes),
		Fallbacks:      nonNil(c.Fallbacks),
		Drops:          nonNil(c.Drops),
		Fragments:      nonNil(c.Fragments),
		Events:         nonNil(c.Events),
		AuthFailures:   c.AuthFailures,
		Rekeys:         c.Rekeys,
		Resumptions:    c.Resumptions,
		StrayResets:    c.StrayResets,
		InitRetransmit: c.InitRetransmit,
		DupACKs:        c.DupACKs,
		FramesSealed:   c.FramesSealed,
		FramesOpened:   c.FramesOpened,
		CacheEntries:   c.CacheEntries,
		FlowMemory:     c.FlowMemoryBytes,
		FlowMemoryPeak: c.FlowMemoryPeak,
		FlowMemoryMax:  c.FlowMemoryLimit,
		FlowMemoryNo:   c.FlowMemoryRefused,
		WorkerEvents:   nonNil(c.WorkerEvents),
		NegEntries:     c.NegotiatedEntries,
		NegOverflows:   c.NegotiatedOverflows,
		NegStoreErrors: c.NegotiatedStoreErrors,
		Workers:        make([]WorkerDoc, 0, len(c.Workers)),
	}
	for _, p := range c.Ports {
		d.Ports = append(d.Ports, PortCountersDoc(p))
	}
	for k, p := range c.Paths {
		d.Paths[k] = pathCountersDoc(p)
	}
	for _, w := range c.Workers {
		d.Workers = append(d.Workers, WorkerDoc{Worker: w.Worker, BusyRatio: w.BusyRatio})
	}
	return d
}

func nonNil(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

// seconds rounds d to milliseconds, in seconds.
func seconds(d time.Duration) float64 {
	if d < 0 {
		d = 0
	}
	return float64(d.Milliseconds()) / 1000
}
