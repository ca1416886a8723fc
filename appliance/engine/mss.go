package engine

// mssCaps are the largest segments that fit each port (Deps.MTU): the
// port's MTU less a base IP header and a TCP header without options, as a
// host derives its MSS from its interface (RFC 9293 §3.7.1, RFC 6691); 0
// where there is no cap. The flow's segment sizes never exceed them (segL
// by the inside port's, segR by the outside port's), whatever MSS a host
// announces: a far side announcing a jumbo MSS would otherwise get frames
// no port carries, and a frame larger than the TX buffer is never sent at
// all, so the flow would stall resending it. The hosts' own MSS options
// pass unchanged toward the far side; toward an inside host the MSS is
// lowered by the frame overhead, below the outside port's cap (clamp).
func (e *Engine) mssCaps(v4 bool) [2]uint16 {
	return [2]uint16{mtuMSS(e.deps.MTU[Inside], v4), mtuMSS(e.deps.MTU[Outside], v4)}
}

// mtuMSS is the MSS of a link of mtu bytes (0: no cap).
func mtuMSS(mtu int, v4 bool) uint16 {
	if mtu <= 0 {
		return 0 // no cap
	}
	ip := 40
	if v4 {
		ip = 20
	}
	return uint16(min(max(mtu-ip-20, minMSS), 0xffff))
}

// capped is m, or the cap of the port toward `to` when that is smaller.
func (f *flow) capped(m uint16, to PortID) int {
	if c := f.capMSS[to]; c != 0 && c < m {
		return int(c)
	}
	return int(m)
}

// SetMTU changes the ports' MTUs (Deps.MTU) while the engine runs, as
// the daemon reads them: call it on the worker's goroutine, between two
// frames (appliance.Appliance.Inspect). New flows take the new caps at
// their SYN. Live flows take them at once, both ways: a lower cap bounds
// what they send next, the frames sealed before included, which go out
// cut into segments of their same bytes (sendWire); a higher one lets
// their segments grow back as far as the peers' MSS options and a
// packet-too-big allow, as for a new flow. What a live flow's inside host
// was told in its SYN (the MSS, below the outside port's cap then) stays:
// after a lower cap its full segments are sealed into two frames, after a
// higher one they stay as small as it was told.
func (e *Engine) SetMTU(mtu [2]int) {
	e.deps.MTU = mtu
	for _, f := range e.list {
		for ; f != nil; f = f.prev { // a connection a SYN displaced may still send
			f.capMSS = e.mssCaps(f.key.in.Addr().Is4())
		}
	}
}

// MTU returns the ports' MTUs in force (Deps.MTU, or SetMTU's).
func (e *Engine) MTU() [2]int { return e.deps.MTU }
