#!/usr/bin/env python3
r"""Audit Assent's append-only Merkle log without Assent's code (Python 3 standard library only).

    python3 examples/audit_log.py --url http://127.0.0.1:8080 --key "$KEY" \
        --verifier-key 'assent.example/log+1a2b3c4d+AQ...' \
        --old-checkpoint checkpoint-2026-05.txt --receipt receipt.json

What it checks:
  1. The verifier key (C2SP signed-note "name+keyid+base64(0x01 || Ed25519 key)"): its key id must be
     SHA-256(name || "\n" || 0x01 || key)[:4]. Pin it once (curl .../api/v1/log/key) and pass it with
     --verifier-key; without it the key is fetched from the server being audited.
  2. The newest checkpoint (C2SP tlog-checkpoint, or --checkpoint FILE): its Ed25519 signature, checked
     by the pure-Python RFC 8032 verifier below, and that its origin is the key's name.
  3. Every leaf 0..size-1: indexes dense, data canonical JSON of a known kind (event, version, erasure),
     and the RFC 9162 Merkle tree hash of all of them equals the checkpoint's root.
  4. Each --receipt (the JSON answer of POST /api/v1/subjects/{id}/acceptances): the leaf at its
     log_index is its event leaf, and the server's inclusion proof verifies against the checkpoint root.
  5. Each --old-checkpoint (one saved earlier with curl -H "Authorization: Bearer $KEY"
     .../api/v1/log/checkpoint > FILE): same key, not bigger than the new one, its root is the root of
     the first old-size leaves, and the server's consistency proof verifies: the log was only appended to.

Prints one line per check, then "log intact: ..." (exit 0) or "BROKEN: ..." lines (exit 1).
Usage errors exit 2. --self-test checks the Ed25519 and proof verifiers against known answers.
"""
import argparse
import base64
import hashlib
import json
import os
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

# ---- Ed25519 verification, RFC 8032 §5.1.7 (after the §6 reference code) ----
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

def _add(a, b):  # points in extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, x*y = T/Z
    A, B = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    C, DD = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    E, F, G, H = B - A, DD - C, DD + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)

def _mul(s, a):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, a)
        a, s = _add(a, a), s >> 1
    return q

def _decompress(b):  # None if b does not encode a curve point
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)

BASE = _decompress((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))

