package admin

import (
	"errors"
	"net/netip"
	"time"
)

// Source is what the daemon gives the admin server. Every method may be
// called from many goroutines at once, while the workers run. The server
// never holds on to what a call returns past the request that made it.
type Source interface {
	// Status returns the daemon's static facts (version, ports, modes,
	// CPUs). Counters are read separately, with Counters.
	Status() Status

	// FlowPage returns the flows filter matches with the lowest IDs above
	// after, at most limit of them, in ascending ID order, and how many
	// match in all. The workers test the filter on their records between
	// batches and copy whole only the flows returned: a listing must not
	// stall the packet path for a copy of every flow, nor for a visit of
	// every flow in one go (engine.FlowPageStep: a slice of the table per
	// call). The count is exact with no filter or only State and
	// Encrypted; with an address or port it is of the flows the listing
	// read matching.
	FlowPage(filter FlowFilter, after uint64, limit int) (page []FlowInfo, matched int)

	// FlowCounts returns how many flows the workers track, and how many
	// of them are encrypted, without a snapshot of each.
	FlowCounts() (total, encrypted int)

	// Flow returns the flow with the given ID (IDs are unique across the
	// workers) without a snapshot of every flow. The bool is false when
	// there is no such flow.
	Flow(id uint64) (FlowInfo, bool)

	// Lookup finds the flow between a and b, with either of the two
	// endpoints inside. The bool is false when there is no such flow.
	Lookup(a, b netip.AddrPort) (FlowInfo, bool)

	// Config returns the running configuration.
	Config() Config

	// ApplyConfig replaces the running configuration with c, which has
	// already passed Config.Validate. It applies all of c or none of it.
	// When c is invalid for a reason only the daemon knows, it returns a
	// *FieldError (the server answers 400) and changes nothing.
	ApplyConfig(c Config) error

	// FlushCache drops cached resumption state (TCP_CRYPT_CACHE_FLUSH,
	// RFC 8548 §3.5, TC-41): for the far side far, or for every far side
	// when far is the zero Addr. It returns how many cache entries it
	// dropped.
	FlushCache(far netip.Addr) (int, error)

	// Counters returns a snapshot of the counters. It is called for each
	// scrape of /metrics and each status request, never per packet.
	Counters() Counters
}

// FlowFilter is the query of a flow listing (GET /api/v1/flows). Its
// fields are engine.FlowFilter's (appliance/engine/snapshot.go), so the
// daemon converts one to the other and the engine tests it on each record
// without a copy. A zero field matches every flow.
type FlowFilter struct {
	Encrypted *bool        // set: flows whose Encrypted is *Encrypted
	State     string       // flows in this state
	Address   netip.Prefix // valid: flows whose inside or outside address it contains (IPv4 unmapped)
	Port      uint16       // flows whose inside or outside port it is
}

// Match reports whether f passes the filter, as engine.FlowFilter does for
// a record: for Sources that hold FlowInfos (admintest.Fixture).
func (ff *FlowFilter) Match(f *FlowInfo) bool {
	if ff.State != "" && f.State != ff.State {
		return false
	}
	if ff.Port != 0 && f.Inside.Port() != ff.Port && f.Outside.Port() != ff.Port {
		return false
	}
	if ff.Address.IsValid() && !ff.Address.Contains(f.Inside.Addr().Unmap()) && !ff.Address.Contains(f.Outside.Addr().Unmap()) {
		return false
	}
	return ff.Encrypted == nil || f.Encrypted == *ff.Encrypted
}

// FlowStates are the values of FlowInfo.State, engine.StateNames: the
// engine's flow states, in the order a connection goes through them.
var FlowStates = []string{"syn-sent", "syn-received", "syn-ack-sent", "key-exchange", "encrypted", "closed", "plain"}

// FlowInfo is one flow as the engine reports it. Its fields are those of
// engine.FlowInfo (appliance/engine/engine.go), so the daemon can convert
// one to the other field by field.
type FlowInfo struct {
	ID uint64
	// Inside is the endpoint of the host behind this appliance, Outside the
	// far side's.
	Inside, Outside netip.AddrPort
	State           string // one of FlowStates
	Encrypted       bool
	// FallbackReason says why a flow is not encrypted, in the engine's
	// words ("policy bypass", "no ENO option"; empty while it is still
	// negotiating or when it is encrypted). Counters.Fallbacks counts the
	// same events under short labels (engine.FallbackNames).
	FallbackReason string
	Role           string // "A" or "B": this appliance's TCP-ENO role
	TEP            byte   // the negotiated TEP byte (B's, with its v bit)
	AEAD           string // cryptopool suite name
	// SessionID is valid when Encrypted: TEP byte | CPRF(...) (RFC 8548 §3.4).
	SessionID     [33]byte
	KeyGeneration uint32
	Resumed       bool
	// BytesIn is the far side's plaintext delivered to the inside host,
	// BytesOut the inside host's plaintext sealed toward the far side.
	// PacketsIn counts the segments that came from the far side,
	// PacketsOut those sent to it (frames, Init messages and ACKs the
	// appliance sent; a plain flow's segments), both from the third
	// segment of the handshake on and as far as the engine saw them (not
	// what the kernel fast path carried): engine.FlowInfo.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
	Started                                  time.Time
	// Transcript is the negotiation transcript of RFC 8547 §4.8: A's ENO
	// option then B's, each with kind and length.
	Transcript []byte
	// Stream is an encrypted flow's progress in each direction (nil
	// before keys): engine.StreamInfo, field for field.
	Stream *Stream
}

