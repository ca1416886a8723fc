// Package cryptopool does tcpcrypt's cryptography for the packet path: the
// AEAD suites of RFC 8548 §7, the order in which this host prefers them, frame
// sealing and opening in batches, and the work that must stay off the packet
// path (public-key generation and ECDH).
//
// # Suites and preference
//
// [Suite] names the three AEADs (AES-128-GCM, required; AES-256-GCM and
// ChaCha20-Poly1305, recommended; TC-42). [DetectPreference] reads the CPU
// with github.com/klauspost/cpuid/v2: with AES and carry-less-multiply
// instructions AES-GCM runs in hardware and goes first; without them
// ChaCha20-Poly1305 does, being faster than software AES and constant-time.
// An administrator may configure the order instead (TC-77). The [Preference]
// records the features seen, the order and why, for the admin API.
//
// # Frames
//
// [NewAEAD] builds the AEAD of a suite; tcpcrypt seals and opens its frames
// with it. A [Key] wraps one for tests and benchmarks: [Key.Seal] and
// [Key.Open] work in place on a nonce, associated data and a buffer, check
// lengths and overlap, and never allocate. (A batch API once stood here for
// a worker to call per RX batch; no worker did, and bench/RESULTS.md found
// batching no faster than one call per frame, so it went.)
//
// # Public-key work
//
// A [Pool] runs [Job]s on a fixed number of goroutines. [Client.Submit] never
// blocks: it returns false when the queue is full, and the caller retries
// later. Completions wait in the submitter's [Client] until it calls
// [Client.Poll] between batches, so neither side ever waits on the other.
// A [Stock] keeps a few fresh ephemeral key pairs per key type, hands each out
// once, wipes those older than a short MaxAge (TC-9, TC-79) and is refilled by
// idle pool workers; [Stock.Take] returns ok=false rather than waiting.
//
// cryptopool knows nothing of tcpcrypt's messages or key schedule
// (appliance/tcpcrypt imports it, not the other way round).
package cryptopool
