package packet

import "testing"

// sourceRouted4 finds an IPv4 source route with an address still to go,
// and nothing in malformed or other options.
func TestSourceRouted4(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []byte
		want bool
	}{
		{"LSRR, one address to go", []byte{0x83, 7, 4, 192, 0, 2, 1, 0}, true},
		{"SSRR after a NOP", []byte{1, 0x89, 7, 4, 192, 0, 2, 1}, true},
		{"LSRR used up", []byte{0x83, 7, 8, 192, 0, 2, 1, 0}, false},
		{"LSRR, second of two to go", []byte{0x83, 11, 8, 192, 0, 2, 1, 192, 0, 2, 2, 0}, true},
		{"record route", []byte{0x07, 7, 4, 0, 0, 0, 0, 0}, false},
		{"after end of options", []byte{0, 0x83, 7, 4, 192, 0, 2, 1}, false},
		{"length past the options", []byte{0x83, 12, 4, 192, 0, 2, 1, 0}, false},
		{"length 0", []byte{0x94, 0, 0x83, 7, 4, 1, 2, 3}, false},
		{"timestamp then LSRR", []byte{0x44, 4, 5, 0, 0x83, 7, 4, 10, 0, 0, 1, 1}, true},
	} {
		if got := sourceRouted4(c.opts); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
