"""Python client basics: every type round-trips, statuses, timestamps in every accepted form,
idempotent and exactly-once writes, errors with their code names."""
import datetime as dt
import json
import threading
import unittest

import numpy as np
import pandas as pd

import freshet
from support import HOUR, MIN, SEC, ServerTest

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"}],
    "views": [
        {"name": "all_types", "entity": "user", "ttl": "10m", "retention": 0,
         "features": [{"name": "i", "type": "int64"}, {"name": "d", "type": "double"},
                      {"name": "f", "type": "float"}, {"name": "b", "type": "bool"},
                      {"name": "s", "type": "string"}, {"name": "by", "type": "bytes"},
                      {"name": "fl", "type": "float_list", "dim": 3}]},
    ],
}
FEATURES = ["i", "d", "f", "b", "s", "by", "fl"]


class ClientBasics(ServerTest):
    def setUp(self):
        super().setUp()
        r = self.client.apply(REGISTRY)
        self.assertEqual(r["views_added"], 1)
        self.now = self.client.status()["server_time_us"]

    def test_apply_is_idempotent(self):
        r = self.client.apply(REGISTRY)
        self.assertEqual((r["views_added"], r["features_added"], r["entities_added"],
                          r["views_changed"]), (0, 0, 0, 0))
        names = [v["name"] for v in self.client.status()["registry"]["views"]]
        self.assertEqual(names, ["all_types"])

    def test_round_trip_every_type(self):
        t = self.now - 5 * SEC
        rows = [
            {"user_id": "u1", "event_timestamp": t, "i": -(2 ** 62) + 7, "d": 0.1, "f": 0.1,
             "b": True, "s": "héllo, \"world\"", "by": b"\x00\xff\x01", "fl": [0.5, -1.25, 3.0]},
            {"user_id": 42, "event_timestamp": t, "i": np.int64(5), "d": np.float64(-2.5e300),
             "f": np.float32(1e-3), "b": np.bool_(False), "s": "", "by": b"",
             "fl": np.array([1e-7, 2.0, -0.0], dtype=np.float64)},
        ]
        res = self.client.put("all_types", rows)
        self.assertEqual(res, {"rows_written": 2, "duplicates": 0, "unchanged": 0,
                               "high_water": -1, "busy_retries": 0})
        df = self.client.get(["u1", "42"], ["all_types"])
        self.assertEqual(list(df["entity"]), ["u1", "42"])
        cols = [c for c in df.columns if c != "entity"]
        expect_cols = []
        for f in FEATURES:
            expect_cols += [f"all_types:{f}", f"all_types:{f}:status",
                            f"all_types:{f}:event_timestamp"]
        self.assertEqual(cols, expect_cols)
        r0, r1 = df.iloc[0], df.iloc[1]
        self.assertEqual(r0["all_types:i"], -(2 ** 62) + 7)
        self.assertEqual(r0["all_types:d"], 0.1)
        self.assertEqual(r0["all_types:f"], float(np.float32(0.1)))
        self.assertNotEqual(r0["all_types:f"], 0.1)  # really stored as float32
        self.assertIs(bool(r0["all_types:b"]), True)
        self.assertEqual(r0["all_types:s"], "héllo, \"world\"")
        self.assertEqual(r0["all_types:by"], b"\x00\xff\x01")
        self.assertEqual(r0["all_types:fl"], [0.5, -1.25, 3.0])
        self.assertEqual(r1["all_types:i"], 5)
        self.assertEqual(r1["all_types:d"], -2.5e300)
        self.assertEqual(r1["all_types:f"], float(np.float32(1e-3)))
        self.assertIs(bool(r1["all_types:b"]), False)
        self.assertEqual(r1["all_types:s"], "")
        self.assertEqual(r1["all_types:by"], b"")
        self.assertEqual(r1["all_types:fl"], [float(np.float32(1e-7)), 2.0, -0.0])
        for f in FEATURES:
            self.assertEqual(list(df[f"all_types:{f}:status"]), ["PRESENT", "PRESENT"])
            self.assertEqual(list(df[f"all_types:{f}:event_timestamp"]),
                             [pd.Timestamp(t * 1000, tz="UTC")] * 2)
        self.assertEqual(str(df["all_types:i"].dtype), "Int64")
        self.assertEqual(str(df["all_types:d"].dtype), "float64")
        self.assertEqual(str(df["all_types:b"].dtype), "boolean")
        self.assertEqual(str(df["all_types:d:event_timestamp"].dtype), "datetime64[ns, UTC]")
        # the server's read time is returned and sits between our clock reads
        self.assertGreaterEqual(df.attrs["as_of_us"], self.now)
        self.assertLessEqual(df.attrs["as_of_us"], self.client.status()["server_time_us"])

    def test_timestamp_forms(self):
        base = (self.now // SEC - 60) * SEC  # whole second, a minute ago
        ts = pd.Timestamp(base * 1000, tz="UTC")
        forms = {
            "int": base,
            "datetime_utc": ts.to_pydatetime(),
            "datetime_naive": ts.tz_localize(None).to_pydatetime(),
            "timestamp": ts,
            "timestamp_other_zone": ts.tz_convert("Europe/Paris"),
            "rfc3339": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rfc3339_offset": ts.tz_convert("Asia/Kolkata").isoformat(),
            "digits": str(base),
            "datetime64": np.datetime64(base, "us"),
        }
        rows = [{"user_id": k, "event_timestamp": v, "i": n} for n, (k, v) in enumerate(forms.items())]
        self.assertEqual(self.client.put("all_types", rows)["rows_written"], len(forms))
        df = self.client.get(list(forms), ["all_types:i"])
        self.assertEqual(list(df["all_types:i:event_timestamp"]), [ts] * len(forms))
        self.assertEqual(list(df["all_types:i"]), list(range(len(forms))))
        # as_of in any form too: one second before the events there is nothing
        for as_of in (base - 1, ts - pd.Timedelta("1us"), (ts - pd.Timedelta("1s")).isoformat()):
            got = self.client.get(["int"], ["all_types:i"], as_of=as_of)
            self.assertEqual(got["all_types:i:status"][0], "NOT_FOUND", as_of)
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", [{"user_id": "x", "event_timestamp": "yesterday-ish"}])
        self.assertEqual(cm.exception.code_name, "BAD_ARG")
        self.assertIn("event_timestamp", cm.exception.message)

    def test_statuses(self):
        self.client.put("all_types", [
            {"user_id": "fresh", "event_timestamp": self.now - MIN, "i": 1, "d": 1.5},
            {"user_id": "old", "event_timestamp": self.now - 20 * MIN, "i": 2, "d": 2.5},
            {"user_id": "nulls", "event_timestamp": self.now - MIN, "i": None, "d": float("nan")},
        ])
        as_of = self.now
        df = self.client.get(["fresh", "old", "nulls", "never"], ["all_types:i", "all_types:d"],
                             as_of=as_of)
        self.assertEqual(list(df["all_types:i:status"]), ["PRESENT", "EXPIRED", "NULL", "NOT_FOUND"])
        self.assertEqual(list(df["all_types:d:status"]), ["PRESENT", "EXPIRED", "NULL", "NOT_FOUND"])
        self.assertEqual(df["all_types:i"][0], 1)
        self.assertTrue(pd.isna(df["all_types:i"][1]))  # EXPIRED: withheld
        self.assertTrue(pd.isna(df["all_types:d"][1]))
        self.assertTrue(pd.isna(df["all_types:i"][2]))
        self.assertTrue(pd.isna(df["all_types:i"][3]))
        ev = df["all_types:i:event_timestamp"]
        self.assertEqual(ev[1], pd.Timestamp((self.now - 20 * MIN) * 1000, tz="UTC"))
        self.assertTrue(pd.isna(ev[3]))
        # the expired value on request, with its age
        df = self.client.get(["old"], ["all_types:i", "all_types:d"], as_of=as_of,
                             include_expired=True)
        self.assertEqual(df["all_types:i:status"][0], "EXPIRED")
        self.assertEqual(df["all_types:i"][0], 2)
        self.assertEqual(df["all_types:d"][0], 2.5)
        # exactly at the ttl is fresh, one microsecond later expired
        t = self.now - 20 * MIN
        at = self.client.get(["old"], ["all_types:i"], as_of=t + 10 * MIN)
        after = self.client.get(["old"], ["all_types:i"], as_of=t + 10 * MIN + 1)
        self.assertEqual((at["all_types:i:status"][0], after["all_types:i:status"][0]),
                         ("PRESENT", "EXPIRED"))

    def test_idempotent_replay_is_unchanged(self):
        rows = [{"user_id": f"u{k}", "event_timestamp": self.now - k * SEC, "i": k,
                 "fl": [k, k, k]} for k in range(30)]
        self.assertEqual(self.client.put("all_types", rows)["rows_written"], 30)
        before = self.client.status()["views"][0]["versions"]
        r = self.client.put("all_types", rows)
        self.assertEqual((r["rows_written"], r["unchanged"]), (0, 30))
        self.assertEqual(self.client.status()["views"][0]["versions"], before)
        rows[3]["i"] = 1000  # a changed value is a new version
        r = self.client.put("all_types", rows)
        self.assertEqual((r["rows_written"], r["unchanged"]), (1, 29))
        self.assertEqual(self.client.get(["u3"], ["all_types:i"])["all_types:i"][0], 1000)

    def test_exactly_once_with_source_offsets(self):
        def rows(lo, hi, value):
            return [{"user_id": f"e{k % 7}", "event_timestamp": self.now - (100 - k) * SEC,
                     "i": value, "offset": k} for k in range(lo, hi)]
        r = self.client.put("all_types", rows(0, 10, 1), source="orders", partition=2)
        self.assertEqual((r["rows_written"], r["duplicates"], r["high_water"]), (10, 0, 9))
        # a replay from offset 0 with different values: 0..9 are duplicates and change nothing
        r = self.client.put("all_types", rows(0, 15, 2), source="orders", partition=2)
        self.assertEqual((r["rows_written"], r["duplicates"], r["high_water"]), (5, 10, 14))
        got = self.client.get([f"e{k}" for k in range(7)], ["all_types:i"])
        # e0..e6: offsets 10..14 (value 2) hit e3, e4, e5, e6, e0
        self.assertEqual(list(got["all_types:i"]), [2, 1, 1, 2, 2, 2, 2])
        self.assertEqual(self.client.sources(),
                         [{"source": "orders", "partition": 2, "offset": 14}])
        # another partition is independent; a DataFrame works the same way
        df = pd.DataFrame({"user_id": ["p"] * 3, "event_timestamp": [self.now - 3 * SEC] * 3,
                           "i": [7, 8, 9], "offset": [0, 1, 2]})
        r = self.client.put("all_types", df, source="orders", partition=3)
        self.assertEqual((r["rows_written"], r["duplicates"]), (3, 0))
        self.assertEqual(sorted((p["partition"], p["offset"]) for p in self.client.sources()),
                         [(2, 14), (3, 2)])
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", [{"user_id": "x", "event_timestamp": self.now}],
                            source="orders")
        self.assertEqual(cm.exception.code_name, "BAD_ARG")

    def test_dataframe_put_with_nulls(self):
        df = pd.DataFrame({
            "user_id": ["a", "b", "c"],
            "event_timestamp": pd.to_datetime([self.now - 3 * SEC] * 3, unit="us", utc=True),
            "i": pd.array([1, None, 3], dtype="Int64"),
            "d": [1.0, np.nan, 3.0],
            "s": ["x", None, "z"],
            "fl": [[1, 2, 3], None, np.array([4, 5, 6])],
        })
        self.assertEqual(self.client.put("all_types", df)["rows_written"], 3)
        got = self.client.get(["a", "b", "c"], ["all_types:i", "all_types:d", "all_types:s",
                                                "all_types:fl", "all_types:b"])
        self.assertEqual(list(got["all_types:i:status"]), ["PRESENT", "NULL", "PRESENT"])
        self.assertEqual(got["all_types:i"].tolist(), [1, pd.NA, 3])
        self.assertEqual(got["all_types:s"].tolist(), ["x", None, "z"])
        self.assertEqual(got["all_types:fl"].tolist(), [[1.0, 2.0, 3.0], None, [4.0, 5.0, 6.0]])
        self.assertEqual(list(got["all_types:b:status"]), ["NULL"] * 3)  # column not written

    def test_dataframe_integer_ids(self):
        """Integer id columns are encoded in one numpy step; a missing id is still refused, naming
        its row, before anything is sent."""
        ts = [self.now - SEC] * 3
        df = pd.DataFrame({"user_id": np.array([7, -2, 2**62], dtype=np.int64),
                           "event_timestamp": ts, "i": [1, 2, 3]})
        self.assertEqual(self.client.put("all_types", df)["rows_written"], 3)
        got = self.client.get([7, -2, 2**62], ["all_types:i"])
        self.assertEqual(got["all_types:i"].tolist(), [1, 2, 3])
        self.assertEqual(self.client.get(["7"], ["all_types:i"])["all_types:i"][0], 1,
                         "an integer id is its decimal text")
        bad = pd.DataFrame({"user_id": pd.array([5, None, 6], dtype="Int64"),
                            "event_timestamp": ts, "i": [1, 2, 3]})
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", bad)
        self.assertEqual(cm.exception.code_name, "BAD_ARG")
        self.assertIn("row 1", cm.exception.message)
        self.assertEqual(list(self.client.get([5], ["all_types:i"])["all_types:i:status"]),
                         ["NOT_FOUND"], "nothing of the refused put was written")

    def test_multi_frame_put(self):
        n = 4321  # five frames of 1000, pipelined
        rows = [{"user_id": f"m{k}", "event_timestamp": self.now - SEC, "i": k} for k in range(n)]
        self.assertEqual(self.client.put("all_types", rows)["rows_written"], n)
        got = self.client.get([f"m{k}" for k in range(0, n, 7)], ["all_types:i"])
        self.assertEqual(got["all_types:i"].tolist(), list(range(0, n, 7)))

    def test_errors_have_code_names(self):
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("no_such_view", [{"user_id": "a", "event_timestamp": self.now}])
        self.assertEqual(cm.exception.code_name, "UNKNOWN_VIEW")
        self.assertEqual(cm.exception.code, -2)
        self.assertIn("no_such_view", cm.exception.message)
        with self.assertRaises(freshet.FreshetError) as cm:  # the server's refusal
            self.client.get(["a"], ["no_such_view:x"])
        self.assertEqual(cm.exception.code_name, "UNKNOWN_VIEW")
        self.assertIn("no_such_view", cm.exception.message)
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.get(["a"], ["all_types:nope"])
        self.assertEqual(cm.exception.code_name, "UNKNOWN_FEATURE")
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now, "zz": 1}])
        self.assertEqual(cm.exception.code_name, "UNKNOWN_FEATURE")
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now + HOUR}])
        self.assertEqual(cm.exception.code_name, "FUTURE_EVENT")
        # a server-side type error in the second frame: that frame is refused as a whole
        rows = [{"user_id": f"t{k}", "event_timestamp": self.now - SEC, "fl": [1, 2, 3]}
                for k in range(2500)]
        rows[1700]["fl"] = [1.0, 2.0]  # dim is 3
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.put("all_types", rows)
        self.assertEqual(cm.exception.code_name, "TYPE_MISMATCH")
        self.assertEqual(cm.exception.row_index, 1700)
        self.assertIn("fl", cm.exception.message)
        got = self.client.get(["t0", "t999", "t1000", "t1700", "t1999"], ["all_types:fl"])
        self.assertEqual(list(got["all_types:fl:status"]),
                         ["PRESENT", "PRESENT", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"])
        with self.assertRaises(freshet.FreshetError) as cm:  # caught before sending
            self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now,
                                           "i": "seven"}])
        self.assertEqual(cm.exception.code_name, "TYPE_MISMATCH")
        self.assertFalse(cm.exception.retryable)
        # the connection survived every error
        self.assertEqual(self.client.get(["t0"], ["all_types:fl"])["all_types:fl"][0], [1.0, 2.0, 3.0])

    def test_two_entity_keys_in_one_read(self):
        self.client.apply({"entities": [{"name": "shop", "join_key": "shop_id"}],
                           "views": [{"name": "shop_v", "entity": "shop", "ttl": "1h",
                                      "features": [{"name": "rate", "type": "double"}]}]})
        self.client.put("all_types", [{"user_id": "u", "event_timestamp": self.now - SEC, "i": 1}])
        self.client.put("shop_v", [{"shop_id": "s", "event_timestamp": self.now - SEC, "rate": 0.5}])
        df = self.client.get({"user_id": ["u", "nobody"], "shop_id": ["s", "s"]},
                             ["all_types:i", "shop_v:rate"])
        self.assertEqual(list(df.columns[:2]), ["user_id", "shop_id"])
        self.assertEqual(df["all_types:i"].tolist(), [1, pd.NA])
        self.assertEqual(df["shop_v:rate"].tolist(), [0.5, 0.5])
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.get({"user_id": ["u"], "shop_id": ["s", "s"]}, ["all_types:i"])
        self.assertEqual(cm.exception.code_name, "BAD_ARG")

    def test_from_addr_and_context_manager(self):
        with freshet.Client.from_addr(self.server.addr) as c:
            self.assertEqual(c.status()["durability"], "sync")
        with self.assertRaises(freshet.FreshetError) as cm:
            freshet.Client.from_addr("no-port")
        self.assertEqual(cm.exception.code_name, "BAD_ARG")


