#include "textflag.h"

// func sumSIMD(b []byte) uint64
//
// Adds the 32-bit little-endian words of b (len a multiple of 64) into
// 64-bit lanes: each 64-bit word is split into its low and high halves
// (AND with 0xffffffff, shift right by 32) and each half added to its own
// accumulator, so no lane can carry out. Two blocks of 32 bytes a round,
// four accumulators, so the adds do not wait on each other.
TEXT ·sumSIMD(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPCMPEQD Y15, Y15, Y15
	VPSRLQ $32, Y15, Y15 // 0x00000000ffffffff in every lane
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), Y4
	VMOVDQU 32(SI), Y5
	VPAND Y15, Y4, Y6
	VPSRLQ $32, Y4, Y4
	VPAND Y15, Y5, Y7
	VPSRLQ $32, Y5, Y5
	VPADDQ Y6, Y0, Y0
	VPADDQ Y4, Y1, Y1
	VPADDQ Y7, Y2, Y2
	VPADDQ Y5, Y3, Y3
	ADDQ $64, SI
	SUBQ $64, CX
	JNZ loop

done:
	VPADDQ Y1, Y0, Y0
	VPADDQ Y3, Y2, Y2
	VPADDQ Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDQ X1, X0, X0
	VMOVQ X0, AX
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
