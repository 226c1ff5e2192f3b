#!/usr/bin/python3
"""Seeds for tests/fuzz/fuzz_score.c (first byte: even = protobuf ScoreRequest, odd = JSON body of
POST /v1/score), matching the target's model: inputs bal (acct:bal, user_id), risk (shop:risk,
merchant_id) and the request-time amount.
Run: /usr/bin/python3 tests/fuzz/gen_corpus_score.py  (writes tests/fuzz/corpus/score/)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
from freshet import freshet_pb2 as pb  # noqa: E402

OUT = os.path.join(HERE, "corpus", "score")


def seed(name, kind, body):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(bytes([kind]) + body)


def main():
    os.makedirs(OUT, exist_ok=True)
    r = pb.ScoreRequest(as_of_us=1_700_000_000_000_000)
    r.entities.add(join_key="user_id", values=[b"u1", b"u2"])
    r.entities.add(join_key="merchant_id", values=[b"m1", b"m2"])
    r.features.add(name="amount", values=[12.5, float("nan")])
    seed("pb_two_rows", 0, r.SerializeToString())
    r = pb.ScoreRequest()
    r.features.add(name="amount", values=[1.0])
    seed("pb_missing_entities", 0, r.SerializeToString())
    r = pb.ScoreRequest()
    r.entities.add(join_key="user_id", values=[b"u1"])
    r.features.add(name="bal", values=[3.0])  # bound input given as a request value: refused
    seed("pb_bound_feature", 0, r.SerializeToString())
    body = {"entities": {"user_id": ["u1", "u2"], "merchant_id": ["m1", "m2"]},
            "features": {"amount": [12.5, None]}, "as_of_us": 1_700_000_000_000_000}
    seed("json_two_rows", 1, json.dumps(body).encode())
    seed("json_unknown_field", 1, b'{"entitys": {}}')
    seed("json_ragged", 1, b'{"entities": {"user_id": ["u1"], "merchant_id": ["m1", "m2"]}}')
    seed("json_not_object", 1, b'[1, 2, 3]')


if __name__ == "__main__":
    main()
