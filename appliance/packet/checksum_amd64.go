package packet

import "golang.org/x/sys/cpu"

// haveSIMD: AVX2 is there (almost every x86-64 server since 2013). A var,
// so that the tests can check the plain Go sum on the same machine.
var haveSIMD = cpu.X86.HasAVX2

// wideSIMD: AVX-512F as well, for 128 bytes a round.
var wideSIMD = cpu.X86.HasAVX512F

// sumSIMD is sumLE in AVX2 (checksum_amd64.s): it adds b's little-endian
// 32-bit words, then 16- and 8-bit ones at the end, all at even offsets,
// which fold to the same ones' complement sum as its 16-bit words. It
// cannot overflow below 2^34 bytes.
//
//go:noescape
func sumSIMD(b []byte, wide bool) uint64

func setSIMD(on bool) { haveSIMD = on && cpu.X86.HasAVX2 }

func setWideSIMD(on bool) { wideSIMD = on && cpu.X86.HasAVX512F }
