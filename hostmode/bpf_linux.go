package hostmode

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The sock_ops program carries TCP-ENO (RFC 8547) in the kernel's own
// handshake. User space decides everything it can beforehand and judges the
// outcome afterwards with the shared codecs (appliance/eno); the program only
// moves bytes between the maps and the TCP headers, because the SYN-ACK and
// the third ACK leave in softirq before user space sees the connection.
//
//   - Active open: user space puts its SYN option in dialMap under the
//     socket's cookie before connect. The program writes it in the SYN,
//     copies the SYN-ACK's TCP header back into the same entry, and writes the
//     non-SYN option `45 02` in every segment until one without SYN arrives
//     (RFC 8547 §4.6: an ENO option in every segment until then, the third
//     ACK included) or user space drops the entry because negotiation
//     failed.
//   - Passive open: listenMap, keyed by local port, holds B's global suboption
//     and TEPs. For each SYN with an ENO option the program answers in the
//     SYN-ACK with b = 1 and the TEPs of ours whose byte occurs in A's option
//     (in increasing priority, so the last valid one wins, RFC 8547 §4.5), or,
//     when A's option carries a resumption identifier half that resumeMap
//     holds, with that single resumption suboption (RFC 8548 §3.5), taking the
//     entry out so the secret serves one connection only. The SYN-ACK option
//     and the header of the ACK that completes the handshake go to passMap,
//     keyed by the 4-tuple; the SYN itself comes from TCP_SAVED_SYN.
//
// A TEP byte found inside another suboption's data (a resumption nonce) can
// add a TEP to the SYN-ACK that A did not offer. The negotiated TEP is still
// right, because it is the last TEP in B's option that A also offered
// (RFC 8547 §4.5); only the SHOULD to send one TEP is missed then.

// sock_ops constants (include/uapi/linux/bpf.h).
const (
	opTCPConnect        = 3
	opActiveEstablished = 4
	opPassiveEstablish  = 5
	opTCPListen         = 11
	opParseHdrOpt       = 13
	opHdrOptLen         = 14
	opWriteHdrOpt       = 15

	cbParseAll = 16 // BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG
	cbWrite    = 64 // BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
	loadSYN    = 1  // BPF_LOAD_HDR_OPT_TCP_SYN

	// struct bpf_sock_ops offsets.
	ctxOp         = 0
	ctxFamily     = 20
	ctxRemoteIP4  = 24
	ctxLocalIP4   = 28
	ctxRemoteIP6  = 32
	ctxLocalIP6   = 48
	ctxRemotePort = 64
	ctxLocalPort  = 68
	ctxSkbData    = 192
	ctxSkbDataEnd = 200
	ctxSkbFlags   = 212

	afInet6 = 10
	tcpSYN  = 0x02
	tcpACK  = 0x10
)

// Map layouts. Values are plain byte arrays so that both sides agree without
// padding rules.
const (
	// dialMap value: optLen | done | hdrLen | 0 | opt[40] | hdr[60].
	dvOptLen = 0
	dvDone   = 1
	dvHdrLen = 2
	dvOpt    = 4
	dvHdr    = 44
	dvSize   = 104

	// passMap value: synackLen | ackLen | mask | skip | synack[40] | ack[60].
	pvSynLen = 0
	pvAckLen = 1
	pvMask   = 2
	pvSkip   = 3 // scratch: offset of the next suboption while parsing
	pvSynack = 4
	pvAck    = 44
	pvSize   = 104

	// listenMap value: global | n | teps[4] in wire order (least preferred
	// first) | 0 0.
	lvGlobal = 0
	lvN      = 1
	lvTEPs   = 2
	lvSize   = 8

	// resumeMap key: the peer's 9-byte identifier half. Value: TEP byte
	// (v set) | our half[9] | nonce length | nonce[8] | 0.
	rvTEP      = 0
	rvHalf     = 1
	rvNonceLen = 10
	rvNonce    = 11
	rvSize     = 20

	tupleSize = 40 // local[16] | remote[16] | lport u32 | rport u32, host order ports
)

// Stack layout of the program.
const (
	stTuple  = -40  // 40-byte 4-tuple key
	stCookie = -48  // u64 socket cookie / u32 port key
	stBuf    = -96  // 48 bytes: an ENO option read from a header
	stResKey = -112 // 16 bytes: the resumption key being looked up
	stNonSYN = -120 // the option 45 02
)

