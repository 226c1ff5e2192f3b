"""`served` exports reproduce online reads; corrections and ties; leakage counted in event mode.

Online reads here use the server's clock (as_of=None); the read time the server used comes back in
the reply (GetResponse.as_of_us, df.attrs["as_of_us"]) and becomes the label time of the export.
Reads happen after the puts they follow have been acknowledged (committed), so there is no race
between a read and a commit in these tests.
"""
import os
import tempfile
import unittest

import numpy as np
import pandas as pd

from support import MIN, SEC, ServerTest

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"},
                 {"name": "merchant", "join_key": "merchant_id"}],
    "views": [
        {"name": "acct", "entity": "user", "ttl": "10m", "retention": 0,
         "features": [{"name": "bal", "type": "double"}, {"name": "n", "type": "int64"},
                      {"name": "note", "type": "string"}]},
        {"name": "shop", "entity": "merchant", "ttl": "1h", "retention": 0,
         "features": [{"name": "risk", "type": "double"}]},
        {"name": "clicks", "entity": "user", "ttl": "90s", "retention": 0,
         "features": [{"name": "c", "type": "int64"}]},
    ],
}
FEATURES = ["acct:bal", "acct:n", "acct:note", "shop:risk", "clicks:c"]


def cells(df, f):
    vals = [None if (x is None or x is pd.NA or (isinstance(x, float) and x != x)) else x
            for x in df[f].tolist()]
    return vals


class ServedParity(ServerTest):
    def test_served_export_equals_online_reads(self):
        c = self.client
        c.apply(REGISTRY)
        now = c.status()["server_time_us"]
        rng = np.random.default_rng(7)
        users = [f"u{k}" for k in range(25)]
        merchants = [f"m{k}" for k in range(8)]
        # the read set: pairs of (user, merchant), including ones never written
        read_users = users + ["ghost1", "ghost2"]
        read_merch = [merchants[k % len(merchants)] for k in range(len(users))] + ["m0", "mx"]
        reads = []
        late = corrections = 0
        written = []
        stream_time = now - 25 * MIN
        for batch in range(8):
            rows = {"acct": [], "shop": [], "clicks": []}
            stream_time += 2 * MIN
            for _ in range(60):
                # mostly recent events, a quarter of them late (up to 15 minutes back)
                back = rng.integers(0, 15 * MIN) if rng.random() < 0.25 else rng.integers(0, 30 * SEC)
                ts = int(stream_time - back)
                u = users[rng.integers(0, len(users))]
                if written and rng.random() < 0.1:
                    # a correction: same entity and event time as a row of an earlier batch
                    prev = written[rng.integers(0, len(written))]
                    u, ts = prev["user_id"], prev["event_timestamp"]
                    corrections += 1
                rows["acct"].append({"user_id": u, "event_timestamp": ts,
                                     "bal": round(float(rng.normal()), 4),
                                     "n": int(rng.integers(0, 100)),
                                     "note": None if rng.random() < 0.1 else f"b{batch}"})
                rows["clicks"].append({"user_id": users[rng.integers(0, len(users))],
                                       "event_timestamp": ts, "c": int(rng.integers(0, 9))})
                if rng.random() < 0.3:
                    rows["shop"].append({"merchant_id": merchants[rng.integers(0, len(merchants))],
                                         "event_timestamp": ts, "risk": round(float(rng.random()), 5)})
                late += back > 5 * MIN
            for v, rs in rows.items():
                if rs:
                    c.put(v, rs)
            written += rows["acct"]
            df = c.get({"user_id": read_users, "merchant_id": read_merch}, FEATURES)
            reads.append(df)
        self.assertGreater(late, 0)
        self.assertGreater(corrections, 0)
        labels = pd.concat([pd.DataFrame({"user_id": d["user_id"], "merchant_id": d["merchant_id"],
                                          "event_timestamp": d.attrs["as_of_us"]})
                            for d in reads], ignore_index=True)
        online = pd.concat(reads, ignore_index=True)
        served = c.export_pit(labels, FEATURES, mode="served", with_status=True, chunk_rows=50)
        self.assertEqual(len(served), len(online))
        seen = set()
        for f in FEATURES:
            self.assertEqual(list(served[f + ":status"]), list(online[f + ":status"]), f)
            self.assertEqual(cells(served, f), cells(online, f), f)
            seen |= set(online[f + ":status"])
        self.assertEqual(seen, {"PRESENT", "EXPIRED", "NOT_FOUND", "NULL"})
        self.assertEqual(served.attrs["leakage"], 0)
        # event mode on the same labels sees the late data the reads did not have
        event = c.export_pit(labels, FEATURES, mode="event", with_status=True)
        differs = sum(cells(event, f) != cells(online, f) for f in FEATURES)
        self.assertGreater(differs, 0, "the stream had no late data visible to event mode")
        self.assertGreater(event.attrs["leakage"], 0)


