// Package interop runs the appliance (tcpincd) against an independent
// implementation of TCP-ENO and tcpcrypt, the host mode of package hostmode
// (cmd/tcpinc-host), in the standard namespace topology: the appliance as
// host A and as host B, every TEP and AEAD, frame sizes from 100 to 65,000
// bytes, rekeying every 5 frames, half-close in both directions, 3 % loss on
// the untrusted network and resumption; plus hosts that speak TCP-ENO
// themselves behind the appliance, which then steps aside. Each case
// compares the appliance's session ID and transcript (admin API) with the
// host's. scripts/interop.sh runs it; INTEROP_FULL=1 runs the whole matrix,
// INTEROP=1 a subset in which every TEP, AEAD and frame size meets both
// appliance roles. Neither runs by default yet: against the appliance of
// this tree a few per cent of the cases still fail (a fresh key exchange
// with the appliance as B that gets no Init2, a stall with the appliance as
// A, 100-byte frames and resumption), which would make CI fail one run in
// three or so.
package interop
