package appliance

import (
	"fmt"
	"testing"
)

// BenchmarkFragSteerAdd is the steering worker's cost of a new datagram's
// route (a first fragment, or a non-first one held before its first)
// when the table already holds n live routes. At fragRoutes, add calls
// expire, a walk of every route, before it evicts the oldest: each new
// datagram of a fragment flood (forged IDs, one fragment each) then costs
// a scan of 4,096 routes on the worker (a scale review).
func BenchmarkFragSteerAdd(b *testing.B) {
	for _, n := range []int{fragRoutes / 2, fragRoutes} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			w := &worker{}
			st := &w.frag
			st.routes = make(map[fragDgramKey]*fragRoute)
			now := int64(1)
			id := uint32(0)
			for range n {
				id++
				st.add(w, fragDgramKey{id: id}, now)
			}
			for b.Loop() {
				id++
				dk := fragDgramKey{id: id}
				st.add(w, dk, now)
				if n < fragRoutes {
					delete(st.routes, dk) // stay at n
				}
			}
			if len(st.routes) > fragRoutes {
				b.Fatalf("%d routes", len(st.routes))
			}
		})
	}
}
