package engine

// mssCap is the largest segment that fits Deps.MTU: the MTU less a base IP
// header and a TCP header without options, as a host derives its MSS from
// its interface (RFC 9293 §3.7.1, RFC 6691). The flow's segment sizes never
// exceed it (segR, segL), whatever MSS a host announces: a far side
// announcing a jumbo MSS would otherwise get frames no port carries, and a
// frame larger than the TX buffer is never sent at all, so the flow would
// stall resending it. The hosts' own MSS options pass unchanged: a host
// never sends more than its link, which is the port's, carries.
func (e *Engine) mssCap(v4 bool) uint16 {
	if e.deps.MTU <= 0 {
		return 0 // no cap
	}
	ip := 40
	if v4 {
		ip = 20
	}
	return uint16(min(max(e.deps.MTU-ip-20, minMSS), 0xffff))
}

// capped is m, or the flow's cap when that is smaller.
func (f *flow) capped(m uint16) int {
	if f.capMSS != 0 && f.capMSS < m {
		return int(f.capMSS)
	}
	return int(m)
}