class BusyRetries(ServerTest):
    """A tiny write queue makes the server answer BUSY; put resends in order, so with a source
    every row is written exactly once and none is lost as a 'duplicate'."""
    server_args = ("--max-queue", "1")

    def test_busy_is_retried_in_order(self):
        import threading
        c = self.client
        c.apply(REGISTRY)
        now = c.status()["server_time_us"]
        n = 6000
        results, errors = {}, []

        def writer(part):
            try:
                with self.server.client() as w:
                    rows = [{"user_id": f"b{part}-{k % 500}", "event_timestamp": now - n + k,
                             "i": k, "offset": k} for k in range(n)]
                    results[part] = w.put("all_types", rows, source="bulk", partition=part,
                                          batch_rows=100)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(p,)) for p in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for part in range(3):
            r = results[part]
            self.assertEqual((r["rows_written"], r["duplicates"], r["high_water"]), (n, 0, n - 1),
                             r)
        self.assertEqual(sorted((p["partition"], p["offset"]) for p in c.sources()),
                         [(0, n - 1), (1, n - 1), (2, n - 1)])
        got = c.get([f"b{p}-{k}" for p in range(3) for k in (0, 499)], ["all_types:i"])
        self.assertEqual(got["all_types:i"].tolist(), [n - 500, n - 1] * 3)
        print(f"    busy retries: {[results[p]['busy_retries'] for p in range(3)]}")


