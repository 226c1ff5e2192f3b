"""A snapshot export equals get() at the same as_of for every entity, across pages."""
import numpy as np
import pandas as pd

import freshet
from support import MIN, SEC, ServerTest

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"},
                 {"name": "merchant", "join_key": "merchant_id"}],
    "views": [
        {"name": "prof", "entity": "user", "ttl": "10m", "retention": 0,
         "features": [{"name": "x", "type": "double"}, {"name": "s", "type": "string"},
                      {"name": "k", "type": "int64"}]},
        {"name": "prof2", "entity": "user", "ttl": "1h", "retention": 0,
         "features": [{"name": "y", "type": "double"}, {"name": "e", "type": "float_list"}]},
        {"name": "shop", "entity": "merchant", "ttl": "1h", "retention": 0,
         "features": [{"name": "r", "type": "double"}]},
    ],
}
FEATURES = ["prof:x", "prof:s", "prof:k", "prof2:y", "prof2:e"]


def cells(df, f):
    return [None if (x is None or x is pd.NA or (isinstance(x, float) and x != x)) else x
            for x in df[f].tolist()]


class Snapshot(ServerTest):
    def setUp(self):
        super().setUp()
        c = self.client
        c.apply(REGISTRY)
        self.now = c.status()["server_time_us"]
        rng = np.random.default_rng(11)
        self.ids = [f"user-{k:04d}" for k in range(230)]
        prof, prof2 = [], []
        for u in self.ids:
            for _ in range(int(rng.integers(1, 5))):
                ts = int(self.now - rng.integers(0, 40 * MIN))
                prof.append({"user_id": u, "event_timestamp": ts,
                             "x": None if rng.random() < 0.05 else round(float(rng.normal()), 5),
                             "s": f"s{int(rng.integers(0, 1000))}",
                             "k": int(rng.integers(-5, 5))})
            if rng.random() < 0.6:  # only some users have the second view
                ts = int(self.now - rng.integers(0, 90 * MIN))
                prof2.append({"user_id": u, "event_timestamp": ts, "y": float(rng.random()),
                              "e": [1.0, float(rng.integers(0, 9)), 0.5]})
        c.put("prof", prof)
        c.put("prof2", prof2)
        # users that exist only in prof2 are not listed: the first view names the entities
        c.put("prof2", [{"user_id": "only-prof2", "event_timestamp": self.now - SEC, "y": 1.0}])

    def compare(self, snap, as_of):
        c = self.client
        got = c.get(self.ids, FEATURES, as_of=as_of)
        existed = np.zeros(len(self.ids), dtype=bool)
        for f in FEATURES:
            existed |= (got[f + ":status"] != "NOT_FOUND").to_numpy()
        expect_ids = [u for u, e in zip(self.ids, existed) if e]
        self.assertGreater(len(expect_ids), 0)
        self.assertLess(len(expect_ids), len(self.ids))  # some users did not exist yet
        self.assertEqual(list(snap["user_id"]), expect_ids)
        sub = got[existed].reset_index(drop=True)
        for f in FEATURES:
            self.assertEqual(list(snap[f + ":status"]), list(sub[f + ":status"]), f)
            self.assertEqual(cells(snap, f), cells(sub, f), f)

    def test_snapshot_equals_get_at_the_same_time(self):
        as_of = self.now - 12 * MIN
        snap = self.client.export_snapshot(FEATURES, as_of=as_of, with_status=True, limit=17)
        self.assertEqual(snap.attrs["as_of_us"], as_of)
        self.assertEqual(list(snap.columns),
                         ["user_id"] + [x for f in FEATURES for x in (f, f + ":status")])
        statuses = set()
        for f in FEATURES:
            statuses |= set(snap[f + ":status"])
        self.assertEqual(statuses, {"PRESENT", "EXPIRED", "NOT_FOUND", "NULL"})
        self.compare(snap, as_of)
        self.assertNotIn("only-prof2", list(snap["user_id"]))

    def test_snapshot_of_a_view_now(self):
        snap = self.client.export_snapshot("prof", with_status=True)  # default limit, one page
        as_of = snap.attrs["as_of_us"]
        self.assertGreaterEqual(as_of, self.now)
        self.assertEqual(len(snap), len(self.ids))  # every user has a prof version by now
        got = self.client.get(self.ids, ["prof"], as_of=as_of)
        for f in ("prof:x", "prof:s", "prof:k"):
            self.assertEqual(cells(snap, f), cells(got, f), f)
            self.assertEqual(list(snap[f + ":status"]), list(got[f + ":status"]), f)
        # the connection is usable for a PIT export afterwards (the snapshot was released)
        labels = pd.DataFrame({"user_id": self.ids[:3], "event_timestamp": [as_of] * 3})
        pit = self.client.export_pit(labels, ["prof:k"])
        self.assertEqual(cells(pit, "prof:k"), cells(got, "prof:k")[:3])

    def test_views_of_different_entities_are_refused(self):
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.export_snapshot(["prof:x", "shop:r"])
        self.assertEqual(cm.exception.code_name, "BAD_REQUEST")
        self.assertIn("join key", cm.exception.message)
        # and the connection still serves a snapshot
        self.assertEqual(len(self.client.export_snapshot("prof", limit=50)), len(self.ids))
