// Package packet decodes and rewrites Ethernet frames on the appliance's
// packet path, in place and without allocating.
//
// A worker keeps one [Packet], calls [Packet.Decode] for every frame and hands
// the Packet on (to the engine), which then need not decode the frame again:
// [Packet.Err] keeps Decode's outcome. Decode
// walks Ethernet II, up to two VLAN tags (802.1Q, 802.1ad; they stay in the
// frame and are forwarded with it), IPv4 with options or IPv6 with its
// extension headers, and TCP with options; UDP, ICMP and ICMPv6 are
// recognised, and for ICMP errors the quoted inner IP and TCP headers are
// located, so that the engine can translate a quoted sequence number. The
// Packet holds only the frame and offsets into it: accessors read the frame,
// writers change it.
//
// Lengths come from the IP header, not the frame: bytes after the IP datagram
// are Ethernet padding and are never payload. A non-first IP fragment has no
// transport header and says so ([Packet.IsNonFirstFragment]). Malformed frames
// give an [Error] (a small integer, so returning it does not allocate); Decode
// never panics, which FuzzDecode checks.
//
// Checksums follow RFC 1071 ([Sum], [Checksum]) and RFC 1624 for incremental
// updates (HC' = ~(~HC + ~m + m'), [Update16], [Update32], [UpdateBytes]).
// Every writer ([Packet.SetSeq], [Packet.SetAck], [Packet.SetWindow],
// [Packet.SetFlags], [Packet.PatchTCP], [Packet.ClampMSS],
// [Packet.SetQuotedSeq], [Packet.SetMTU]) updates the checksums it affects
// incrementally, so a valid frame stays valid and a corrupted one stays
// corrupted. [Packet.ReplaceOptions] rebuilds the TCP header with a new
// options block (for TCP-ENO), moving the payload inside a caller buffer and
// fixing the IP length, the IPv4 header checksum, the data offset and the TCP
// checksum, at a cost independent of the payload length.
// [Packet.ResizePayload] sets a new payload length within the buffer's
// capacity (the caller then writes the payload and calls
// [Packet.FixL4Checksum]).
//
// Package packettest builds frames of every kind for tests.
package packet
