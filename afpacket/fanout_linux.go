package afpacket

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tcpinc/tcpinc/flow"
)

// skfNetOff makes a packet load count from the network header wherever
// skb->data points (SKF_NET_OFF, linux/filter.h).
const skfNetOff = -0x100000

// skbProtocol is the offset of __sk_buff.protocol (network byte order).
const skbProtocol = 16

// FanoutProgram builds the PACKET_FANOUT_EBPF program of JoinFanout: for
// every frame it returns flow.FanoutHash of the frame's TCP flow, and the
// kernel gives the frame to member hash % n. IPv4 fragments, frames other
// than TCP and IPv6 with an extension header before TCP hash their
// addresses only (no ports), the same for both directions; frames that are
// not IP go to member 0. Such frames are few, and a worker hands each to
// the frame's owner; fragments of one datagram stay together.
func FanoutProgram() (*ebpf.Program, error) {
	const (
		ipv4 = 0x0800
		ipv6 = 0x86dd
		tcp  = 6
	)
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // the loads below take the skb in R6
		asm.Mov.Imm(asm.R9, 0),      // the hash input
		asm.LoadMem(asm.R7, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R7, int32(htons(ipv4)), "v4"),
		asm.JEq.Imm(asm.R7, int32(htons(ipv6)), "v6"),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),

		// IPv4: ports of an unfragmented TCP segment, then both addresses.
		asm.LoadAbs(skfNetOff+9, asm.Byte).WithSymbol("v4"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.LoadAbs(skfNetOff+6, asm.Half),
		asm.And.Imm(asm.R0, 0x3fff), // MF and the fragment offset
		asm.JNE.Imm(asm.R0, 0, "v4addr"),
		asm.JNE.Imm(asm.R8, tcp, "v4addr"),
		asm.LoadAbs(skfNetOff+0, asm.Byte),
		asm.And.Imm(asm.R0, 0x0f),
		asm.LSh.Imm(asm.R0, 2), // IHL in bytes
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadInd(asm.R0, asm.R7, skfNetOff+0, asm.Half),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.LoadInd(asm.R0, asm.R7, skfNetOff+2, asm.Half),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.LoadAbs(skfNetOff+12, asm.Word).WithSymbol("v4addr"),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.LoadAbs(skfNetOff+16, asm.Word),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.Ja.Label("mix"),

		// IPv6: ports when TCP follows the fixed header, then both addresses.
		asm.LoadAbs(skfNetOff+6, asm.Byte).WithSymbol("v6"),
		asm.JNE.Imm(asm.R0, tcp, "v6addr"),
		asm.LoadAbs(skfNetOff+40, asm.Half),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.LoadAbs(skfNetOff+42, asm.Half),
		asm.Xor.Reg(asm.R9, asm.R0),
	}
	for i := range int32(8) {
		in := asm.LoadAbs(skfNetOff+8+4*i, asm.Word)
		if i == 0 {
			in = in.WithSymbol("v6addr")
		}
		ins = append(ins, in, asm.Xor.Reg(asm.R9, asm.R0))
	}
	// flow.FanoutMix on the low 32 bits.
	ins = append(ins, asm.Mov.Reg32(asm.R9, asm.R9).WithSymbol("mix"))
	for i := range 3 {
		ins = append(ins,
			asm.Mov.Reg32(asm.R0, asm.R9),
			asm.RSh.Imm32(asm.R0, 16),
			asm.Xor.Reg32(asm.R9, asm.R0),
		)
		if i < 2 {
			ins = append(ins, asm.Mul.Imm32(asm.R9, flow.FanoutMul))
		}
	}
	ins = append(ins, asm.Mov.Reg32(asm.R0, asm.R9), asm.Return())
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "tcpinc_fanout", Type: ebpf.SocketFilter, License: "Dual MIT/GPL",
		Instructions: ins,
	})
}

// JoinFanout makes socks, all open on one interface, one PACKET_FANOUT
// group in their order, demultiplexed by FanoutProgram: member i receives
// the frames of the flows flow.NewFanout(len(socks)).Queue puts on i.
// Frames the sockets send are not looped back to the group
// (PACKET_FANOUT_FLAG_IGNORE_OUTGOING: with fanout the group's hook replaces
// each socket's own, and PACKET_IGNORE_OUTGOING no longer applies).
func JoinFanout(socks []*Socket) error {
	if len(socks) < 2 {
		return nil
	}
	prog, err := FanoutProgram()
	if err != nil {
		return fmt.Errorf("afpacket: fanout program: %w", err)
	}
	defer prog.Close() // the group keeps its own reference
	const flags = unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	// The first member asks for an unused group id; the others join it.
	arg := (unix.PACKET_FANOUT_EBPF | flags | unix.PACKET_FANOUT_FLAG_UNIQUEID) << 16
	if err := unix.SetsockoptInt(socks[0].fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
		return fmt.Errorf("afpacket: PACKET_FANOUT: %w", err)
	}
	got, err := unix.GetsockoptInt(socks[0].fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return fmt.Errorf("afpacket: read the fanout group id: %w", err)
	}
	id := got & 0xffff
	for _, s := range socks[1:] {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, id|(unix.PACKET_FANOUT_EBPF|flags)<<16); err != nil {
			return fmt.Errorf("afpacket: join fanout group %d: %w", id, err)
		}
	}
	if err := unix.SetsockoptInt(socks[0].fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, prog.FD()); err != nil {
		return fmt.Errorf("afpacket: PACKET_FANOUT_DATA: %w", err)
	}
	return nil
}
