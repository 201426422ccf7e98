#!/usr/bin/env python3
"""Webhook measurements for benches/load.sh (standard library only).

  webhooks.py receive PORT DELAY_SECONDS LOG
      a receiver on 127.0.0.1:PORT that answers 204 after DELAY_SECONDS and appends, per
      delivery, how long after the event was recorded it arrived (seconds) to LOG
  webhooks.py pace BASE_URL KEY COUNT INTERVAL_SECONDS
      COUNT acceptances one after another, each INTERVAL_SECONDS after the last began
  webhooks.py summary LOG [SKIP]
      deliveries, p50 and p99 of the latencies in LOG (after the first SKIP lines)
"""

import json
import sys
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def receive(port, delay, log):
    lock = threading.Lock()
    out = open(log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            arrived = time.time()
            try:
                recorded = json.loads(body)["data"]["recorded_at"]
                latency = arrived - datetime.fromisoformat(recorded.replace("Z", "+00:00")).timestamp()
                with lock:
                    out.write(f"{latency:.6f}\n")
            except (ValueError, KeyError, TypeError):
                pass
            if delay > 0:
                time.sleep(delay)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def pace(base, key, count, interval):
    start = time.monotonic()
    for i in range(count):
        body = json.dumps({"document": "service-agreement", "version": 1}).encode()
        req = urllib.request.Request(
            f"{base}/api/v1/subjects/paced-{i}/acceptances",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req).read()
        wait = start + (i + 1) * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def summary(log, skip):
    values = sorted(float(line) for line in open(log).read().split()[skip:])
    if not values:
        print("no deliveries")
        return
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000
    print(f"{len(values)} deliveries, p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {values[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "receive":
        receive(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    elif cmd == "pace":
        pace(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "summary":
        summary(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    else:
        sys.exit(__doc__)
