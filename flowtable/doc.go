// Package flowtable holds per-worker TCP flow state for the appliance: the
// flow table and the ring that hands a frame to its owner worker. Flows are
// named by [flow.Key]; [flow.Key.Owner] picks the worker that owns a flow
// (docs/architecture.md §4), the same for both directions.
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