class Corrections(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)

    def test_correction_visibility_by_mode(self):
        c = self.client
        now = c.status()["server_time_us"]
        ts = now - 2 * MIN
        c.put("acct", [{"user_id": "u", "event_timestamp": ts, "bal": 1.0, "n": 1, "note": "v1"}])
        t1 = c.get(["u"], ["acct"]).attrs["as_of_us"]  # after v1 was written, before v2
        r = c.put("acct", [{"user_id": "u", "event_timestamp": ts, "bal": 2.0, "n": 2,
                            "note": "v2"}])
        self.assertEqual(r["rows_written"], 1)
        online = c.get(["u"], ["acct"])
        t2 = online.attrs["as_of_us"]
        self.assertEqual(online["acct:note"][0], "v2")
        self.assertLess(t1, t2)
        labels = pd.DataFrame({"user_id": ["u"] * 4,
                               "event_timestamp": [ts - 1, ts, t1, t2]})
        served = c.export_pit(labels, ["acct"], mode="served", with_status=True)
        event = c.export_pit(labels, ["acct"], mode="event", with_status=True)
        # ts - 1 and ts: before v1 was even written (served) / before and at the event (event)
        self.assertEqual(list(served["acct:note:status"]),
                         ["NOT_FOUND", "NOT_FOUND", "PRESENT", "PRESENT"])
        self.assertEqual(cells(served, "acct:note"), [None, None, "v1", "v2"])
        self.assertEqual(cells(served, "acct:n"), [None, None, 1, 2])
        self.assertEqual(list(event["acct:note:status"]),
                         ["NOT_FOUND", "PRESENT", "PRESENT", "PRESENT"])
        self.assertEqual(cells(event, "acct:note"), [None, "v2", "v2", "v2"])
        self.assertEqual(cells(event, "acct:bal"), [None, 2.0, 2.0, 2.0])
        # the online read at t1 (served flag) still returns v1, at t2 v2
        self.assertEqual(c.get(["u"], ["acct:note"], as_of=t1, served=True)["acct:note"][0], "v1")
        self.assertEqual(c.get(["u"], ["acct:note"], as_of=t1)["acct:note"][0], "v2")
        # leakage: the correction was written after t1 and after ts, counted per value (3 each)
        self.assertEqual(event.attrs["leakage"], 3 * 2)
        self.assertEqual(served.attrs["leakage"], 0)

    def test_ties_last_write_wins(self):
        c = self.client
        now = c.status()["server_time_us"]
        ts = now - MIN
        # several versions at one event time: within one request and across requests
        c.put("acct", [{"user_id": "t", "event_timestamp": ts, "n": 1},
                       {"user_id": "t", "event_timestamp": ts, "n": 2},
                       {"user_id": "t", "event_timestamp": ts - SEC, "n": 9}])
        labels = pd.DataFrame({"user_id": ["t", "t", "t"],
                               "event_timestamp": [ts - SEC, ts, ts + SEC]})
        got = c.export_pit(labels, ["acct:n"])
        self.assertEqual(cells(got, "acct:n"), [9, 2, 2])
        c.put("acct", [{"user_id": "t", "event_timestamp": ts, "n": 3}])
        got = c.export_pit(labels, ["acct:n"])
        self.assertEqual(cells(got, "acct:n"), [9, 3, 3])
        self.assertEqual(c.get(["t"], ["acct:n"], as_of=ts)["acct:n"][0], 3)
        # rewriting an older value at the same time is a new version, not a no-op
        r = c.put("acct", [{"user_id": "t", "event_timestamp": ts, "n": 1}])
        self.assertEqual((r["rows_written"], r["unchanged"]), (1, 0))
        self.assertEqual(cells(c.export_pit(labels, ["acct:n"]), "acct:n"), [9, 1, 1])


