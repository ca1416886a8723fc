// Package admintest provides Fixture, an admin.Source over fixed in-memory
// data, for the tests of package admin and of tcpincctl. The daemon
// implements the real Source over its workers.
package admintest

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/tcpinc/tcpinc/appliance/admin"
)

// Start is the fixture daemon's start time; Now is the fixed clock tests
// give the server, so ages and uptime are stable.
var (
	Start = time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	Now   = Start.Add(2*time.Hour + 3*time.Minute + 4*time.Second)
)

// Fixture is an admin.Source over fixed data that records every change
// asked of it. Its fields may be set before the server starts; after that,
// read them only through its methods.
type Fixture struct {
	mu       sync.Mutex
	status   admin.Status
	flows    []admin.FlowInfo
	config   admin.Config
	counters admin.Counters
	cache    map[netip.Addr]int // far side -> cached chains

	applies []admin.Config // every ApplyConfig call, accepted or not
	flushes []netip.Addr   // every FlushCache call

	// MaxFlows is a limit only the "daemon" knows: ApplyConfig refuses
	// caps.flows above it with a *FieldError, as a real daemon refuses
	// what its memory cannot hold.
	MaxFlows int
}

// Session IDs of the fixture's encrypted flows (RFC 8548 §3.4: TEP byte,
// then 32 CPRF bytes). Flow 7 is fresh (0x23), flow 9 resumed (0xa3).
var (
	SessionFresh   = sid(0x23, 0x10)
	SessionResumed = sid(0xa3, 0x80)
)

func sid(tep byte, seed byte) (s [33]byte) {
	s[0] = tep
	for i := 1; i < len(s); i++ {
		s[i] = seed + byte(i)*7
	}
	return s
}

// Transcript is flow 7's negotiation transcript: A's SYN option (45 04 02
// 23: the application-aware bit, X25519) then B's (45 04 01 23: the passive
// role bit, X25519).
var Transcript = []byte{0x45, 0x04, 0x02, 0x23, 0x45, 0x04, 0x01, 0x23}

