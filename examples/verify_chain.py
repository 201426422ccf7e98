#!/usr/bin/env python3
"""Re-check one subject's hash chain without Assent's code.

    curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/api/v1/subjects/alice/events \
      | python3 examples/verify_chain.py

Each event's chain_hash is SHA-256 over the previous event's chain_hash (64 zeros for the first),
a newline, and the event's canonical JSON: the fields below, keys sorted, no spaces, UTF-8.
"""
import hashlib
import json
import sys

events = json.load(sys.stdin)
prev = "0" * 64
for e in events:
    canonical = {
        "covers": e["covers"],            # [{"document", "sha256", "version"}]
        "document": e["document"],
        "evidence": e["evidence"],        # {"ip", "locale", "user_agent"}, absent values null
        "kind": e["kind"],                # accepted | declined | withdrawn
        "method": e["method"],            # api | consent_page
        "recorded_at": e["recorded_at"],  # RFC 3339 UTC with microseconds
        "recorded_by": e["recorded_by"],  # the API key's name
        "seq": e["seq"],                  # 1, 2, 3 … per subject
        "subject": e["subject"],
        "version": e["version"],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((prev + "\n" + text).encode("utf-8")).hexdigest()
    if e["prev_hash"] != prev or e["chain_hash"] != expected:
        sys.exit(f"BROKEN at seq {e['seq']} (event {e['event_id']})")
    prev = expected
print(f"chain intact: {len(events)} events, head {prev}")
