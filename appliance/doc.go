// Package appliance is the data-plane core of the bump: two ports (inside,
// outside), one worker per queue index q that owns inside[q] and
// outside[q] (RX and TX of both), runs to completion and hands each frame
// of a TCP flow it owns to its FrameHandler (the engine, or Passthrough when
// none is configured).
//
// A worker's round: frames other workers handed over, a batch from the
// inside port, a batch from the outside port, the handler's Tick when due,
// one Transmit and Kick per port. For every frame: non-TCP frames are
// forwarded unchanged out of the other port; a TCP frame (or an ICMP error
// quoting TCP) goes to the worker that owns its flow, chosen by the
// symmetric hash of the 4-tuple, so both directions meet at one worker.
// With symmetric RSS that is the receiving worker; otherwise the frame is
// copied into a hand-off slot and passed through a flowtable.Ring (bounded,
// drops counted), and the owner processes and transmits it. The handler's
// verdict decides: Passthrough and ForwardInPlace forward the frame,
// Forwarded and Consumed leave the output to the handler (through TxSinks
// over the worker's TX queues), Dropped drops it.
//
// The fast-path logic watches each TCP flow's handshake and close: once the
// handler has let a flow through unchanged after its handshake, both
// directions go into the XDP fast-path map and the kernel forwards the rest
// without waking a worker. SYN, FIN and RST always reach the workers.
//
// The core knows ports only as bump.Port and the fast path only as
// bump.FastPath; it imports no backend. The backends: appliance/afxdp
// (AF_XDP sockets and the XDP classifier, over package xsk; Linux) and
// appliance/memport (in process memory: tests, benchmarks). The control
// adapters are in appliance/control: the engines the workers run, built
// from the configuration file, and the admin API's view of a running
// appliance. Files here: appliance.go (New, Start, Poll, Inspect, Stop),
// worker.go (a worker's round), txqueue.go (TX batches, the handler's
// TxSinks), handoff.go (lanes between workers), fragsteer.go (IP fragments
// to their flow's owner), passthrough.go (the fast-path logic), handler.go
// (FrameHandler and verdicts), counters.go, port.go (the bump vocabulary),
// pin_*.go (CPU pinning). docs/architecture.md tells the whole story.
package appliance
