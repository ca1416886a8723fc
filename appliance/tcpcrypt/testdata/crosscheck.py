#!/usr/bin/env python3
"""Recompute vectors.json from each vector's inputs with a second
implementation: Python's hmac and hashlib and the `cryptography` package,
written from the text of RFC 8548 (and RFC 8547 §4.8 for the transcript)
without the Go code. The Go tests run it (TestVectorsCrossCheck); by hand:

    python3 appliance/tcpcrypt/testdata/crosscheck.py appliance/tcpcrypt/testdata/vectors.json

It prints one line per vector and exits non-zero if any value differs.
"""
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# RFC 8548 §4.3
CONST_NEXTK, CONST_SESSID, CONST_REKEY = b"\x01", b"\x02", b"\x03"
CONST_KEY_A, CONST_KEY_B, CONST_RESUME = b"\x04", b"\x05", b"\x06"
INIT1_MAGIC, INIT2_MAGIC = bytes.fromhex("15101a0e"), bytes.fromhex("097105e0")
# §7 Tables 4 and 5; §6 Table 3 (ae_key_len; ae_nonce_len is 12 for all)
TEP_ID = {"p256": 0x21, "p521": 0x22, "x25519": 0x23, "x448": 0x24}
AEAD = {"aes128gcm": (0x0001, 16), "aes256gcm": (0x0002, 32), "chacha20poly1305": (0x0010, 32)}
K_LEN, NONCE_LEN, TAG_LEN = 32, 12, 16


def cprf(key, const, length):
    """§5: the CPRF is HKDF-Expand-SHA256 (RFC 5869 §2.3)."""
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + const + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:length]


def extract(salt, ikm):
    """HKDF-Extract-SHA256 (RFC 5869 §2.2)."""
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def public_keys_and_es(tep, priv_a, priv_b):
    """§5: X25519/X448 keys go raw; P-256/P-521 compressed (IEEE 1363
    E.2.3) after a two-byte length that, as the figure's byte numbers show,
    counts itself. ES is the X25519/X448 output or the x-coordinate."""
    if tep in ("x25519", "x448"):
        mod = x25519.X25519PrivateKey if tep == "x25519" else x448.X448PrivateKey
        a, b = mod.from_private_bytes(priv_a), mod.from_private_bytes(priv_b)

        def pub(k):
            return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

        return pub(a), pub(b), a.exchange(b.public_key()), b.exchange(a.public_key())
    curve = ec.SECP256R1() if tep == "p256" else ec.SECP521R1()
    a = ec.derive_private_key(int.from_bytes(priv_a, "big"), curve)
    b = ec.derive_private_key(int.from_bytes(priv_b, "big"), curve)

    def pub(k):
        p = k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return (len(p) + 2).to_bytes(2, "big") + p

    return pub(a), pub(b), a.exchange(ec.ECDH(), b.public_key()), b.exchange(ec.ECDH(), a.public_key())


def traffic_keys(mk, key_len):
    """§3.3: k_ab[j], k_ba[j] = K | NR."""
    return cprf(mk, CONST_KEY_A, key_len + NONCE_LEN), cprf(mk, CONST_KEY_B, key_len + NONCE_LEN)


def seal(aead, traffic_key, key_len, offset, control, plaintext):
    """§3.6, §4.2: N = frame ID (the frame's stream offset, left-padded) XOR
    NR; AD = control | clen; frame = control | clen | ciphertext."""
    k, nr = traffic_key[:key_len], traffic_key[key_len:]
    nonce = bytes(x ^ y for x, y in zip(offset.to_bytes(NONCE_LEN, "big"), nr))
    clen = (len(plaintext) + TAG_LEN).to_bytes(2, "big")
    cipher = ChaCha20Poly1305(k) if aead == "chacha20poly1305" else AESGCM(k)
    return control + clen + cipher.encrypt(nonce, plaintext, control + clen)


def check_frames(frames, aead, key_len, keys_of, first_offset, errs, tag):
    """keys_of(sender, generation) is the sender's traffic key; each sender's
    frames follow each other in its stream from first_offset[sender]."""
    gen, nxt = {"A": 0, "B": 0}, dict(first_offset)
    for i, f in enumerate(frames):
        who, control = f["from"], bytes.fromhex(f["control"])
        if control[0] & 1:  # rekey: the first frame of the next generation (§3.8)
            gen[who] += 1
        if f["offset"] != nxt[who]:
            errs.append(f"{tag}frame {i} offset")
        got = seal(aead, keys_of(who, gen[who]), key_len, f["offset"], control, bytes.fromhex(f["plaintext"]))
        if got.hex() != f["frame"]:
            errs.append(f"{tag}frame {i}")
        nxt[who] = f["offset"] + len(got)


