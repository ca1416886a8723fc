//go:build !amd64

package packet

const haveSIMD = false

const wideSIMD = false

func sumSIMD(b []byte, wide bool) uint64 { panic("packet: no SIMD sum on this architecture") }

func setSIMD(bool) {}

func setWideSIMD(bool) {}