// New returns a fixture with five flows (encrypted fresh, encrypted
// resumed, fallen back, negotiating, bypassed), a valid config and
// counters with a distinct value in every series. The flows that are not
// encrypted carry byte counts no engine reports (it counts the plaintext
// it opens and seals, engine.FlowInfo.BytesIn): tcpincctl and the status
// page must not show them.
func New() *Fixture {
	ap := netip.MustParseAddrPort
	f := &Fixture{
		MaxFlows: 1 << 20,
		status: admin.Status{
			Version: "v0.5.0-test",
			Started: Start,
			Ports: []admin.PortStatus{
				{Name: "inside", Interface: "enp1s0f0", XDPMode: "native", BindMode: "zerocopy", Queues: 2, CPUs: []int{2, 3},
					Backend: "afxdp", BackendReason: "auto: the driver offers zero-copy AF_XDP on both ports",
					Path: "kernel", PathReason: "the XDP program redirects to enp1s0f1", MTU: 1500, SegmentMTU: 1500, Link: "up"},
				{Name: "outside", Interface: "enp1s0f1", XDPMode: "generic", BindMode: "copy", Queues: 2, CPUs: []int{2, 3},
					Backend: "afxdp", BackendReason: "auto: the driver offers zero-copy AF_XDP on both ports",
					Path: "user", PathReason: "enp1s0f0 cannot take redirected XDP frames (a veth whose peer has neither GRO nor an XDP program, or a driver without ndo_xdp_xmit): the workers forward",
					MTU: 9000, SegmentMTU: 3822, Link: "no_carrier"},
			},
			CPUFeatures:        []string{"aes", "pclmulqdq", "avx2"},
			AEADPreference:     []string{"aes128gcm", "aes256gcm", "chacha20poly1305"},
			AEADPreferenceFrom: "cpu",
			FastPath:           true,
			Workers:            2,
		},
		flows: []admin.FlowInfo{
			{
				ID: 9, Inside: ap("10.1.0.5:50022"), Outside: ap("198.51.100.20:22"), State: "encrypted",
				Encrypted: true, Role: "B", TEP: 0xa3, AEAD: "chacha20poly1305", SessionID: SessionResumed,
				KeyGeneration: 0, Resumed: true, BytesIn: 52_000, BytesOut: 9_100, PacketsIn: 80, PacketsOut: 61,
				Started: Start.Add(2 * time.Hour),
				// Illustrative bytes only: the admin API passes a transcript through as hex.
				Transcript: []byte{0x45, 0x04, 0xa3, 0x01, 0x45, 0x03, 0xa3},
			},
			{
				ID: 7, Inside: ap("10.1.0.2:43122"), Outside: ap("198.51.100.7:443"), State: "encrypted",
				Encrypted: true, Role: "A", TEP: 0x23, AEAD: "aes128gcm", SessionID: SessionFresh,
				KeyGeneration: 2, BytesIn: 1_268_000, BytesOut: 34_200, PacketsIn: 912, PacketsOut: 401,
				Started: Start.Add(90 * time.Minute), Transcript: Transcript, Stream: Stream7,
			},
			{
				// The engine's words when the far side's SYN-ACK has no
				// TCP-ENO option (fallback no_eno).
				ID: 12, Inside: ap("10.1.0.2:43200"), Outside: ap("203.0.113.9:80"), State: "plain",
				FallbackReason: "no ENO option", BytesIn: 4_400, BytesOut: 610, PacketsIn: 6, PacketsOut: 5,
				Started: Start.Add(2*time.Hour + 2*time.Minute),
			},
			{
				ID: 13, Inside: ap("10.1.0.3:40000"), Outside: ap("198.51.100.7:8080"), State: "syn-sent",
				PacketsOut: 1, BytesOut: 74, Started: Start.Add(2*time.Hour + 3*time.Minute + 3*time.Second),
			},
			{
				// A bypass policy's flow (fallback bypass).
				ID: 1 << 60, Inside: ap("[fd00::5]:5353"), Outside: ap("[2001:db8::53]:53"), State: "plain",
				FallbackReason: "policy bypass", BytesIn: 300, BytesOut: 120, PacketsIn: 2, PacketsOut: 2,
				Started: Start.Add(time.Hour),
			},
		},
		config: admin.Config{
			DefaultPolicy: admin.PolicyOpportunistic,
			Policies: []admin.PolicyRule{
				{Prefix: "198.51.100.0/24", Policy: admin.PolicyRequire},
				{Prefix: "2001:db8::/32", Policy: admin.PolicyBypass},
			},
			TEPs:           []string{"x25519", "x448", "p256"},
			AEADs:          []string{"aes128gcm", "aes256gcm", "chacha20poly1305"},
			RekeyBytes:     1 << 30,
			RekeyInterval:  admin.Duration(time.Hour),
			Resumption:     true,
			ResumeNonceLen: 8,
			Caps:           admin.Caps{Flows: 65536, RetransmitBytes: 1 << 20, ReassemblyBytes: 1 << 20, PrekeyQueueBytes: 64 << 10, DeliverBytes: 256 << 10},
		},
		counters: admin.Counters{
			Ports: []admin.PortCounters{
				{Port: "inside", Direction: "rx", Frames: 1001, Bytes: 1_500_001},
				{Port: "inside", Direction: "tx", Frames: 1002, Bytes: 1_500_002},
				{Port: "outside", Direction: "rx", Frames: 1003, Bytes: 1_500_003},
				{Port: "outside", Direction: "tx", Frames: 1004, Bytes: 1_500_004},
			},
			Paths: map[string]admin.PathCounters{
				"fast":        {Frames: 5000, NoBytes: true}, // as tcpincd's: the XDP program counts frames only
				"engine":      {Frames: 1800, Bytes: 2_000_000},
				"passthrough": {Frames: 200, Bytes: 30_000},
			},
			// Every state, as the engines report them (0 included).
			FlowsByState:  map[string]uint64{"syn-sent": 1, "syn-received": 0, "syn-ack-sent": 0, "key-exchange": 0, "encrypted": 2, "closed": 0, "plain": 2},
			FastPathFlows: 21,
			FastPathKnown: true,
			Handshakes:    map[string]uint64{"encrypted": 41, "fallback": 17, "failed": 2},
			Fallbacks:     map[string]uint64{"no_eno": 15, "bypass": 2},
			Drops:         map[string]uint64{"no_tx_frame": 3, "auth_failure": 1},
			Fragments:     map[string]uint64{"reassembled": 8, "passed": 30},
			Events:        map[string]uint64{"challenge_acks": 9, "ptb_translated": 2},
			AuthFailures:  1, Rekeys: 5, Resumptions: 11, InitRetransmit: 4, DupACKs: 6, StrayResets: 7,
			FramesSealed: 900, FramesOpened: 880, CacheEntries: 3,
			FlowMemoryBytes: 5 << 20, FlowMemoryPeak: 6 << 20, FlowMemoryLimit: 1 << 30, FlowMemoryRefused: 13,
			WorkerEvents:      map[string]uint64{"fastpath_errors": 14, "flow_table_evictions": 15, "invalid_verdicts": 0},
			NegotiatedEntries: 16, NegotiatedOverflows: 17, NegotiatedStoreErrors: 18,
			Rings: []admin.RingLevel{
				{Port: "inside", Queue: 0, Ring: "rx", Used: 12, Size: 2048},
				{Port: "outside", Queue: 1, Ring: "fill", Used: 2000, Size: 2048},
			},
			Workers: []admin.WorkerLoad{
				{Worker: 0, BusySeconds: 12.5, BusyRatio: 0.25},
				{Worker: 1, BusySeconds: 3.75, BusyRatio: 0.0625},
			},
			Backend: []admin.BackendCounters{
				{Port: "inside", Backend: "afxdp", Counts: map[string]uint64{"rx_frames": 7000, "kicks": 12}},
				{Port: "outside", Backend: "afxdp", Counts: map[string]uint64{"rx_frames": 6500}},
			},
		},
		cache: map[netip.Addr]int{
			netip.MustParseAddr("198.51.100.7"):  1,
			netip.MustParseAddr("198.51.100.20"): 1,
			netip.MustParseAddr("203.0.113.50"):  1,
		},
	}
	return f
}