// Stream is where each direction of an encrypted flow stands, in stream
// offsets from ISN+1; host (plaintext) and wire (framed) offsets differ by
// the frames' overhead. The flow detail shows it: a stuck transfer is
// waiting for whichever side is behind.
type Stream struct {
	Out StreamOut `json:"out"`
	In  StreamIn  `json:"in"`
}

// StreamOut is the inside host's bytes, sealed toward the far side.
type StreamOut struct {
	HostNext  int64 `json:"host_next"`  // taken in from the inside host
	HostAcked int64 `json:"host_acked"` // the far side's ACK, translated
	WireNext  int64 `json:"wire_next"`  // framed
	WireSent  int64 `json:"wire_sent"`
	WireAcked int64 `json:"wire_acked"`
	Frames    int   `json:"frames"`     // kept for retransmission
	PreKey    int64 `json:"pre_key"`    // queued before the keys
	WindowR   int64 `json:"window_far"` // the far side's window, scaled
	DupAcks   int   `json:"dup_acks"`   // the far side's duplicate ACKs
	FIN       bool  `json:"fin"`        // the FIN went out
}

// StreamIn is the far side's frames, opened for the inside host.
type StreamIn struct {
	WireNext      int64 `json:"wire_next"` // next in-order wire byte
	WireHeldSpans int   `json:"wire_held_spans"`
	WireHeldEnd   int64 `json:"wire_held_end"`
	WireAcked     int64 `json:"wire_acked"`    // frames the inside host acknowledged
	WireAckSent   int64 `json:"wire_ack_sent"` // the ACK the far side last got
	Custody       int64 `json:"custody"`
	HostOpened    int64 `json:"host_opened"`
	HostSent      int64 `json:"host_sent"`
	HostAcked     int64 `json:"host_acked"`
	PlainFrom     int64 `json:"plain_from"`
	Frames        int   `json:"frames"`      // opened, not acknowledged by the inside host
	WindowL       int64 `json:"window_host"` // the inside host's window, scaled
	FIN           bool  `json:"fin"`         // the FIN went to the inside host
}

// Status holds the daemon's facts for /api/v1/status.
type Status struct {
	Version string
	Started time.Time
	// Ports: the inside port first, then the outside one.
	Ports []PortStatus
	// CPUFeatures are the features that chose the AEAD preference
	// (for example "aes", "pclmulqdq", "avx2").
	CPUFeatures []string
	// AEADPreference is the AEAD order the engines use now, most
	// preferred first (cryptopool suite names): engine.aeads as last set
	// (config file or PUT /api/v1/config), else the order those features
	// produced.
	AEADPreference []string
	// AEADPreferenceFrom says where that order came from: "cpu" (the
	// features above), "config" (engine.aeads in the file) or "api" (the
	// last PUT /api/v1/config that changed it).
	AEADPreferenceFrom string
	FastPath           bool
	Workers            int
	// Warnings are conditions an operator must know about (a key log being
	// written); empty normally.
	Warnings []string
}

// PortStatus describes one port of the bump.
type PortStatus struct {
	Name      string // "inside" or "outside"
	Interface string
	XDPMode   string // "native" or "generic"
	BindMode  string // "zerocopy" or "copy" (AF_XDP backend); "" otherwise
	// Backend is how the workers reach the port: "afxdp" (AF_XDP sockets)
	// or "afpacket" (an AF_PACKET socket with GRO/GSO super-segments);
	// BackendReason says why (configured, or what auto found).
	Backend       string
	BackendReason string
	Queues        int
	CPUs          []int // the CPU each queue's worker is pinned to; empty when not pinned
	// Path is how frames arriving at the port that need no user-space
	// work (non-TCP, plain TCP on the fast path) reach the other port:
	// "kernel" (the XDP program redirects them) or "user" (the workers
	// forward them); PathReason says why.
	Path       string
	PathReason string
	// MTU is the interface's MTU as tcpincd last read it (at start, then
	// every second); SegmentMTU the largest IP packet the engines build
	// toward the port: MTU, and no more than a TX frame holds.
	MTU, SegmentMTU int
	// Link is the interface's link as tcpincd last read it (at start,
	// then every second): "up" (up and running: frames pass),
	// "no_carrier" (up, but IFF_RUNNING off: a cable pulled, the far end
	// down) or "down" (set down on the box); "" when not known.
	Link string
}

