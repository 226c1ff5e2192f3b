#!/usr/bin/python3
"""Memory under a flood (issue: limits and backpressure): measures freshetd's RSS while many
connections send large requests as fast as they can without reading replies, plus oversize frames
and half-sent frames, against the configured limits. Prints one JSON line per phase.

    /usr/bin/python3 bench/flood.py [--build-dir build/release] [--conns 32] [--seconds 10]

Never part of the test suite (tests/e2e/test_limits.c checks the limits themselves).
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from freshet import freshet_pb2 as pb  # noqa: E402
import msgpack  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def frame(rid, op, body):
    return struct.pack(">IIH", len(body), rid, op) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="freshet-flood.")
    limits = ["--max-frame", str(4 << 20), "--max-queue", "64", "--max-output-mb", "4",
              "--read-timeout-ms", "2000", "--max-connections", str(a.conns + 8)]
    srv = subprocess.Popen([os.path.join(a.build_dir, "freshetd"), "--data", d + "/data",
                            "--listen", "127.0.0.1:0", "--durability", "async"] + limits,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    host, port = srv.stdout.readline().split()[1].rsplit(":", 1)
    addr = (host, int(port))
    try:
        reg = {"entities": [{"name": "k", "join_key": "k_id"}],
               "views": [{"name": "f", "entity": "k", "ttl": 0,
                          "features": [{"name": "blob", "type": "string"}]}]}
        s = socket.create_connection(addr)
        s.sendall(frame(1, pb.OP_APPLY, pb.ApplyRequest(registry_json=json.dumps(reg)).SerializeToString()))
        s.recv(65536)
        s.close()
        base = rss_kb(srv.pid)
        blob = "x" * 60000
        rows = [pb.Row(view="f", entity=f"e{i}".encode(), event_ts_us=1000 + i,
                       values=msgpack.packb([blob])) for i in range(60)]
        put = pb.PutRequest(rows=rows).SerializeToString()  # ~3.6 MB, under max_frame
        stop = time.monotonic() + a.seconds
        sent = [0] * a.conns

        def flooder(k):
            c = socket.create_connection(addr)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # never read replies
            rid = 0
            try:
                while time.monotonic() < stop:
                    rid += 1
                    c.sendall(frame(rid, pb.OP_PUT, put))
                    sent[k] += 1
            except OSError:
                pass
            c.close()

        peak = base
        threads = [threading.Thread(target=flooder, args=(k,)) for k in range(a.conns)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kb(srv.pid))
            time.sleep(0.05)  # sampling interval of the measurement, not synchronisation
        after = rss_kb(srv.pid)
        print(json.dumps({"phase": "flood_large_puts", "conns": a.conns, "request_mb": round(len(put) / 2**20, 2),
                          "requests_sent": sum(sent), "rss_before_kb": base, "rss_peak_kb": peak,
                          "rss_after_kb": after}))
        # oversize frames: refused from the header alone, connection closed
        refused = 0
        for i in range(200):
            c = socket.create_connection(addr)
            c.sendall(struct.pack(">IIH", 1 << 30, i, pb.OP_PUT))
            data = c.recv(65536)
            refused += bool(data)
            c.close()
        print(json.dumps({"phase": "oversize_frames", "sent": 200, "answered_too_large": refused,
                          "rss_kb": rss_kb(srv.pid)}))
        # half-sent frames: closed after read_timeout_ms
        half = [socket.create_connection(addr) for _ in range(a.conns)]
        for c in half:
            c.sendall(struct.pack(">IIH", 1 << 20, 1, pb.OP_PUT) + b"partial")
        t0 = time.monotonic()
        closed = 0
        for c in half:
            c.settimeout(10)
            try:
                closed += c.recv(1) == b""
            except OSError:
                closed += 1
            c.close()
        print(json.dumps({"phase": "half_sent_frames", "conns": a.conns, "closed_by_server": closed,
                          "seconds": round(time.monotonic() - t0, 2), "rss_kb": rss_kb(srv.pid)}))
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