def check(v):
    tep, aead = v["suite"].split("+")
    inp = {k: bytes.fromhex(x) for k, x in v["inputs"].items()}
    aead_id, key_len = AEAD[aead]
    errs = []

    def same(name, got, want=None):
        if got.hex() != (v[name] if want is None else want):
            errs.append(name)

    if int.from_bytes(inp["sym_cipher"], "big") != aead_id or inp["eno_synack_b"][-1] != TEP_ID[tep]:
        errs.append("inputs")
    pub_a, pub_b, es, es_b = public_keys_and_es(tep, inp["priv_a"], inp["priv_b"])
    if es != es_b:
        errs.append("es disagree")
    # §4.1: message_len counts the whole message; the ignored tail is empty.
    ciphers = inp["sym_cipher_list"]
    body1 = bytes([len(ciphers) // 2]) + ciphers + inp["n_a"] + pub_a
    init1 = INIT1_MAGIC + (8 + len(body1)).to_bytes(4, "big") + body1
    body2 = inp["sym_cipher"] + inp["n_b"] + pub_b
    init2 = INIT2_MAGIC + (8 + len(body2)).to_bytes(4, "big") + body2
    same("init1", init1)
    same("init2", init2)
    same("es", es)
    # §3.3: PRK = Extract(N_A, eno_transcript | Init1 | Init2 | ES); the
    # transcript is A's SYN ENO option then B's (RFC 8547 §4.8).
    transcript = inp["eno_syn_a"] + inp["eno_synack_b"]
    prk = extract(inp["n_a"], transcript + init1 + init2 + es)
    same("prk", prk)
    # §3.4: the TEP byte B sent (v = 0 here), then the CPRF; sn[0] is empty.
    same("session_id", inp["eno_synack_b"][-1:] + cprf(prk, CONST_SESSID, K_LEN))
    mk = [cprf(prk, CONST_REKEY, K_LEN)]
    mk.append(cprf(mk[0], CONST_REKEY, K_LEN))
    keys = [traffic_keys(m, key_len) for m in mk]
    same("k_ab0", keys[0][0])
    same("k_ba0", keys[0][1])
    same("mk1", mk[1])
    # A sends with k_ab, B with k_ba; the first frames follow the Init messages.
    check_frames(v["frames"], aead, key_len, lambda who, g: keys[g][0 if who == "A" else 1],
                 {"A": len(init1), "B": len(init2)}, errs, "")

    # §3.5: the next connection resumes from ss[1] with roles swapped: the
    # original B is A now and sends the second half of resume[1].
    r = v["resumed"]
    ss1 = cprf(prk, CONST_NEXTK, K_LEN)
    resume = cprf(ss1, CONST_RESUME, 18)
    tep_byte = bytes([TEP_ID[tep] | 0x80])
    nonce_a, nonce_b = bytes.fromhex(r["nonce_a"]), bytes.fromhex(r["nonce_b"])
    for name, got in (("ss1", ss1), ("resume_id", resume),
                      ("syn", tep_byte + resume[9:] + nonce_b),
                      ("synack", tep_byte + resume[:9] + nonce_a)):
        same(name, got, r[name])
    sn = nonce_a + nonce_b  # nonce_a: the nonce of the host that was A (Figure 2)
    same("session_id", tep_byte + cprf(ss1, CONST_SESSID + sn, K_LEN), r["session_id"])
    rkeys = traffic_keys(cprf(ss1, CONST_REKEY + sn, K_LEN), key_len)
    same("k_ab0", rkeys[0], r["k_ab0"])
    same("k_ba0", rkeys[1], r["k_ba0"])
    # Keys follow the original roles: the current A (original B) sends with
    # k_ba. No Init messages: both streams' frames start at offset 0.
    check_frames(r["frames"], aead, key_len, lambda who, g: rkeys[1 if who == "A" else 0],
                 {"A": 0, "B": 0}, errs, "resumed ")
    return errs


def main(path):
    vectors = json.load(open(path))["vectors"]
    failed = 0
    for v in vectors:
        errs = check(v)
        print(v["suite"], "ok" if not errs else "DIFFERS: " + ", ".join(errs))
        failed += bool(errs)
    print(f"{len(vectors) - failed} of {len(vectors)} vectors agree")
    return 1 if failed or not vectors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
