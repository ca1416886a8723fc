// Package hostmode gives applications on Linux hosts TCP-ENO (RFC 8547) and
// tcpcrypt (RFC 8548) on their own sockets: Host.Dial and Host.Listen return
// a net.Conn and a net.Listener whose connections negotiate TCP-ENO in the
// kernel's TCP handshake and then run tcpcrypt over the socket's byte stream.
//
// The handshake options travel through a BPF sock_ops program (the TCP
// header-option callbacks, see bpf_linux.go) attached to a cgroup v2 that New
// creates and moves the process into, so no other process is affected. The
// program only copies bytes between maps and TCP headers; user space builds
// and judges every option with appliance/eno, and runs the key exchange, the
// key schedule, framing, rekeying and resumption with the codecs of
// appliance/tcpcrypt. The state machine here is written from the RFC text,
// independently of the appliance's engine, so that each checks the other.
//
// What it gives, in the words of draft-ietf-tcpinc-api: Info carries the
// session ID (TCP_ENO_SESSID), the negotiated TEP (TCP_ENO_NEGTEP), the role
// (TCP_ENO_ROLE), the transcript (TCP_ENO_TRANSCRIPT), the names
// (TCP_ENO_SELF_NAME, TCP_ENO_PEER_NAME), the peer's global suboption and
// the AEAD; Config sets the TEPs, the AEADs, mandatory encryption, the
// passive role bit, the application-aware bits and the cache switch, and
// Conn.FlushCache and Host.FlushCache flush resumption state. Read returns
// io.EOF only after a frame with FINp; a TCP FIN without one is
// ErrFINWithoutFINp. Knobs choose the frame size, rekeying every N frames
// and an Init message split across segments, for tests against other
// implementations.
//
// Limits: no simultaneous open (the program answers SYNs only on listeners),
// no SYN data, no TCP Fast Open, no URGp on send; a listener per port.
package hostmode
