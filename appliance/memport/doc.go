// Package memport is the appliance's in-memory port backend: [Port] holds a
// queue's frames in process memory with the AF_XDP ring discipline, and
// [Bump] models the XDP classifier on both ports and its fast-path map, so
// the real workers (package appliance) run, and are tested and measured,
// without a kernel. It implements package bump's Port, PairWaiter and
// FastPath and is portable.
package memport
