#include "textflag.h"

// func sumSIMD(b []byte) uint64
//
// Adds the little-endian 32-bit words of b into 64-bit lanes: each 64-bit
// word is split into its low and high halves (AND with 0xffffffff, shift
// right by 32) and each half goes to its own accumulator, so no lane can
// carry out. 64 bytes a round into four accumulators, so that the adds do
// not wait on each other; then a 32- and a 16-byte block, and the last 15
// bytes or fewer as 32-, 16- and 8-bit words in a general register. Every
// word starts at an even offset, so all of them fold to the same ones'
// complement sum as the 16-bit words would.
//
// With wide set (AVX-512F), 128 bytes a round in 512-bit registers first.
TEXT ·sumSIMD(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPCMPEQD Y15, Y15, Y15
	VPSRLQ $32, Y15, Y15 // 0x00000000ffffffff in every lane
	CMPB wide+24(FP), $0
	JEQ narrow
	CMPQ CX, $128
	JB narrow
	VPXORQ Z16, Z16, Z16
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPTERNLOGD $0xff, Z20, Z20, Z20 // all ones
	VPSRLQ $32, Z20, Z20

loop128:
	VMOVDQU64 (SI), Z21
	VMOVDQU64 64(SI), Z22
	VPANDQ Z20, Z21, Z23
	VPSRLQ $32, Z21, Z21
	VPANDQ Z20, Z22, Z24
	VPSRLQ $32, Z22, Z22
	VPADDQ Z23, Z16, Z16
	VPADDQ Z21, Z17, Z17
	VPADDQ Z24, Z18, Z18
	VPADDQ Z22, Z19, Z19
	ADDQ $128, SI
	SUBQ $128, CX
	CMPQ CX, $128
	JAE loop128
	VPADDQ Z17, Z16, Z16
	VPADDQ Z19, Z18, Z18
	VPADDQ Z18, Z16, Z16
	VEXTRACTI64X4 $1, Z16, Y1 // the 256-bit accumulators go on from here
	VMOVDQA64 Y16, Y0

narrow:
	CMPQ CX, $64
	JB tail32

loop64:
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
	CMPQ CX, $64
	JAE loop64

tail32:
	CMPQ CX, $32
	JB tail16
	VMOVDQU (SI), Y4
	VPAND Y15, Y4, Y6
	VPSRLQ $32, Y4, Y4
	VPADDQ Y6, Y0, Y0
	VPADDQ Y4, Y1, Y1
	ADDQ $32, SI
	SUBQ $32, CX

tail16:
	CMPQ CX, $16
	JB reduce
	VMOVDQU (SI), X4 // clears the upper half of Y4
	VPAND Y15, Y4, Y6
	VPSRLQ $32, Y4, Y4
	VPADDQ Y6, Y2, Y2
	VPADDQ Y4, Y3, Y3
	ADDQ $16, SI
	SUBQ $16, CX

reduce:
	VPADDQ Y1, Y0, Y0
	VPADDQ Y3, Y2, Y2
	VPADDQ Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDQ X1, X0, X0
	VMOVQ X0, AX
	VZEROUPPER
	CMPQ CX, $8
	JB tail4
	MOVL (SI), DX
	ADDQ DX, AX
	MOVL 4(SI), DX
	ADDQ DX, AX
	ADDQ $8, SI
	SUBQ $8, CX

tail4:
	CMPQ CX, $4
	JB tail2
	MOVL (SI), DX
	ADDQ DX, AX
	ADDQ $4, SI
	SUBQ $4, CX

tail2:
	CMPQ CX, $2
	JB tail1
	MOVWLZX (SI), DX
	ADDQ DX, AX
	ADDQ $2, SI
	SUBQ $2, CX

tail1:
	TESTQ CX, CX
	JZ done
	MOVBLZX (SI), DX // the low byte of a little-endian word
	ADDQ DX, AX

done:
	MOVQ AX, ret+32(FP)
	RET
