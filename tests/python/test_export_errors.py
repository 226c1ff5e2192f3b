"""Python export_pit refuses bad labels before sending anything, surfaces server errors with their
code names, and leaves the connection usable (the pinned export snapshot is released)."""
import pandas as pd

import freshet
from support import MIN, ServerTest

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"},
                 {"name": "merchant", "join_key": "merchant_id"}],
    "views": [
        {"name": "acct", "entity": "user", "ttl": "10m",
         "features": [{"name": "bal", "type": "double"}]},
        {"name": "shop", "entity": "merchant", "ttl": "1h",
         "features": [{"name": "risk", "type": "double"}]},
    ],
}


class ExportErrors(ServerTest):
    server_args = ("--max-entities", "500")

    def setUp(self):
        super().setUp()
        c = self.client
        c.apply(REGISTRY)
        self.now = c.status()["server_time_us"]
        c.put("acct", [{"user_id": f"u{k}", "event_timestamp": self.now - MIN, "bal": float(k)}
                       for k in range(20)])
        self.labels = pd.DataFrame({"user_id": [f"u{k % 20}" for k in range(1200)],
                                    "event_timestamp": [self.now] * 1200})

    def assert_usable(self):
        """The connection still exports, and from a fresh snapshot: a value written now is seen
        (it would not be if the failed export had left its snapshot pinned)."""
        self.writes = getattr(self, "writes", 0) + 1
        self.client.put("acct", [{"user_id": "u1", "event_timestamp": self.now - MIN + self.writes,
                                  "bal": 100.0 + self.writes}])
        got = self.client.export_pit(self.labels.head(3), ["acct:bal"], chunk_rows=2)
        self.assertEqual(got["acct:bal"].tolist(), [0.0, 100.0 + self.writes, 2.0])

    def refused(self, code, *args, **kw):
        with self.assertRaises(freshet.FreshetError) as cm:
            self.client.export_pit(*args, **kw)
        self.assertEqual(cm.exception.code_name, code, cm.exception)
        return cm.exception

    def test_bad_labels(self):
        e = self.refused("BAD_ARG", self.labels[["event_timestamp"]], ["acct:bal"])
        self.assertIn('"user_id"', e.message)
        e = self.refused("BAD_ARG", self.labels, ["acct:bal", "shop:risk"])
        self.assertIn('"merchant_id"', e.message)
        e = self.refused("BAD_ARG", self.labels[["user_id"]], ["acct:bal"])
        self.assertIn('"event_timestamp"', e.message)
        bad = self.labels.astype({"event_timestamp": object})
        bad.loc[700, "event_timestamp"] = "not a time"
        e = self.refused("BAD_ARG", bad, ["acct:bal"])
        self.assertIn("row 700", e.message)
        for row, v in ((5, None), (6, ""), (1100, 3.5)):  # 1100: a later chunk
            bad = self.labels.copy()
            bad.loc[row, "user_id"] = v
            e = self.refused("BAD_ARG", bad, ["acct:bal"], chunk_rows=500)
            self.assertIn(f"row {row}", e.message)
        self.refused("BAD_ARG", self.labels, ["acct:bal"], mode="training")
        self.assert_usable()

    def test_unknown_view_and_feature(self):
        self.refused("UNKNOWN_VIEW", self.labels, ["nope:x"])
        self.refused("UNKNOWN_FEATURE", self.labels, ["acct:nope"])
        self.assert_usable()

    def test_server_error_mid_export_leaves_connection_usable(self):
        # chunks of 600 rows exceed max_entities (500): the server refuses every chunk
        e = self.refused("TOO_LARGE", self.labels, ["acct:bal"], chunk_rows=600)
        self.assertIn("max_entities", e.message)
        self.assert_usable()
        # chunks within the limit work, pipelined
        got = self.client.export_pit(self.labels, ["acct:bal"], chunk_rows=500, window=3)
        self.assertEqual(got["acct:bal"].tolist(),
                         [101.0 if k % 20 == 1 else float(k % 20) for k in range(1200)])

    def test_empty_labels(self):
        got = self.client.export_pit(self.labels.head(0), ["acct:bal"], with_status=True)
        self.assertEqual(list(got.columns), ["user_id", "event_timestamp", "acct:bal",
                                             "acct:bal:status"])
        self.assertEqual(len(got), 0)
        self.assertEqual(got.attrs["statuses"]["PRESENT"], 0)
        self.assert_usable()