def ed25519_verify(pub, msg, sig):
    """Cofactorless check [S]B == R + [SHA-512(R || A || msg)]A, rejecting S >= L."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    A, R, s = _decompress(pub), _decompress(sig[:32]), int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    lhs, rhs = _mul(s, BASE), _add(R, _mul(k, A))
    return (lhs[0] * rhs[2] - rhs[0] * lhs[2]) % P == 0 and (lhs[1] * rhs[2] - rhs[1] * lhs[2]) % P == 0

# ---- RFC 9162 Merkle tree hash and proof verification ----
def sha256(b):
    return hashlib.sha256(b).digest()

def leaf_hash(data):
    return sha256(b"\x00" + data)

def node_hash(left, right):
    return sha256(b"\x01" + left + right)

class Tree:
    """Streaming tree hash: a stack of (size, hash) of perfect subtrees, sizes strictly decreasing."""
    def __init__(self):
        self.stack = []

    def append(self, h):
        size = 1
        while self.stack and self.stack[-1][0] == size:
            size, h = size * 2, node_hash(self.stack.pop()[1], h)
        self.stack.append((size, h))

    def root(self):
        h = self.stack[-1][1] if self.stack else sha256(b"")
        for _, left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h

def verify_inclusion(index, size, leaf, path, root):  # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root

def verify_consistency(m, n, old_root, new_root, path):  # RFC 9162 §2.1.4.2
    if m == n or m == 0:  # a tree is consistent with itself and the empty tree; both proofs are empty
        return 0 <= m <= n and not path and (m == 0 or old_root == new_root)
    if not 0 < m < n or not path:
        return False
    path = ([old_root] if m & (m - 1) == 0 else []) + list(path)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0

# ---- formats (see the spec of leaves, keys and checkpoints) ----
HEX64 = re.compile(r"[0-9a-f]{64}")
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
VERSION_KEYS = {"acceptance", "document", "effective", "html_sha256", "locale", "material", "part_of",
                "published", "source_sha256", "summary", "title", "toc_sha256", "type", "version"}

def is_hex64(v):
    return isinstance(v, str) and HEX64.fullmatch(v) is not None

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

def b64(s):
    try:
        return base64.b64decode(s, validate=True)
    except (TypeError, ValueError):
        raise ValueError(f"not base64: {str(s)[:40]!r}")

def leaf_kind(data):
    """The leaf's type, or ValueError saying what is wrong with it."""
    obj = json.loads(data.decode("utf-8"))
    if not isinstance(obj, dict) or canonical(obj) != data:
        raise ValueError("not canonical JSON of an object")
    kind = obj.get("type")
    text, opt = (lambda v: isinstance(v, str) and v != ""), (lambda v: v is None or isinstance(v, str))
    if kind in ("event", "erasure"):
        good = set(obj) == {"chain_hash", "type"} and is_hex64(obj["chain_hash"])
    elif kind == "version":
        optional = set(obj) - VERSION_KEYS
        good = (VERSION_KEYS <= set(obj) and optional <= {"audiences", "reaccept_after"}
                and (("audiences" not in obj) or (isinstance(obj["audiences"], list) and obj["audiences"]
                                                  and all(text(a) for a in obj["audiences"])))
                and (("reaccept_after" not in obj) or (type(obj["reaccept_after"]) is int and obj["reaccept_after"] >= 1))
                and obj["acceptance"] in ("required", "informational")
                and text(obj["document"]) and text(obj["title"]) and opt(obj["summary"])
                and opt(obj["locale"]) and opt(obj["part_of"]) and type(obj["material"]) is bool
                and all(isinstance(obj[k], str) and RFC3339_UTC.fullmatch(obj[k]) for k in ("effective", "published"))
                and all(is_hex64(obj[k]) for k in ("html_sha256", "source_sha256", "toc_sha256"))
                and type(obj["version"]) is int and obj["version"] >= 1)
    else:
        raise ValueError(f"unknown leaf type {kind!r}")
    if not good:
        raise ValueError(f"malformed {kind} leaf")
    return kind

def parse_vkey(text):
    """'name+keyid+base64(0x01 || key)' -> (name, 4-byte key id, 32-byte key), or ValueError."""
    name, _, rest = text.strip().partition("+")
    keyid, _, key = rest.partition("+")  # the base64 part may itself contain '+'
    if not name or any(c.isspace() for c in name) or not re.fullmatch(r"[0-9a-fA-F]{8}", keyid):
        raise ValueError("malformed verifier key (want name+keyid+base64)")
    key, keyid = b64(key), bytes.fromhex(keyid)
    if len(key) != 33 or key[0] != 1:
        raise ValueError("not an Ed25519 key (want 0x01 and 32 bytes)")
    if sha256(name.encode("utf-8") + b"\n" + key)[:4] != keyid:
        raise ValueError(f"key id {keyid.hex()} is not SHA-256(name, newline, 0x01, key)[:4]")
    return name, keyid, key[1:]

def parse_checkpoint(text, vkey):
    """Check a signed checkpoint note against vkey -> (size, root), or ValueError."""
    name, keyid, pub = vkey
    cut = text.rfind("\n\n")  # the note text ends in "\n", then a blank line, then signature lines
    if cut < 0 or not text.endswith("\n") or cut + 2 == len(text):
        raise ValueError("not a signed note")
    lines = text[:cut].split("\n")
    if len(lines) < 3 or "" in lines or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise ValueError("want origin, tree size and root hash lines")
    signed, root = False, b64(lines[2])
    for line in text[cut + 2:-1].split("\n"):
        m = re.fullmatch("\u2014 (\\S+) (\\S+)", line)
        if not m:
            raise ValueError(f"malformed signature line {line!r}")
        sig = b64(m.group(2))
        if m.group(1) == name and sig[:4] == keyid:
            if not ed25519_verify(pub, text[:cut + 1].encode("utf-8"), sig[4:]):
                raise ValueError("Ed25519 signature does not verify")
            signed = True
    if not signed:
        raise ValueError(f"no signature by {name}+{keyid.hex()}")
    if lines[0] != name or len(root) != 32:
        raise ValueError(f"origin {lines[0]!r} is not {name!r}, or root hash is not 32 bytes")
    return int(lines[1]), root