class Leakage(ServerTest):
    def test_late_event_is_leakage_in_event_mode_and_absent_in_served(self):
        c = self.client
        c.apply(REGISTRY)
        now = c.status()["server_time_us"]
        e0, e1 = now - 5 * MIN, now - 3 * MIN
        # A (older) is known before the label time; B (newer event) arrives late, after it
        c.put("acct", [{"user_id": "a", "event_timestamp": e0, "bal": 10.0, "n": 10, "note": "A"}])
        c.put("acct", [{"user_id": "b", "event_timestamp": e0, "bal": 1.0, "n": 1, "note": "x"}])
        label_t = c.get(["a"], ["acct:bal"]).attrs["as_of_us"]
        c.put("acct", [{"user_id": "a", "event_timestamp": e1, "bal": 20.0, "n": 20, "note": "B"},
                       {"user_id": "c", "event_timestamp": e1, "bal": 3.0, "n": None,
                        "note": "late-only"}])
        labels = pd.DataFrame({"user_id": ["a", "b", "c"], "event_timestamp": [label_t] * 3,
                               "y": [1, 0, 1]})
        feats = ["acct:bal", "acct:n", "acct:note"]
        event = c.export_pit(labels, feats, mode="event", with_status=True)
        served = c.export_pit(labels, feats, mode="served", with_status=True)
        self.assertEqual(cells(event, "acct:note"), ["B", "x", "late-only"])
        self.assertEqual(cells(served, "acct:note"), ["A", "x", None])
        self.assertEqual(list(served["acct:note:status"]), ["PRESENT", "PRESENT", "NOT_FOUND"])
        self.assertEqual(cells(served, "acct:bal"), [10.0, 1.0, None])
        # leaked values: a's 3 values and c's 2 non-null ones (its n is NULL, not a value)
        self.assertEqual(event.attrs["leakage"], 5)
        self.assertEqual(list(event["acct:n:status"]), ["PRESENT", "PRESENT", "NULL"])
        self.assertEqual(served.attrs["leakage"], 0)
        # the CLI reports the same count on its summary line
        with tempfile.TemporaryDirectory() as tmp:
            lab = os.path.join(tmp, "labels.csv")
            out = os.path.join(tmp, "out.csv")
            labels.to_csv(lab, index=False)
            p = self.cli("export", "pit", "--labels", lab, "--features", ",".join(feats),
                         "-o", out, check=True)
            summary = p.stderr.strip().splitlines()[-1]
            self.assertIn("leakage: 5 values", summary)
            self.assertIn("PRESENT=8 ", summary)
            p = self.cli("export", "pit", "--labels", lab, "--features", ",".join(feats),
                         "--mode", "served", "-o", out, check=True)
            self.assertNotIn("leakage", p.stderr)
            cli_served = pd.read_csv(out, keep_default_na=False, dtype=str)
            self.assertEqual(list(cli_served["acct:note"]), ["A", "x", ""])
            self.assertEqual(list(cli_served["y"]), ["1", "0", "1"])


if __name__ == "__main__":
    unittest.main()
