#!/usr/bin/env python3
"""Re-check one subject's hash chain without Assent's code.

    curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/api/v1/subjects/alice/events \
      | python3 examples/verify_chain.py

Each event's chain_hash is SHA-256 over the previous event's chain_hash (64 zeros for the first),
a newline, and the event's canonical JSON: the fields below, keys sorted, no spaces, UTF-8.
Personal values (the subject id, the IP address, the user agent) enter the chain only as salted
hashes, SHA-256(salt + "\n" + field + "\n" + value); while they are held, the events carry their
salts, and this script checks that each opens to the value shown. Erased events carry neither:
their chain still checks.
"""
import hashlib
import json
import sys


def salted(salt, field, value):
    return hashlib.sha256(f"{salt}\n{field}\n{value}".encode("utf-8")).hexdigest()


events = json.load(sys.stdin)
prev = "0" * 64
for e in events:
    h = e["hashes"]                       # what the chain commits to in place of personal values
    canonical = {
        "covers": e["covers"],            # [{"document", "sha256", "version"}]
        "document": e["document"],        # null for an erasure request or an erasure
        "evidence": {"ip": h["ip"], "locale": e["evidence"]["locale"], "user_agent": h["user_agent"]},
        "kind": e["kind"],                # accepted | declined | withdrawn | erasure_requested | erased
        "method": e["method"],            # api | consent_page | me | cli
        "recorded_at": e["recorded_at"],  # RFC 3339 UTC with microseconds
        "recorded_by": e["recorded_by"],  # the API key's name
        "seq": e["seq"],                  # 1, 2, 3 … per subject
        "subject": h["subject"],
        "version": e["version"],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((prev + "\n" + text).encode("utf-8")).hexdigest()
    if e["prev_hash"] != prev or e["chain_hash"] != expected:
        sys.exit(f"BROKEN at seq {e['seq']} (event {e['event_id']})")
    if h["salt"] is not None and salted(h["salt"], "subject", e["subject"]) != h["subject"]:
        sys.exit(f"BROKEN at seq {e['seq']}: the subject id shown is not the one the chain holds")
    if h["evidence_salt"] is not None:
        for field in ("ip", "user_agent"):
            value = e["evidence"][field]
            shown = None if value is None else salted(h["evidence_salt"], field, value)
            if shown != h[field]:
                sys.exit(f"BROKEN at seq {e['seq']}: the {field} shown is not the one the chain holds")
    prev = expected
print(f"chain intact: {len(events)} events, head {prev}")
