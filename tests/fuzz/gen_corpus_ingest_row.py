#!/usr/bin/python3
"""Seeds for tests/fuzz/fuzz_ingest_row.c: protobuf `Row` stream messages for its view `v`
(int64, double, float, bool, string, bytes, float_list).
Run: /usr/bin/python3 tests/fuzz/gen_corpus_ingest_row.py  (writes tests/fuzz/corpus/ingest_row/)."""
import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from freshet import freshet_pb2 as pb  # noqa: E402

OUT = os.path.join(HERE, "corpus", "ingest_row")
NOW = 1795860000000000


def seed(name, row):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(row.SerializeToString())


def main():
    os.makedirs(OUT, exist_ok=True)
    full = msgpack.packb([7, 2.5, 1.5, True, "x", b"\x00\x01", [0.5, 0.25]], use_bin_type=True)
    seed("full", pb.Row(view="v", entity=b"c1", event_ts_us=NOW - 1000, values=full, offset=3))
    seed("nulls", pb.Row(view="v", entity=b"c2", event_ts_us=NOW, values=msgpack.packb([None] * 7)))
    seed("unknown_view", pb.Row(view="nope", entity=b"c1", event_ts_us=NOW, values=full))
    seed("no_values", pb.Row(view="v", entity=b"c1", event_ts_us=NOW))
    seed("future", pb.Row(view="v", entity=b"c1", event_ts_us=NOW + 10**12, values=full))
    seed("type_mismatch", pb.Row(view="v", entity=b"c1", event_ts_us=NOW,
                                 values=msgpack.packb(["not an int"] + [None] * 6)))


if __name__ == "__main__":
    main()
