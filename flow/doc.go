// Package flow names a TCP flow the way every layer of the appliance sees it:
// [Key] is one direction of a connection as it appears on the wire (source
// and destination address and port, IP version), a fixed-size comparable
// value without pointers. The same Key keys a worker's flow table (package
// flowtable), the XDP fast-path map (package xsk), the parser's result
// (packet.Packet.FlowKey) and the in-memory classifier.
//
// [Key.SymmetricHash] is the same for a key and its [Key.Reverse], so both
// directions of a connection, which may arrive on different ports and
// queues, reach the same owner worker ([Key.Owner], docs/architecture.md §4).
// It is SipHash-2-4 under a random per-process key, so remote hosts cannot
// choose addresses and ports that pile their flows onto one worker.
//
// The package is portable and has no dependencies inside the project.
package flow
