#!/usr/bin/python3
"""Seeds for tests/fuzz/fuzz_reply.c: well-formed replies of each kind (first byte = the call:
0 Get, 1 Export, 2 Status, 3 Sources, 4 Hello), built with the Python protobuf classes.
Run: /usr/bin/python3 tests/fuzz/gen_corpus_reply.py  (writes tests/fuzz/corpus/reply/)."""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from freshet import freshet_pb2 as pb  # noqa: E402

OUT = os.path.join(HERE, "corpus", "reply")


def seed(name, call, msg):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(bytes([call]) + msg.SerializeToString())


def get_response(done=None):
    r = pb.GetResponse(code=0, entity_count=2, snapshot_txn=9, as_of_us=1_700_000_000_000_000)
    r.views.extend(["acct", "shop"])
    r.columns.add(view=0, index=0, type=1, name="acct:n")        # int64
    r.columns.add(view=0, index=1, type=2, name="acct:bal")      # double
    r.columns.add(view=0, index=2, type=5, name="acct:tag")      # string
    r.columns.add(view=1, index=0, type=7, name="shop:emb")      # float list
    r.columns.add(view=1, index=1, type=3, name="shop:risk")     # float32
    row_a = msgpack.packb([7, 1.5, "x"], use_single_float=False)
    row_s = msgpack.packb([[0.25, 0.5], 0.125], use_single_float=True)
    r.rows.add(status=1, event_ts_us=100, written_at_us=110, values=row_a)
    r.rows.add(status=2, event_ts_us=90, written_at_us=95, values=row_s)
    r.rows.add(status=0)
    r.rows.add(status=1, event_ts_us=80, written_at_us=85, values=msgpack.packb([None, 2.0]))
    if done is not None:
        r.entities.extend([b"e1", b"e2"])
        r.done = done
        if not done:
            r.next_cursor = b"e2"
    return r


def main():
    os.makedirs(OUT, exist_ok=True)
    seed("get", 0, get_response())
    seed("get_error", 0, pb.GetResponse(code=-3, message="unknown feature"))
    seed("export_snapshot", 1, get_response(done=False))
    seed("export_done", 1, get_response(done=True))
    st = pb.StatusResponse(code=0, version="0.1", durability="sync", map_size=1 << 30, map_used=4096,
                           last_txn=5, registry_json='{"entities": [], "views": []}',
                           server_time_us=1, write_seq=3, config="threads = 2\n")
    st.views.add(name="acct", versions=10, newest_event_ts_us=5)
    seed("status", 2, st)
    so = pb.SourcesResponse(code=0)
    so.positions.add(source="stream", partition=3, offset=42)
    seed("sources", 3, so)
    seed("hello", 4, pb.HelloResponse(code=0, role="read", name="job"))
    seed("hello_denied", 4, pb.HelloResponse(code=-7, message="token: not valid"))


if __name__ == "__main__":
    main()