# ---- talking to the server, reporting ----
class Broken(Exception):
    pass

class Api:
    def __init__(self, base, key):
        self.base, self.key = base.rstrip("/"), key

    def get(self, path, params=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.key}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise Broken(f"GET {url}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, OSError) as e:
            raise Broken(f"GET {url}: {e}")

    def json(self, path, params):
        try:
            return json.loads(self.get(path, params))
        except (ValueError, RecursionError):
            raise Broken(f"GET {path}: answer is not JSON")

    def proof(self, path, params):
        ans = self.json(path, params)
        hashes = ans.get("hashes") if isinstance(ans, dict) else None
        if not isinstance(hashes, list) or not all(is_hex64(h) for h in hashes) \
                or any(ans.get(k) != v for k, v in params.items()):
            raise Broken(f"GET {path}: answer is malformed or not for {params}")
        return [bytes.fromhex(h) for h in hashes]

failures = []

def check(good, ok_msg, fail_msg):
    print(f"ok    {ok_msg}" if good else f"FAIL  {fail_msg}")
    if not good:
        failures.append(fail_msg)

def passed(msg):
    check(True, msg, None)

def fail(msg):
    check(False, None, msg)

def audit(api, args, receipts, olds):
    try:
        vkey = parse_vkey(args.verifier_key or api.get("/api/v1/log/key").decode("utf-8"))
    except ValueError as e:
        raise Broken(f"verifier key: {e}")
    passed(f"verifier key {vkey[0]}+{vkey[1].hex()}, " + ("pinned" if args.verifier_key else "from the server"))
    try:
        text = args.checkpoint_text if args.checkpoint else api.get("/api/v1/log/checkpoint")
        size, root = parse_checkpoint(text.decode("utf-8"), vkey)
    except ValueError as e:
        raise Broken(f"checkpoint: {e}")
    passed(f"checkpoint signature verifies: size {size}, root {root.hex()}")
    heads = []  # (file, size, root) of the old checkpoints
    for path, data in olds:
        try:
            heads.append((path,) + parse_checkpoint(data.decode("utf-8"), vkey))
            check(heads[-1][1] <= size, f"old checkpoint {path} signature verifies: size {heads[-1][1]}",
                  f"old checkpoint {path}: size {heads[-1][1]} is bigger than the checkpoint's {size}")
        except ValueError as e:
            fail(f"old checkpoint {path}: {e}")
    heads = [h for h in heads if h[1] <= size]

    # One streaming pass over all leaves: kinds, tree hash, roots at old sizes, receipts' leaves.
    tree, counts, bad = Tree(), {"event": 0, "version": 0, "erasure": 0}, []
    want_roots, roots = {m for _, m, _ in heads}, {0: tree.root()}
    want_leaves, leaves = {r.get("log_index") for _, r in receipts if type(r.get("log_index")) is int}, {}
    nxt = 0
    while nxt < size:
        end = min(nxt + 1000, size)
        page = api.json("/api/v1/log/leaves", {"start": nxt, "end": end})
        items = page.get("leaves") if isinstance(page, dict) else None
        if not isinstance(items, list) or not items:
            raise Broken(f"leaves {nxt}..{end}: no leaves returned before reaching size {size}")
        for item in items:
            idx = item.get("index") if isinstance(item, dict) else None
            if type(idx) is not int or idx != nxt or idx >= end:
                raise Broken(f"leaf index {idx!r} where {nxt} was expected: indexes not dense")
            try:
                data = b64(item.get("data"))
            except ValueError as e:
                raise Broken(f"leaf {idx}: data {e}")
            try:
                counts[leaf_kind(data)] += 1
            except (ValueError, RecursionError) as e:
                bad.append(f"leaf {idx}: {e}")
            tree.append(leaf_hash(data))
            nxt += 1
            if nxt in want_roots:
                roots[nxt] = tree.root()
            if idx in want_leaves:
                leaves[idx] = data
    passed(f"fetched all {size} leaves, indexes dense")
    for msg in bad[:10] + ([f"{len(bad)} malformed leaves in all"] if len(bad) > 10 else []):
        fail(msg)
    if not bad:
        passed("every leaf is canonical JSON of a known kind")
    check(tree.root() == root, f"tree hash of {size} leaves equals the checkpoint root",
          f"tree hash of {size} leaves is {tree.root().hex()}, not the checkpoint root")

    for path, rec in receipts:
        chain, idx = rec.get("chain_hash"), rec.get("log_index")
        if not is_hex64(chain) or type(idx) is not int or idx < 0:
            fail(f"receipt {path}: no valid chain_hash and log_index")
            continue
        if idx >= size:
            fail(f"receipt {path}: log_index {idx} is not in the checkpoint's {size} leaves")
            continue
        expected = canonical({"chain_hash": chain, "type": "event"})
        check(leaves.get(idx) == expected, f"receipt {path}: leaf {idx} is its event leaf",
              f"receipt {path}: leaf {idx} is not {expected.decode()}")
        try:
            proof = api.proof("/api/v1/log/proof/inclusion", {"index": idx, "size": size})
            good = verify_inclusion(idx, size, leaf_hash(expected), proof, root)
            check(good, f"receipt {path}: inclusion proof verifies", f"receipt {path}: inclusion proof fails")
        except Broken as e:
            fail(f"receipt {path}: {e}")

    for path, m, old_root in heads:
        check(roots[m] == old_root, f"old checkpoint {path}: root is the tree hash of the first {m} leaves",
              f"old checkpoint {path}: root is not the tree hash of the first {m} leaves")
        try:  # sizes 0 and size need no proof: the empty tree and the tree itself are prefixes
            proof = [] if m in (0, size) else api.proof("/api/v1/log/proof/consistency", {"from": m, "size": size})
            good = verify_consistency(m, size, old_root, root, proof)
            check(good, f"old checkpoint {path}: consistency proof {m} -> {size} verifies",
                  f"old checkpoint {path}: consistency proof {m} -> {size} fails")
        except Broken as e:
            fail(f"old checkpoint {path}: {e}")
    return "log intact: {} leaves ({event} events, {version} versions, {erasure} erasures), root {}".format(
        size, root.hex(), **counts)

def self_test():
    vectors = [  # RFC 8032 §7.1 TEST 1 and TEST 2
        ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", b"",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
         "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", b"\x72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
         "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")]
    for pub, msg, sig in vectors:
        pub, sig = bytes.fromhex(pub), bytes.fromhex(sig)
        assert ed25519_verify(pub, msg, sig), "RFC 8032 test vector rejected"
        assert not ed25519_verify(pub, msg + b"x", sig), "wrong message accepted"
        for bit in (0, 7, 255, 256, 300, 511):  # one flipped bit in R or in S
            flipped = (int.from_bytes(sig, "little") ^ (1 << bit)).to_bytes(64, "little")
            assert not ed25519_verify(pub, msg, flipped), f"signature with bit {bit} flipped accepted"
        high_s = sig[:32] + (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
        assert not ed25519_verify(pub, msg, high_s), "S >= L accepted"
    assert _decompress((P + 1).to_bytes(32, "little")) is None, "non-canonical point encoding accepted"

    data = [b"leaf %d" % i for i in range(17)]
    split = lambda n: 1 << ((n - 1).bit_length() - 1)  # largest power of two below n

    def mth(d):  # RFC 9162 §2.1.1, recursively
        return leaf_hash(d[0]) if len(d) == 1 else node_hash(mth(d[:split(len(d))]), mth(d[split(len(d)):]))

    def path(i, d):  # RFC 9162 §2.1.3.1
        if len(d) == 1:
            return []
        k = split(len(d))
        return path(i, d[:k]) + [mth(d[k:])] if i < k else path(i - k, d[k:]) + [mth(d[:k])]

    def subproof(m, d, b):  # RFC 9162 §2.1.4.1
        if m == len(d):
            return [] if b else [mth(d)]
        k = split(len(d))
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    def tampered(proof):  # each hash changed, one hash dropped, one added
        return [proof[:j] + [sha256(proof[j])] + proof[j + 1:] for j in range(len(proof))] \
            + [proof[:-1]] * bool(proof) + [proof + [sha256(b"extra")]]

    tree, junk = Tree(), sha256(b"junk")
    for n in range(1, 18):
        tree.append(leaf_hash(data[n - 1]))
        root = mth(data[:n])
        assert tree.root() == root, f"streaming tree hash wrong at size {n}"
        for i in range(n):
            proof, lh = path(i, data[:n]), leaf_hash(data[i])
            assert verify_inclusion(i, n, lh, proof, root), f"inclusion proof {i} in {n} rejected"
            assert not verify_inclusion(i, n, junk, proof, root), "wrong leaf accepted"
            assert not verify_inclusion(i, n, lh, proof, junk), "wrong root accepted"
            assert n == 1 or not verify_inclusion((i + 1) % n, n, lh, proof, root), "wrong index accepted"
            assert not any(verify_inclusion(i, n, lh, t, root) for t in tampered(proof)), "bad path accepted"
        for m in range(n + 1):
            proof, old = subproof(m, data[:n], True) if m else [], mth(data[:m]) if m else sha256(b"")
            assert verify_consistency(m, n, old, root, proof), f"consistency proof {m} -> {n} rejected"
            if m:
                assert not verify_consistency(m, n, junk, root, proof), "wrong old root accepted"
                assert not verify_consistency(m, n, old, junk, proof), "wrong new root accepted"
                assert not any(verify_consistency(m, n, old, root, t) for t in tampered(proof)), "bad proof accepted"

    # Proofs that reach the root in too few steps (sn not 0 at the end) must fail, even though the hashes match:
    h = [leaf_hash(x) for x in data[:4]]  # an inner node passed off as a leaf; a 4-leaf proof passed off as 5
    assert not verify_inclusion(0, 4, node_hash(h[0], h[1]), [node_hash(h[2], h[3])], mth(data[:4]))
    assert not verify_consistency(2, 5, mth(data[:2]), mth(data[:4]), subproof(2, data[:4], True))

    assert leaf_kind(canonical({"chain_hash": "ab" * 32, "type": "event"})) == "event"
    event = b'{"type":"event","chain_hash":"' + b"ab" * 32 + b'"}'  # keys not sorted
    for leaf in (event, b'{"chain_hash":"AB","type":"event"}', b'{"type":"other"}', b"[]", b"\xff"):
        try:
            leaf_kind(leaf)
            raise AssertionError(f"bad leaf accepted: {leaf!r}")
        except ValueError:
            pass
    print("self-test passed")

def main():
    ap = argparse.ArgumentParser(description="Audit Assent's append-only Merkle log.")
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL (default %(default)s)")
    ap.add_argument("--key", default=os.environ.get("ASSENT_KEY"), help="API read key (default $ASSENT_KEY)")
    ap.add_argument("--verifier-key", metavar="VKEY", help="pinned 'name+keyid+base64' (default: fetch it)")
    ap.add_argument("--checkpoint", metavar="FILE", help="audit this checkpoint instead of the newest")
    ap.add_argument("--old-checkpoint", metavar="FILE", action="append", default=[], help="repeatable")
    ap.add_argument("--receipt", metavar="FILE", action="append", default=[], help="repeatable")
    ap.add_argument("--self-test", action="store_true", help="check this script's crypto, then exit")
    args = ap.parse_args()
    if args.self_test:
        if not __debug__:
            sys.exit("--self-test uses assert: run it without python -O")
        return self_test()
    if not args.key:
        ap.error("an API read key is needed: --key KEY or ASSENT_KEY")

    def read(path, parse=lambda data: data):
        try:
            return parse(pathlib.Path(path).read_bytes())
        except (OSError, ValueError) as e:
            ap.error(f"{path}: {e}")

    args.checkpoint_text = read(args.checkpoint) if args.checkpoint else None
    olds = [(p, read(p)) for p in args.old_checkpoint]
    receipts = [(p, read(p, json.loads)) for p in args.receipt]
    if not all(isinstance(r, dict) for _, r in receipts):
        ap.error("a receipt file must hold a JSON object")
    try:
        summary = audit(Api(args.url, args.key), args, receipts, olds)
    except Broken as e:
        fail(str(e))
    for msg in failures:
        print(f"BROKEN: {msg}")
    if not failures:
        print(summary)
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