type progMaps struct {
	dial, listen, resume, pass *ebpf.Map
}

type builder struct {
	insns   asm.Instructions
	pending string
	n       int
}

func (b *builder) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if b.pending != "" {
			in = in.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, in)
	}
}

func (b *builder) label(name string) {
	if b.pending != "" {
		b.emit(asm.Mov.Reg(asm.R0, asm.R0))
	}
	b.pending = name
}

func (b *builder) fresh() string {
	b.n++
	return fmt.Sprintf("l%d", b.n)
}

// zero clears n bytes (a multiple of 8) of stack at off. Clobbers R1.
func (b *builder) zero(off, n int16) {
	b.emit(asm.Mov.Imm(asm.R1, 0))
	for i := int16(0); i < n; i += 8 {
		b.emit(asm.StoreMem(asm.RFP, off+i, asm.R1, asm.DWord))
	}
}

// setFlags calls bpf_sock_ops_cb_flags_set(ctx, flags).
func (b *builder) setFlags(flags int64) {
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, int32(flags)),
		asm.FnSockOpsCbFlagsSet.Call(),
	)
}

// lookupCookie leaves the dialMap entry of this socket in R0 (0 if none).
func (b *builder) lookupCookie(m *ebpf.Map) {
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stCookie, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stCookie),
		asm.FnMapLookupElem.Call(),
	)
}

// tuple writes the connection's 4-tuple key at stTuple. IPv4 addresses go
// in IPv4-mapped form, as netip.Addr.As16 gives them.
func (b *builder) tuple() {
	v6, ports := b.fresh(), b.fresh()
	b.zero(stTuple, tupleSize)
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxFamily, asm.Word),
		asm.JEq.Imm(asm.R1, afInet6, v6),
		asm.StoreImm(asm.RFP, stTuple+10, 0xff, asm.Byte),
		asm.StoreImm(asm.RFP, stTuple+11, 0xff, asm.Byte),
		asm.StoreImm(asm.RFP, stTuple+26, 0xff, asm.Byte),
		asm.StoreImm(asm.RFP, stTuple+27, 0xff, asm.Byte),
		asm.LoadMem(asm.R1, asm.R6, ctxLocalIP4, asm.Word),
		asm.StoreMem(asm.RFP, stTuple+12, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, ctxRemoteIP4, asm.Word),
		asm.StoreMem(asm.RFP, stTuple+28, asm.R1, asm.Word),
		asm.Ja.Label(ports),
	)
	b.label(v6)
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R1, asm.R6, ctxLocalIP6+i, asm.Word),
			asm.StoreMem(asm.RFP, stTuple+i, asm.R1, asm.Word),
			asm.LoadMem(asm.R1, asm.R6, ctxRemoteIP6+i, asm.Word),
			asm.StoreMem(asm.RFP, stTuple+16+i, asm.R1, asm.Word),
		)
	}
	b.label(ports)
	small := b.fresh()
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxLocalPort, asm.Word),
		asm.StoreMem(asm.RFP, stTuple+32, asm.R1, asm.Word),
		// remote_port is in network byte order; older kernels put it in
		// the upper 16 bits.
		asm.LoadMem(asm.R1, asm.R6, ctxRemotePort, asm.Word),
		asm.JLE.Imm(asm.R1, 0xffff, small),
		asm.RSh.Imm(asm.R1, 16),
	)
	b.label(small)
	b.emit(
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, stTuple+36, asm.R1, asm.Word),
	)
}

// copyHeader copies the TCP header of the skb in the context (up to 60
// bytes) into the map value in R7 at off and its length at lenOff.
// Registers: R2 data, R3 data_end.
func (b *builder) copyHeader(off, lenOff int16) {
	done := b.fresh()
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxSkbData, asm.DWord),
		asm.LoadMem(asm.R3, asm.R6, ctxSkbDataEnd, asm.DWord),
		asm.StoreImm(asm.R7, lenOff, 0, asm.Byte),
	)
	for i := int16(0); i < 60; i++ {
		b.emit(
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, int32(i)+1),
			asm.JGT.Reg(asm.R4, asm.R3, done),
			asm.LoadMem(asm.R5, asm.R2, i, asm.Byte),
			asm.StoreMem(asm.R7, off+i, asm.R5, asm.Byte),
			asm.StoreImm(asm.R7, lenOff, int64(i)+1, asm.Byte),
		)
	}
	b.label(done)
}

