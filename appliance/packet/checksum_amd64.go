package packet

import "golang.org/x/sys/cpu"

// simdBlock is the bytes sumSIMD takes per round.
const simdBlock = 64

// haveSIMD: AVX2 is there (almost every x86-64 server since 2013). A var,
// so that the tests can check the plain Go sum on the same machine.
var haveSIMD = cpu.X86.HasAVX2

// sumSIMD returns the sum of b's little-endian 32-bit words (a multiple of
// simdBlock bytes), which folds to the same ones' complement sum as its
// 16-bit words. It cannot overflow below 2^34 bytes. checksum_amd64.s.
//
//go:noescape
func sumSIMD(b []byte) uint64

func setSIMD(on bool) { haveSIMD = on && cpu.X86.HasAVX2 }
