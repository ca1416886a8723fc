// Package flowtable holds per-worker TCP flow state for the appliance: flow
// keys, the symmetric hash that picks a flow's owner worker, the flow table,
// and the ring that hands a frame to its owner.
//
// Every flow belongs to exactly one worker (docs/architecture.md §4). A worker that
// receives a frame computes [Key.Owner] from the frame's [Key]: the hash is
// symmetric ([Key.SymmetricHash] is the same for a key and its
// [Key.Reverse]), so both directions of a connection, which may arrive on
// different ports and queues, reach the same owner. The hash is SipHash-2-4
// under a random per-process key, so remote hosts cannot choose addresses and
// ports that pile their flows onto one worker.
//
// If the owner is another worker, the frame goes over a [Ring], a bounded
// single-producer single-consumer queue (one ring per ordered pair of
// workers), which never blocks and never locks.
//
// The owner keeps its flows in a [Table]: no locks, no allocation after [New],
// a hard capacity with eviction, and idle aging by a clock the caller passes
// in (monotonic nanoseconds by convention; the table never reads the time).
// Each flow is in a caller-defined [Class] (a protocol state) with its own
// idle timeout. Flows the table removes on its own are handed to
// [Config.OnRemove] first, so the owner can clean up, for example delete the
// flow's fast-path entry in the XDP program's BPF map.
//
// Keys are fixed-size and pointer-free, after tailscale's net/flowtrack: they
// hash and compare fast and the garbage collector does not scan them.
package flowtable