func sockOpsProgram(m progMaps) asm.Instructions {
	b := &builder{}
	b.emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R1, asm.R6, ctxOp, asm.Word),
		asm.JEq.Imm(asm.R1, opTCPConnect, "connect"),
		asm.JEq.Imm(asm.R1, opTCPListen, "listen"),
		asm.JEq.Imm(asm.R1, opHdrOptLen, "len"),
		asm.JEq.Imm(asm.R1, opWriteHdrOpt, "write"),
		asm.JEq.Imm(asm.R1, opActiveEstablished, "active"),
		asm.JEq.Imm(asm.R1, opPassiveEstablish, "passive"),
		asm.JEq.Imm(asm.R1, opParseHdrOpt, "parse"),
	)
	b.label("exit")
	b.emit(asm.Mov.Imm(asm.R0, 1), asm.Return())

	// connect: a socket user space registered gets the header callbacks.
	b.label("connect")
	b.lookupCookie(m.dial)
	b.emit(asm.JEq.Imm(asm.R0, 0, "exit"))
	b.setFlags(cbWrite)
	b.emit(asm.Ja.Label("exit"))

	// listen: likewise for a registered port; children inherit the flags.
	b.label("listen")
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxLocalPort, asm.Word),
		asm.StoreMem(asm.RFP, stCookie, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, m.listen.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stCookie),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	)
	b.setFlags(cbWrite)
	b.emit(asm.Ja.Label("exit"))

	// len: reserve room for the option of the segment being built.
	b.label("len")
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxSkbFlags, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, tcpSYN),
		asm.JEq.Imm(asm.R2, 0, "len_nonsyn"),
		asm.And.Imm(asm.R1, tcpACK),
		asm.JNE.Imm(asm.R1, 0, "synack"),
	)
	b.lookupCookie(m.dial)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R2, asm.R0, dvOptLen, asm.Byte),
	)
	b.label("reserve") // R2 = length
	b.emit(
		asm.JLT.Imm(asm.R2, 2, "exit"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnReserveHdrOpt.Call(),
		asm.Ja.Label("exit"),
	)
	// A non-SYN segment of an active open that still sends ENO: only while
	// user space keeps the entry (it drops it when negotiation failed:
	// RFC 8547 §4.6, send no more ENO options then).
	b.label("len_nonsyn")
	b.lookupCookie(m.dial)
	b.emit(asm.JNE.Imm(asm.R0, 0, "len_nonsyn_ok"))
	b.setFlags(0)
	b.emit(asm.Ja.Label("exit"))
	b.label("len_nonsyn_ok")
	b.emit(asm.Mov.Imm(asm.R2, 2), asm.Ja.Label("reserve"))

	// write: store the option reserved above.
	b.label("write")
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxSkbFlags, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, tcpSYN),
		asm.JEq.Imm(asm.R2, 0, "write_nonsyn"),
		asm.And.Imm(asm.R1, tcpACK),
		asm.JNE.Imm(asm.R1, 0, "write_synack"),
	)
	b.lookupCookie(m.dial)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R3, asm.R0, dvOptLen, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Add.Imm(asm.R2, dvOpt),
	)
	b.label("store") // R2 = option, R3 = length
	b.emit(
		asm.JLT.Imm(asm.R3, 2, "exit"),
		asm.JGT.Imm(asm.R3, 40, "exit"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnStoreHdrOpt.Call(),
		asm.Ja.Label("exit"),
	)
	b.label("write_nonsyn")
	b.emit(
		asm.StoreImm(asm.RFP, stNonSYN, 0x0245, asm.Half), // kind 69, length 2
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stNonSYN),
		asm.Mov.Imm(asm.R3, 2),
		asm.Ja.Label("store"),
	)
	b.label("write_synack")
	b.tuple()
	b.emit(
		asm.LoadMapPtr(asm.R1, m.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stTuple),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R3, asm.R0, pvSynLen, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Add.Imm(asm.R2, pvSynack),
		asm.Ja.Label("store"),
	)

	// active: R7 = the dialMap entry; the skb is the SYN-ACK.
	b.label("active")
	b.lookupCookie(m.dial)
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R7, asm.R0),
	)
	b.copyHeader(dvHdr, dvHdrLen)
	b.emit(asm.StoreImm(asm.R7, dvDone, 1, asm.Byte))
	// Keep writing 45 02 only if the SYN-ACK carried ENO (RFC 8547 §4.6).
	b.emit(
		asm.Mov.Imm(asm.R1, 69),
		asm.StoreMem(asm.RFP, stBuf, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stBuf),
		asm.Mov.Imm(asm.R3, 8),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoadHdrOpt.Call(),
		// -ENOSPC means found but longer than 8 bytes.
		asm.JSGT.Imm(asm.R0, 0, "active_eno"),
		asm.JEq.Imm(asm.R0, -28, "active_eno"),
	)
	b.setFlags(0)
	b.emit(asm.Ja.Label("exit"))
	b.label("active_eno")
	b.setFlags(cbWrite | cbParseAll)
	b.emit(asm.Ja.Label("exit"))

	// parse: a segment on an established active socket that still sends
	// ENO; the first one without SYN ends that.
	b.label("parse")
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxSkbFlags, asm.Word),
		asm.And.Imm(asm.R1, tcpSYN),
		asm.JNE.Imm(asm.R1, 0, "exit"),
	)
	b.setFlags(0)
	b.emit(asm.Ja.Label("exit"))

	// passive: the skb is the ACK that completed the handshake.
	b.label("passive")
	b.setFlags(0)
	b.tuple()
	b.emit(
		asm.LoadMapPtr(asm.R1, m.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stTuple),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R7, asm.R0),
	)
	b.copyHeader(pvAck, pvAckLen)
	b.emit(asm.Ja.Label("exit"))

	b.synack(m)
	return b.insns
}

