//go:build !amd64

package packet

const haveSIMD = false

func sumSIMD(b []byte) uint64 { panic("packet: no SIMD sum on this architecture") }

func setSIMD(bool) {}
