package engine

import (
	"net/netip"
	"reflect"
	"testing"
)

// The negotiated set's map and deadline heap hold no pointers, so that the
// garbage collector does not scan them (a flowKey holds two: netip.Addr's
// zone), and a tuple comes back out of the set as it went in: IPv4, IPv6,
// IPv4-mapped IPv6 (the engine's form for some tuples) and the zero Addr
// all stay apart.
func TestNegotiatedSetPointerFree(t *testing.T) {
	s := NewNegotiatedSet(NegotiatedConfig{})
	for name, typ := range map[string]reflect.Type{
		"map key":   reflect.TypeOf(s.m).Key(),
		"map value": reflect.TypeOf(s.m).Elem(),
		"heap item": reflect.TypeOf(s.dl.items).Elem(),
	} {
		if hasPointers(typ) {
			t.Errorf("the set's %s (%v) holds pointers", name, typ)
		}
	}
	ap := netip.MustParseAddrPort
	keys := []flowKey{
		{ap("10.0.0.1:40000"), ap("192.0.2.1:443")},
		{ap("[::ffff:10.0.0.1]:40000"), ap("[::ffff:192.0.2.1]:443")},
		{ap("[fd00::1]:40000"), ap("[2001:db8::1]:443")},
		{netip.AddrPortFrom(netip.Addr{}, 1), netip.AddrPortFrom(netip.Addr{}, 2)},
	}
	for _, k := range keys {
		if got := setKeyOf(k).flowKey(); got != k {
			t.Errorf("%v came back as %v", k, got)
		}
		s.hold(k)
	}
	if s.Len() != len(keys) {
		t.Fatalf("%d entries for %d distinct tuples", s.Len(), len(keys))
	}
	seen := map[flowKey]bool{}
	s.Each(func(in, out netip.AddrPort, _ int64) { seen[flowKey{in, out}] = true })
	for _, k := range keys {
		if !seen[k] || !s.has(k) {
			t.Errorf("%v: listed %v, found %v", k, seen[k], s.has(k))
		}
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