// synack builds host B's SYN-ACK option in passMap and reserves its room.
// Registers: R7 the passMap entry, R8 the listenMap entry, R9 the length of
// A's option in the buffer at stBuf.
func (b *builder) synack(m progMaps) {
	b.label("synack")
	b.tuple()
	// A retransmitted SYN-ACK repeats the bytes already chosen (RFC 8547 §4.6).
	b.emit(
		asm.LoadMapPtr(asm.R1, m.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stTuple),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "synack_new"),
		asm.LoadMem(asm.R2, asm.R0, pvSynLen, asm.Byte),
		asm.Ja.Label("reserve"),
	)
	b.label("synack_new")
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, ctxLocalPort, asm.Word),
		asm.StoreMem(asm.RFP, stCookie, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, m.listen.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stCookie),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R8, asm.R0),
	)
	// A's ENO option, from the SYN.
	b.zero(stBuf, 48)
	b.zero(stResKey, 16)
	b.emit(
		asm.StoreImm(asm.RFP, stBuf, 69, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stBuf),
		asm.Mov.Imm(asm.R3, 40),
		asm.Mov.Imm(asm.R4, loadSYN),
		asm.FnLoadHdrOpt.Call(),
		asm.JSLT.Imm(asm.R0, 2, "exit"), // no ENO option in the SYN: answer none
		asm.JSGT.Imm(asm.R0, 40, "exit"),
		asm.Mov.Reg(asm.R9, asm.R0),
	)
	// A fresh passMap entry to build in, inserted from a zeroed stack area.
	b.zero(valArea, pvSize)
	b.emit(
		asm.LoadMapPtr(asm.R1, m.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stTuple),
	)
	b.emit(
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, valArea),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
		asm.LoadMapPtr(asm.R1, m.pass.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stTuple),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R7, asm.R0),
	)
	// Parse A's option (RFC 8547 §4.1, §4.4): the mask gets every TEP A
	// offered; a TEP suboption with 9 or more data bytes is looked up as a
	// resumption offer (RFC 8548 §3.5). The offset of the next suboption
	// lives in the map value, which the verifier does not track, so the
	// unrolled walk does not multiply its states.
	b.emit(asm.StoreImm(asm.R7, pvSkip, 2, asm.Byte))
	for p := int16(2); p < 40; p++ {
		next, notGlobal, lenByte := b.fresh(), b.fresh(), b.fresh()
		b.emit(
			asm.JLE.Imm(asm.R9, int32(p), "scanned"),
			asm.LoadMem(asm.R2, asm.R7, pvSkip, asm.Byte),
			asm.JGT.Imm(asm.R2, int32(p), next), // inside a suboption's data
			asm.Mov.Imm(asm.R2, int32(p)+1),
			asm.StoreMem(asm.R7, pvSkip, asm.R2, asm.Byte),
			asm.LoadMem(asm.R1, asm.RFP, stBuf+p, asm.Byte),
			asm.JGE.Imm(asm.R1, 0x20, notGlobal),
			asm.Ja.Label(next), // global suboption
		)
		b.label(notGlobal)
		b.emit(asm.JLT.Imm(asm.R1, 0x80, "mark_"+next))
		b.emit(asm.JLT.Imm(asm.R1, 0xa0, lenByte))
		// TEP with data to the end of the option: the last suboption.
		b.mark(asm.R1)
		if p+10 <= 40 {
			b.emit(asm.JLT.Imm(asm.R9, int32(p)+10, "scanned"))
			b.resumeLookup(m, p, p+1, "scanned") // ends in a jump
		} else {
			b.emit(asm.Ja.Label("scanned"))
		}
		// Length byte: the next byte is a TEP with v = 1 and nnnnn+1 data
		// bytes (a malformed option ends the walk; user space judges it).
		b.label(lenByte)
		if p+1 >= 40 {
			b.emit(asm.Ja.Label("scanned"))
		} else {
			b.emit(
				asm.JLE.Imm(asm.R9, int32(p)+1, "scanned"),
				asm.And.Imm(asm.R1, 0x1f),
				asm.Add.Imm(asm.R1, int32(p)+2+1),
				asm.StoreMem(asm.R7, pvSkip, asm.R1, asm.Byte),
				asm.LoadMem(asm.R1, asm.RFP, stBuf+p+1, asm.Byte),
			)
			b.mark(asm.R1)
			if p+11 <= 40 {
				b.emit(
					asm.LoadMem(asm.R2, asm.R7, pvSkip, asm.Byte),
					asm.JLT.Imm(asm.R2, int32(p)+11, next), // fewer than 9 data bytes
				)
				b.resumeLookup(m, p+1, p+2, next) // ends in a jump
			} else {
				b.emit(asm.Ja.Label(next))
			}
		}
		b.label("mark_" + next)
		b.mark(asm.R1)
		b.label(next)
	}
	b.label("scanned")
	// Fresh: explicit global with b = 1 and the one TEP of ours that A
	// offered and we prefer most (RFC 8547 §4.5: B SHOULD send one TEP;
	// RFC 8548 §3.2). Our TEPs are in wire order, the most preferred last.
	b.emit(
		asm.StoreImm(asm.R7, pvSynack, 69, asm.Byte),
		asm.StoreImm(asm.R7, pvSynack+1, 4, asm.Byte),
		asm.LoadMem(asm.R1, asm.R8, lvGlobal, asm.Byte),
		asm.StoreMem(asm.R7, pvSynack+2, asm.R1, asm.Byte),
		asm.StoreImm(asm.R7, pvSynack+3, 0, asm.Byte),
		asm.LoadMem(asm.R5, asm.R7, pvMask, asm.Byte),
	)
	for i := int16(0); i < 4; i++ {
		next := b.fresh()
		b.emit(
			asm.LoadMem(asm.R1, asm.R8, lvTEPs+i, asm.Byte),
			asm.JLT.Imm(asm.R1, 0x21, next),
			asm.JGT.Imm(asm.R1, 0x24, next),
			asm.Mov.Reg(asm.R2, asm.R1),
			asm.Add.Imm(asm.R2, -0x21),
			asm.Mov.Reg(asm.R3, asm.R5),
			asm.RSh.Reg(asm.R3, asm.R2),
			asm.And.Imm(asm.R3, 1),
			asm.JEq.Imm(asm.R3, 0, next),
			asm.StoreMem(asm.R7, pvSynack+3, asm.R1, asm.Byte),
		)
		b.label(next)
	}
	b.emit(
		asm.LoadMem(asm.R1, asm.R7, pvSynack+3, asm.Byte),
		asm.JEq.Imm(asm.R1, 0, "exit"), // nothing in common: no option (RFC 8547 §4.6)
		asm.StoreImm(asm.R7, pvSynLen, 4, asm.Byte),
		asm.Mov.Imm(asm.R2, 4),
		asm.Ja.Label("reserve"),
	)

	// resume: R0 = the resumeMap entry. Answer with that one suboption
	// (data to the end of the option) and take the entry out.
	b.label("resume")
	b.emit(
		asm.StoreImm(asm.R7, pvSynack, 69, asm.Byte),
		asm.LoadMem(asm.R1, asm.R8, lvGlobal, asm.Byte),
		asm.StoreMem(asm.R7, pvSynack+2, asm.R1, asm.Byte),
	)
	// value TEP|half (10 bytes) and nonce (8) follow the global suboption.
	for k := int16(0); k < 10; k++ {
		b.emit(
			asm.LoadMem(asm.R1, asm.R0, rvTEP+k, asm.Byte),
			asm.StoreMem(asm.R7, pvSynack+3+k, asm.R1, asm.Byte),
		)
	}
	for k := int16(0); k < 8; k++ {
		b.emit(
			asm.LoadMem(asm.R1, asm.R0, rvNonce+k, asm.Byte),
			asm.StoreMem(asm.R7, pvSynack+13+k, asm.R1, asm.Byte),
		)
	}
	b.emit(
		asm.LoadMem(asm.R9, asm.R0, rvNonceLen, asm.Byte),
		asm.JGT.Imm(asm.R9, 8, "exit"),
		asm.Add.Imm(asm.R9, 3+1+9),
		asm.LoadMapPtr(asm.R1, m.resume.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stResKey),
		asm.FnMapDeleteElem.Call(),
	)
	// The kernel's own SYN-ACK options (MSS, SACK, timestamps, window
	// scale) leave 20 bytes: shorten the nonce until the option fits
	// (RFC 8548 §3.5 allows 0 to 8 bytes). User space reads the nonce sent
	// from passMap.
	for i, cap := range []int32{0, 20, 13} {
		if i > 0 {
			b.emit(
				asm.JEq.Imm(asm.R0, 0, "exit"),
				asm.JLE.Imm(asm.R9, cap, "exit"),
				asm.Mov.Imm(asm.R9, cap),
			)
		}
		b.emit(
			asm.StoreMem(asm.R7, pvSynack+1, asm.R9, asm.Byte),
			asm.StoreMem(asm.R7, pvSynLen, asm.R9, asm.Byte),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnReserveHdrOpt.Call(),
		)
	}
	b.emit(asm.Ja.Label("exit"))
}