// Counters is a snapshot of every counter the daemon keeps. The maps are
// keyed by a label value (a reason, a result, a state). A nil map exports
// no series.
type Counters struct {
	// Ports counts the frames and bytes the workers handled per port and
	// direction: not those the kernel fast path forwarded (Paths["fast"]).
	Ports []PortCounters
	// Paths counts the frames and bytes each path forwarded: "fast" (the
	// XDP program, inside the kernel), "engine" (user space, translated)
	// and "passthrough" (user space, unchanged).
	Paths map[string]PathCounters

	FlowsByState   map[string]uint64 // gauge: flows in each state now, every one of FlowStates (0 included)
	Handshakes     map[string]uint64 // by result: "encrypted", "fallback", "failed", ...
	Fallbacks      map[string]uint64 // by reason
	Drops          map[string]uint64 // by reason
	Fragments      map[string]uint64 // IP fragments and datagrams, by engine decision or drop reason
	Events         map[string]uint64 // the engine's other event counts, by name (challenge_acks, ptb_translated, ...)
	AuthFailures   uint64            // frames that failed AEAD authentication (TC-47)
	Rekeys         uint64
	Resumptions    uint64
	InitRetransmit uint64 // Init1/Init2 retransmissions by the appliance
	// StrayResets counts mid-stream segments of connections that
	// negotiated TCP-ENO and have no record (after a restart, or expiry):
	// reset both ways, never passed.
	StrayResets  uint64
	DupACKs      uint64 // duplicate ACKs the appliance originated, to far sides and to inside hosts
	FramesSealed uint64
	FramesOpened uint64
	CacheEntries uint64 // gauge: resumption cache chains held
	// Flow memory (all workers): bytes of flow records and per-flow
	// buffers charged now, the most ever charged, and the limit;
	// FlowMemoryRefused counts the allocations the limit refused.
	FlowMemoryBytes, FlowMemoryPeak, FlowMemoryLimit uint64
	FlowMemoryRefused                                uint64
	// WorkerEvents are the workers' own event counts, by name (fast-path
	// map updates and their errors, flow-table evictions, frames the
	// parser rejected, kick errors, handler bugs, ...).
	WorkerEvents map[string]uint64
	// The negotiated set (the tuples that negotiated TCP-ENO, kept for a
	// restarted daemon): entries now (gauge), holds that found it full
	// (each such connection stayed plain), and writes its pinned map
	// refused (the tuple may be unknown after a restart).
	NegotiatedEntries, NegotiatedOverflows, NegotiatedStoreErrors uint64

	// FastPathFlows is how many flows the kernel fast path forwards (its
	// map's entries, one per direction, halved): the engines forget a
	// plain one engine.plain_retention after its handshake while it
	// lasts. FastPathKnown is false when there is no such count (fast
	// path off, or the map could not be read); it is then not exported.
	FastPathFlows uint64
	FastPathKnown bool

	Rings   []RingLevel
	Workers []WorkerLoad
	// Backend are the port backends' own counters, by name: the AF_XDP
	// sockets' statistics, or the AF_PACKET port's (super-segments
	// received, GSO frames sent, ...).
	Backend []BackendCounters
}

// BackendCounters are one port's backend counters.
type BackendCounters struct {
	Port    string // "inside" or "outside"
	Backend string // "afxdp" or "afpacket"
	Counts  map[string]uint64
}

// PortCounters are the frames and bytes of one port in one direction.
type PortCounters struct {
	Port      string // "inside" or "outside"
	Direction string // "rx" or "tx"
	Frames    uint64
	Bytes     uint64
}

// PathCounters are the frames and bytes one forwarding path handled.
// NoBytes says the path counts frames only (the kernel fast path: the XDP
// program counts no bytes): Bytes is then not a count, and neither the
// status nor /metrics shows it.
type PathCounters struct {
	Frames, Bytes uint64
	NoBytes       bool
}

// RingLevel is the occupancy of one ring, in slots: an AF_XDP socket's rx,
// tx, fill or completion ring (xsk.Socket.RingLevels), or a hand-off lane
// between workers (Port "handoff", Queue the sending worker).
type RingLevel struct {
	Port  string
	Queue int
	Ring  string
	Used  uint64
	Size  uint64
}

// WorkerLoad is how busy one worker is.
type WorkerLoad struct {
	Worker int
	// BusySeconds is the time the worker spent handling frames since it
	// started (a counter: its rate is the busy ratio).
	BusySeconds float64
	// BusyRatio is the share of the last 5 to 10 seconds the worker was
	// busy (of the time since the previous reading, if that is longer),
	// 0..1: the same for every reader, whoever read last.
	BusyRatio float64
}

// FieldError is an invalid value in a request, named by its JSON path
// ("policies[2].prefix", "caps.flows").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// fieldOf returns the field a *FieldError in err's chain names, or "".
func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
