package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports Source.Counters at scrape time: one snapshot per
// scrape, no Prometheus call on the packet path. Names follow Prometheus
// conventions: tcpinc_ prefix, _total on counters, base units (bytes,
// seconds, slots).
type collector struct {
	src Source

	buildInfo                     *prometheus.Desc
	portFrames, portBytes         *prometheus.Desc
	pathFrames, pathBytes         *prometheus.Desc
	flows, fastPathFlows          *prometheus.Desc
	handshakes, fallbacks, drops  *prometheus.Desc
	fragments                     *prometheus.Desc
	events                        *prometheus.Desc
	authFailures, rekeys, resumes *prometheus.Desc
	initRetransmit, dupACKs       *prometheus.Desc
	strayResets                   *prometheus.Desc
	sealed, opened                *prometheus.Desc
	cacheEntries                  *prometheus.Desc
	flowMemory, flowMemoryLimit   *prometheus.Desc
	flowMemoryRefused             *prometheus.Desc
	workerEvents                  *prometheus.Desc
	negEntries, negOverflows      *prometheus.Desc
	negStoreErrors                *prometheus.Desc
	ringUsed, ringSize            *prometheus.Desc
	workerBusy, workerBusyRatio   *prometheus.Desc
	portBackend, backendEvents    *prometheus.Desc
	portMTU, portSegmentMTU       *prometheus.Desc
	portLinkUp                    *prometheus.Desc
}

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tcpinc_"+name, help, labels, nil)
	}
	return &collector{
		src:               src,
		buildInfo:         d("build_info", "Always 1; the version label says which tcpincd runs.", "version"),
		portFrames:        d("port_frames_total", "Frames the workers handled per port and direction (rx: received from the port in user space, tx: sent out of it); not those the XDP fast path forwarded inside the kernel (tcpinc_path_frames_total{path=\"fast\"}). An afpacket backend's super-segment counts once.", "port", "direction"),
		portBytes:         d("port_bytes_total", "Bytes of the frames tcpinc_port_frames_total counts.", "port", "direction"),
		pathFrames:        d("path_frames_total", "Frames forwarded per path: fast (XDP, in the kernel), engine (user space, translated), passthrough (user space, unchanged).", "path"),
		pathBytes:         d("path_bytes_total", "Bytes forwarded per path; none for the fast path, whose XDP program counts frames only.", "path"),
		flows:             d("flows", "Flows the engines track now, by state; every state, 0 included. A plain connection on the kernel fast path is tracked only until engine.plain_retention (5 min) after its handshake, the last of its segments the engines see before its end: tcpinc_fastpath_flows counts those.", "state"),
		fastPathFlows:     d("fastpath_flows", "Flows the kernel fast path forwards: entries of its map, one per direction, halved, counted at most every 5 s; a connection that ended without a FIN or RST through the workers stays until the LRU map reuses its entries."),
		handshakes:        d("handshakes_total", "TCP-ENO/tcpcrypt handshakes finished, by result.", "result"),
		fallbacks:         d("fallbacks_total", "Flows that fell back to plain TCP, by reason.", "reason"),
		drops:             d("drops_total", "Frames dropped, by reason.", "reason"),
		fragments:         d("fragments_total", "IP fragments (and datagrams) by engine decision or drop reason: passed, held, reassembled, overlap, timeout, ...", "event"),
		events:            d("engine_events_total", "The engine's other events: challenge ACKs, packet-too-big translated, frames retransmitted, keep-alives, ...", "event"),
		authFailures:      d("auth_failures_total", "Frames that failed AEAD authentication; each aborts its connection (RFC 8548 §4.2)."),
		rekeys:            d("rekeys_total", "Key updates (RFC 8548 §3.8)."),
		resumes:           d("resumptions_total", "Sessions resumed from the cache (RFC 8548 §3.5)."),
		initRetransmit:    d("init_retransmissions_total", "Init1/Init2 segments the appliance retransmitted."),
		strayResets:       d("stray_resets_total", "Mid-stream segments of negotiated connections without a record (after a restart), reset both ways."),
		dupACKs:           d("dup_acks_originated_total", "Duplicate ACKs the appliance sent itself: to a far side after its out-of-order data (with SACK blocks when the connection has SACK), and to an inside host for its segments held past a hole (with SACK only)."),
		sealed:            d("frames_sealed_total", "tcpcrypt frames encrypted."),
		opened:            d("frames_opened_total", "tcpcrypt frames decrypted and authenticated."),
		cacheEntries:      d("resumption_cache_entries", "Far sides with cached resumption state."),
		flowMemory:        d("flow_memory_bytes", "Bytes of flow records and per-flow buffers held by the engines."),
		flowMemoryLimit:   d("flow_memory_limit_bytes", "engine.memory_limit: new connections stay in plain TCP above 7/8 of it."),
		flowMemoryRefused: d("flow_memory_refused_total", "Allocations of flow memory the limit refused (a new flow left plain, a buffer not grown)."),
		workerEvents:      d("worker_events_total", "The workers' own events: fast-path map inserts, removes and errors, flow-table evictions, unparsed frames, hand-offs, kick errors, bad commits and invalid verdicts (handler bugs).", "event"),
		negEntries:        d("negotiated_set_entries", "Tuples in the negotiated set (connections that negotiated TCP-ENO, kept for a restarted daemon)."),
		negOverflows:      d("negotiated_set_overflows_total", "Connections whose tuple found the negotiated set full of live entries: each stayed in plain TCP."),
		negStoreErrors:    d("negotiated_set_store_errors_total", "Writes to the pinned negotiated set that failed: a restarted daemon may not know those tuples."),
		ringUsed:          d("ring_used_slots", "Occupied slots of a ring: a port's AF_XDP rings (rx: frames waiting for the worker; tx: frames waiting for the kernel; fill: free frames lent to the kernel to receive into, which drops when it runs empty; completion: sent frames not yet taken back), none with the afpacket backend; and the hand-off lanes between workers (port handoff, queue the sender, ring to_worker_N).", "port", "queue", "ring"),
		ringSize:          d("ring_size_slots", "Size of a ring, in slots.", "port", "queue", "ring"),
		workerBusy:        d("worker_busy_seconds_total", "Time a worker spent handling frames; its rate is the busy ratio.", "worker"),
		workerBusyRatio:   d("worker_busy_ratio", "Share of the last 5 to 10 seconds (or the time since the previous reading, if longer) a worker was busy, 0 to 1; rate() of tcpinc_worker_busy_seconds_total gives any other window.", "worker"),
		portBackend:       d("port_backend", "Always 1; the labels say which backend the workers reach a port through (afxdp or afpacket) and why.", "port", "backend", "reason"),
		portMTU:           d("port_mtu_bytes", "A port's interface MTU, as tcpincd last read it (every second).", "port"),
		portSegmentMTU:    d("port_segment_mtu_bytes", "The largest IP packet the engines build toward a port: its MTU, at most what a TX frame holds. Followed at run time: a port's MTU that changes lowers or raises it for live flows too.", "port"),
		portLinkUp:        d("port_link_up", "1 while a port's link is up and running, 0 while it is down (no carrier, or set down on the box: no frame passes it), as tcpincd last read it (every second).", "port"),
		backendEvents:     d("port_backend_events_total", "A port backend's own counters by name: AF_XDP socket statistics, or the AF_PACKET port's (super-segments received, GSO frames sent, ...).", "port", "backend", "event"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.portFrames, c.portBytes, c.pathFrames, c.pathBytes, c.flows, c.fastPathFlows,
		c.handshakes, c.fallbacks, c.drops, c.fragments, c.events, c.authFailures, c.rekeys, c.resumes,
		c.initRetransmit, c.dupACKs, c.strayResets, c.sealed, c.opened, c.cacheEntries, c.flowMemory, c.flowMemoryLimit,
		c.flowMemoryRefused, c.workerEvents, c.negEntries, c.negOverflows, c.negStoreErrors,
		c.ringUsed, c.ringSize, c.workerBusy, c.workerBusyRatio,
		c.portBackend, c.backendEvents, c.portMTU, c.portSegmentMTU, c.portLinkUp,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	const (
		counter = prometheus.CounterValue
		gauge   = prometheus.GaugeValue
	)
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	byLabel := func(d *prometheus.Desc, t prometheus.ValueType, vals map[string]uint64) {
		for k, v := range vals {
			m(d, t, float64(v), k)
		}
	}

	st := c.src.Status()
	m(c.buildInfo, gauge, 1, st.Version)
	for _, p := range st.Ports {
		if p.Backend != "" {
			m(c.portBackend, gauge, 1, p.Name, p.Backend, p.BackendReason)
		}
		if p.MTU > 0 {
			m(c.portMTU, gauge, float64(p.MTU), p.Name)
			m(c.portSegmentMTU, gauge, float64(p.SegmentMTU), p.Name)
		}
		if p.Link != "" {
			up := 0.0
			if p.Link == "up" {
				up = 1
			}
			m(c.portLinkUp, gauge, up, p.Name)
		}
	}
	s := c.src.Counters()
	for _, p := range s.Ports {
		m(c.portFrames, counter, float64(p.Frames), p.Port, p.Direction)
		m(c.portBytes, counter, float64(p.Bytes), p.Port, p.Direction)
	}
	for path, p := range s.Paths {
		m(c.pathFrames, counter, float64(p.Frames), path)
		if !p.NoBytes { // a path that counts frames only has no bytes series, not a 0
			m(c.pathBytes, counter, float64(p.Bytes), path)
		}
	}
	byLabel(c.flows, gauge, s.FlowsByState)
	if s.FastPathKnown {
		m(c.fastPathFlows, gauge, float64(s.FastPathFlows))
	}
	byLabel(c.handshakes, counter, s.Handshakes)
	byLabel(c.fallbacks, counter, s.Fallbacks)
	byLabel(c.drops, counter, s.Drops)
	byLabel(c.fragments, counter, s.Fragments)
	byLabel(c.events, counter, s.Events)
	m(c.authFailures, counter, float64(s.AuthFailures))
	m(c.rekeys, counter, float64(s.Rekeys))
	m(c.resumes, counter, float64(s.Resumptions))
	m(c.initRetransmit, counter, float64(s.InitRetransmit))
	m(c.strayResets, counter, float64(s.StrayResets))
	m(c.dupACKs, counter, float64(s.DupACKs))
	m(c.sealed, counter, float64(s.FramesSealed))
	m(c.opened, counter, float64(s.FramesOpened))
	m(c.cacheEntries, gauge, float64(s.CacheEntries))
	m(c.flowMemory, gauge, float64(s.FlowMemoryBytes))
	m(c.flowMemoryLimit, gauge, float64(s.FlowMemoryLimit))
	m(c.flowMemoryRefused, counter, float64(s.FlowMemoryRefused))
	byLabel(c.workerEvents, counter, s.WorkerEvents)
	m(c.negEntries, gauge, float64(s.NegotiatedEntries))
	m(c.negOverflows, counter, float64(s.NegotiatedOverflows))
	m(c.negStoreErrors, counter, float64(s.NegotiatedStoreErrors))
	for _, r := range s.Rings {
		q := strconv.Itoa(r.Queue)
		m(c.ringUsed, gauge, float64(r.Used), r.Port, q, r.Ring)
		m(c.ringSize, gauge, float64(r.Size), r.Port, q, r.Ring)
	}
	for _, wl := range s.Workers {
		wk := strconv.Itoa(wl.Worker)
		m(c.workerBusy, counter, wl.BusySeconds, wk)
		m(c.workerBusyRatio, gauge, wl.BusyRatio, wk)
	}
	for _, b := range s.Backend {
		for ev, v := range b.Counts {
			m(c.backendEvents, counter, float64(v), b.Port, b.Backend, ev)
		}
	}
}
