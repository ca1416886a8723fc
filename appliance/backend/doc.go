// Package backend opens the appliance's two ports as tcpincd runs them:
// the XDP classifier on both (package appliance/afxdp over xsk, with its
// kernel fast path) and the workers' queues from the backend config key
// backend chooses, AF_XDP sockets or one AF_PACKET socket per port with
// GRO/GSO super-segments (package appliance/afpacketport); it says which
// backend each port uses and why, and exports the backend's counters.
//
// Everything but this comment is Linux-only.
package backend
