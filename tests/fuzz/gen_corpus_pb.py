#!/usr/bin/python3
"""Seed corpora of the protobuf fuzz targets, built with the Python protobuf classes:

- corpus/reply/      fuzz_reply.c: first byte = the call (0 Get, 1 Export, 2 Status, 3 Sources,
                     4 Hello), then a well-formed reply body;
- corpus/score/      fuzz_score.c: first byte even = protobuf ScoreRequest, odd = JSON body of
                     POST /v1/score, for its model (bal = acct:bal by user_id, risk = shop:risk by
                     merchant_id, amount given per request);
- corpus/ingest_row/ fuzz_ingest_row.c: protobuf `Row` stream messages for its view `v`
                     (int64, double, float, bool, string, bytes, float_list).

Run: /usr/bin/python3 tests/fuzz/gen_corpus_pb.py  (rewrites those three directories' seeds)."""
import json
import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from freshet import freshet_pb2 as pb  # noqa: E402

NOW = 1795860000000000  # 2026-11-28T10:00:00Z, the targets' clock


def seed(corpus, name, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as fh:
        fh.write(data)


def get_response(done=None):
    r = pb.GetResponse(code=0, entity_count=2, snapshot_txn=9, as_of_us=NOW)
    r.views.extend(["acct", "shop"])
    r.columns.add(view=0, index=0, type=1, name="acct:n")    # int64
    r.columns.add(view=0, index=1, type=2, name="acct:bal")  # double
    r.columns.add(view=0, index=2, type=5, name="acct:tag")  # string
    r.columns.add(view=1, index=0, type=7, name="shop:emb")  # float list
    r.columns.add(view=1, index=1, type=3, name="shop:risk")  # float
    r.rows.add(status=1, event_ts_us=100, written_at_us=110,
               values=msgpack.packb([7, 1.5, "x"], use_single_float=False))
    r.rows.add(status=2, event_ts_us=90, written_at_us=95,
               values=msgpack.packb([[0.25, 0.5], 0.125], use_single_float=True))
    r.rows.add(status=0)
    r.rows.add(status=1, event_ts_us=80, written_at_us=85, values=msgpack.packb([None, 2.0]))
    if done is not None:
        r.entities.extend([b"e1", b"e2"])
        r.done = done
        if not done:
            r.next_cursor = b"e2"
    return r


def reply_seeds():
    def reply(name, call, msg):
        seed("reply", name, bytes([call]) + msg.SerializeToString())
    reply("get", 0, get_response())
    packed = get_response()  # rows in the server's stored form: float runs packed (proto/mp.h)
    packed.rows[0].values = (b"\x93\x07\xd7\x02" + struct.pack("<d", 1.5) + b"\xa1x")
    packed.rows[3].values = b"\x92\xc0\xd6\x01" + struct.pack("<f", 2.0)
    reply("get_packed_runs", 0, packed)
    reply("get_error", 0, pb.GetResponse(code=-3, message="unknown feature"))
    reply("export_snapshot", 1, get_response(done=False))
    reply("export_done", 1, get_response(done=True))
    st = pb.StatusResponse(code=0, version="0.1", durability="sync", map_size=1 << 30, map_used=4096,
                           last_txn=5, registry_json='{"entities": [], "views": []}',
                           server_time_us=1, write_seq=3, config="threads = 2\n")
    st.views.add(name="acct", versions=10, newest_event_ts_us=5)
    reply("status", 2, st)
    so = pb.SourcesResponse(code=0)
    so.positions.add(source="stream", partition=3, offset=42)
    reply("sources", 3, so)
    reply("hello", 4, pb.HelloResponse(code=0, role="read", name="job"))
    reply("hello_denied", 4, pb.HelloResponse(code=-7, message="token: not valid"))


def score_seeds():
    r = pb.ScoreRequest(as_of_us=NOW)
    r.entities.add(join_key="user_id", values=[b"u1", b"u2"])
    r.entities.add(join_key="merchant_id", values=[b"m1", b"m2"])
    r.features.add(name="amount", values=[12.5, float("nan")])
    seed("score", "pb_two_rows", bytes([0]) + r.SerializeToString())
    r = pb.ScoreRequest()
    r.features.add(name="amount", values=[1.0])
    seed("score", "pb_missing_entities", bytes([0]) + r.SerializeToString())
    r = pb.ScoreRequest()
    r.entities.add(join_key="user_id", values=[b"u1"])
    r.features.add(name="bal", values=[3.0])  # a bound input given as a request value: refused
    seed("score", "pb_bound_feature", bytes([0]) + r.SerializeToString())
    body = {"entities": {"user_id": ["u1", "u2"], "merchant_id": ["m1", "m2"]},
            "features": {"amount": [12.5, None]}, "as_of_us": NOW}
    seed("score", "json_two_rows", bytes([1]) + json.dumps(body).encode())
    seed("score", "json_unknown_field", bytes([1]) + b'{"entitys": {}}')
    seed("score", "json_ragged",
         bytes([1]) + b'{"entities": {"user_id": ["u1"], "merchant_id": ["m1", "m2"]}}')
    seed("score", "json_not_object", bytes([1]) + b"[1, 2, 3]")


def ingest_row_seeds():
    def row(name, msg):
        seed("ingest_row", name, msg.SerializeToString())
    full = msgpack.packb([7, 2.5, 1.5, True, "x", b"\x00\x01", [0.5, 0.25]], use_bin_type=True)
    row("full", pb.Row(view="v", entity=b"c1", event_ts_us=NOW - 1000, values=full, offset=3))
    row("nulls", pb.Row(view="v", entity=b"c2", event_ts_us=NOW, values=msgpack.packb([None] * 7)))
    row("unknown_view", pb.Row(view="nope", entity=b"c1", event_ts_us=NOW, values=full))
    row("no_values", pb.Row(view="v", entity=b"c1", event_ts_us=NOW))
    row("future", pb.Row(view="v", entity=b"c1", event_ts_us=NOW + 10**12, values=full))
    row("type_mismatch", pb.Row(view="v", entity=b"c1", event_ts_us=NOW,
                                values=msgpack.packb(["not an int"] + [None] * 6)))


if __name__ == "__main__":
    reply_seeds()
    score_seeds()
    ingest_row_seeds()
