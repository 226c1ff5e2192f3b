"""Reproduction (not a test: run by hand) of a served-mode parity race in freshetd.

    PYTHONPATH=clients/python /usr/bin/python3 tests/python/repro_served_race.py [BUILD_DIR]

DESIGN.md, Semantics 7: "A training row in `served` mode equals, value for value, what an online
read at t returned." While one connection writes, another reads online (as_of = server now) and
records the reply's as_of_us; a served export at those times then returns values the online reads
did not see. Cause: written_at is stamped from the clock when the writer's group transaction
*begins* (fr_store_write_begin: w->now_us), while the rows become visible only at commit (after
the fsync in sync mode); a Get takes as_of = now and then opens its snapshot, so a read whose as_of
falls between a group's begin and its commit misses versions whose written_at <= as_of.
Prints how many of the reads differ; 0 means the race did not show.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if len(sys.argv) > 1:
    os.environ["FRESHET_BUILD_DIR"] = sys.argv[1]

import pandas as pd  # noqa: E402

import support  # noqa: E402

srv = support.Server()
try:
    w, r = srv.client(), srv.client()
    w.apply({"entities": [{"name": "user", "join_key": "user_id"}],
             "views": [{"name": "v", "entity": "user", "ttl": "1h",
                        "features": [{"name": "x", "type": "int64"}]}]})
    base = w.status()["server_time_us"] - 60_000_000
    stop = False

    def writer():
        k = 0
        while not stop:
            k += 1
            w.put("v", [{"user_id": "e", "event_timestamp": base + k, "x": k}])

    t = threading.Thread(target=writer)
    t.start()
    reads = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        df = r.get(["e"], ["v:x"])
        reads.append((df.attrs["as_of_us"], df["v:x"][0]))
    stop = True
    t.join()
    labels = pd.DataFrame({"user_id": ["e"] * len(reads),
                           "event_timestamp": [a for a, _ in reads]})
    served = r.export_pit(labels, ["v:x"], mode="served")

    def norm(v):
        return None if pd.isna(v) else int(v)
    bad = [(a, norm(v), norm(s)) for (a, v), s in zip(reads, served["v:x"].tolist())
           if norm(v) != norm(s)]
    print(f"{len(reads)} online reads, {len(bad)} differ from a served export at the same as_of")
    for a, v, s in bad[:5]:
        print(f"  as_of={a}: online read returned x={v}, served export returns x={s}")
finally:
    srv.stop()
    srv.cleanup()