// mark adds the TEP in reg (v bit ignored) to the mask when it is one of
// tcpcrypt's. Clobbers R2, R3.
func (b *builder) mark(reg asm.Register) {
	skip := b.fresh()
	b.emit(
		asm.Mov.Reg(asm.R2, reg),
		asm.And.Imm(asm.R2, 0x7f),
		asm.JLT.Imm(asm.R2, 0x21, skip),
		asm.JGT.Imm(asm.R2, 0x24, skip),
		asm.Add.Imm(asm.R2, -0x21),
		asm.Mov.Imm(asm.R3, 1),
		asm.LSh.Reg(asm.R3, asm.R2),
		asm.LoadMem(asm.R2, asm.R7, pvMask, asm.Byte),
		asm.Or.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.R7, pvMask, asm.R2, asm.Byte),
	)
	b.label(skip)
}

// resumeLookup looks the 9 bytes at buf[key:] up in resumeMap and jumps to
// "resume" (R0 = the entry) when the entry's TEP byte equals buf[tep].
// Otherwise it goes on at miss.
func (b *builder) resumeLookup(m progMaps, tep, key int16, miss string) {
	for k := int16(0); k < 9; k++ {
		b.emit(
			asm.LoadMem(asm.R2, asm.RFP, stBuf+key+k, asm.Byte),
			asm.StoreMem(asm.RFP, stResKey+k, asm.R2, asm.Byte),
		)
	}
	b.emit(
		asm.LoadMapPtr(asm.R1, m.resume.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stResKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
		asm.LoadMem(asm.R1, asm.RFP, stBuf+tep, asm.Byte),
		asm.LoadMem(asm.R2, asm.R0, rvTEP, asm.Byte),
		asm.JEq.Reg(asm.R1, asm.R2, "resume"),
		asm.Ja.Label(miss),
	)
}

// valArea is where the zero value inserted into passMap is built.
const valArea = -232
