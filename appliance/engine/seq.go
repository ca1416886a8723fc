package engine

// Sequence arithmetic. Every 32-bit sequence or acknowledgement number the
// engine reads goes through unwrap, and every one it writes through wrap, so
// that the per-flow state can use plain 64-bit stream offsets (docs/architecture.md §2:
// offsets relative to ISN+1, the first data byte).

// unwrap returns the stream offset of sequence number seq in a stream whose
// first data byte has sequence number isn+1, choosing among the values that
// agree with seq modulo 2^32 the one nearest ref (an offset the flow already
// knows, such as the next expected one). The result may be negative: the SYN
// itself is offset -1, and a keep-alive probes at offset next-1.
func unwrap(seq, isn uint32, ref int64) int64 {
	rel := seq - (isn + 1)
	d := int32(rel - uint32(ref)) // signed distance modulo 2^32
	return ref + int64(d)
}

// wrap returns the sequence number of stream offset off.
func wrap(isn uint32, off int64) uint32 {
	return isn + 1 + uint32(off)
}