class ClientRegressions(ServerTest):
    """Bugs found by an audit of the client, each fixed with this test."""

    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.now = self.client.status()["server_time_us"]

    def test_a_refused_put_larger_than_the_send_window_raises_instead_of_spinning(self):
        # the server refuses row 0 (an hour in the future) while rows past the first
        # PUT_WINDOW x batch_rows are still unsent: put used to loop forever at 100% CPU
        rows = [{"user_id": f"w{i}", "event_timestamp": self.now - SEC, "i": i} for i in range(60)]
        rows[0]["event_timestamp"] = self.now + HOUR
        outcome = []

        def put():
            try:
                self.client.put("all_types", rows, batch_rows=1)
                outcome.append("returned")
            except freshet.FreshetError as e:
                outcome.append(e.code_name)

        th = threading.Thread(target=put, daemon=True)  # daemon: a spinning put must not hang us
        th.start()
        th.join(60)
        self.assertFalse(th.is_alive(), "put still running after 60 s (spinning)")
        self.assertEqual(outcome, ["FUTURE_EVENT"])

    def test_apply_returns_the_registry_and_put_sees_a_feature_added_since(self):
        self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now - SEC, "i": 1}])
        grown = json.loads(json.dumps(REGISTRY))
        grown["views"][0]["features"].append({"name": "extra", "type": "int64"})
        r = self.client.apply(grown)
        self.assertEqual(r["features_added"], 1)
        self.assertIsNotNone(r["registry"], "apply returns the registry it left")
        names = [f["name"] for f in r["registry"]["views"][0]["features"]]
        self.assertIn("extra", names)
        res = self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now,
                                             "extra": 7}])
        self.assertEqual(res["rows_written"], 1)
        # and a feature another client added: put refreshes its cache once before refusing
        other = self.server.client()
        try:
            grown["views"][0]["features"].append({"name": "later", "type": "int64"})
            other.apply(grown)
        finally:
            other.close()
        res = self.client.put("all_types", [{"user_id": "a", "event_timestamp": self.now,
                                             "later": 8}])
        self.assertEqual(res["rows_written"], 1)
        df = self.client.get(["a"], ["all_types:extra", "all_types:later"])
        self.assertEqual(df.iloc[0]["all_types:later"], 8)


if __name__ == "__main__":
    unittest.main()