// Status implements admin.Source.
func (f *Fixture) Status() admin.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// SetWarnings replaces the status's warnings.
func (f *Fixture) SetWarnings(w []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Warnings = w
}

// Flows calls yield with every flow of the fixture.
func (f *Fixture) Flows(yield func(admin.FlowInfo) bool) {
	f.mu.Lock()
	flows := slices.Clone(f.flows)
	f.mu.Unlock()
	for _, fl := range flows {
		if !yield(fl) {
			return
		}
	}
}

// FlowPage implements admin.Source.
func (f *Fixture) FlowPage(filter admin.FlowFilter, after uint64, limit int) ([]admin.FlowInfo, int) {
	var page []admin.FlowInfo
	matched := 0
	f.Flows(func(fl admin.FlowInfo) bool {
		if filter.Match(&fl) {
			matched++
			if fl.ID > after {
				page = append(page, fl)
			}
		}
		return true
	})
	slices.SortFunc(page, func(a, b admin.FlowInfo) int { return cmp.Compare(a.ID, b.ID) })
	return page[:min(len(page), limit)], matched
}

// FlowCounts implements admin.Source.
func (f *Fixture) FlowCounts() (total, encrypted int) {
	f.Flows(func(fl admin.FlowInfo) bool {
		total++
		if fl.Encrypted {
			encrypted++
		}
		return true
	})
	return total, encrypted
}

// Flow implements admin.Source.
func (f *Fixture) Flow(id uint64) (admin.FlowInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range f.flows {
		if fl.ID == id {
			return fl, true
		}
	}
	return admin.FlowInfo{}, false
}

// Lookup implements admin.Source.
func (f *Fixture) Lookup(a, b netip.AddrPort) (admin.FlowInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range f.flows {
		if (fl.Inside == a && fl.Outside == b) || (fl.Inside == b && fl.Outside == a) {
			return fl, true
		}
	}
	return admin.FlowInfo{}, false
}

// Config implements admin.Source.
func (f *Fixture) Config() admin.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.config
}

// ApplyConfig implements admin.Source: all of c, or nothing.
func (f *Fixture) ApplyConfig(c admin.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, c)
	if c.Caps.Flows > f.MaxFlows {
		return &admin.FieldError{Field: "caps.flows", Msg: "more than this daemon's flow table holds"}
	}
	f.config = c
	return nil
}

// FlushCache implements admin.Source.
func (f *Fixture) FlushCache(far netip.Addr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes = append(f.flushes, far)
	if !far.IsValid() {
		n := len(f.cache)
		clear(f.cache)
		return n, nil
	}
	n := f.cache[far]
	delete(f.cache, far)
	return n, nil
}

// Counters implements admin.Source.
func (f *Fixture) Counters() admin.Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.counters
	c.Paths = maps.Clone(c.Paths)
	c.FlowsByState = maps.Clone(c.FlowsByState)
	c.Handshakes = maps.Clone(c.Handshakes)
	c.Fallbacks = maps.Clone(c.Fallbacks)
	c.Drops = maps.Clone(c.Drops)
	c.WorkerEvents = maps.Clone(c.WorkerEvents)
	return c
}

// SetFlows replaces the flows.
func (f *Fixture) SetFlows(flows []admin.FlowInfo) {
	f.mu.Lock()
	f.flows = flows
	f.mu.Unlock()
}

// UpdateCounters changes the counters under the fixture's lock.
func (f *Fixture) UpdateCounters(fn func(*admin.Counters)) {
	f.mu.Lock()
	fn(&f.counters)
	f.mu.Unlock()
}

// Applies returns every config ApplyConfig was given.
func (f *Fixture) Applies() []admin.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applies)
}

// Flushes returns every address FlushCache was given (the zero Addr for
// "all").
func (f *Fixture) Flushes() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flushes)
}

// CacheLen is the number of far sides with cached state.
func (f *Fixture) CacheLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cache)
}

// Stream7 is flow 7's progress: the far side's last frame waits for the
// inside host's window.
var Stream7 = &admin.Stream{
	Out: admin.StreamOut{HostNext: 34_200, HostAcked: 34_200, WireNext: 34_975, WireSent: 34_975, WireAcked: 34_975, WindowR: 65_536},
	In: admin.StreamIn{WireNext: 1_280_235, WireHeldEnd: 1_280_235, WireAcked: 1_278_755, WireAckSent: 1_278_755,
		HostOpened: 1_268_000, HostSent: 1_266_540, HostAcked: 1_266_540, Frames: 1, WindowL: 0},
}
