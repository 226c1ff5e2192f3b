"""The Python client decodes a view whose requested columns are all double/float as one float
matrix (numpy) rather than cell by cell. These cases pin that it reads exactly what the stored rows
say, through get, export_pit and export_snapshot:

- a nil value is NULL (value missing), a stored NaN is PRESENT with a NaN value;
- an integer stored in a double column reads as a float;
- rows written before a feature was added read that feature as NULL, whether or not a newer row
  of the same reply has it (rows of different lengths take the cell-by-cell path);
- a view whose other features are not numeric takes the cell-by-cell path;
- NOT_FOUND and EXPIRED rows (and EXPIRED values when asked for).
"""
import math

import msgpack
import numpy as np
import pandas as pd

from freshet import freshet_pb2 as pb
from support import SEC, ServerTest

VIEWS = [
    {"name": "m", "entity": "user", "ttl": "1h",
     "features": [{"name": "a", "type": "double"}, {"name": "b", "type": "float"}]},
    {"name": "s", "entity": "user", "ttl": "1h",
     "features": [{"name": "label", "type": "string"}, {"name": "z", "type": "double"}]},
]
REGISTRY = {"entities": [{"name": "user", "join_key": "user_id"}], "views": VIEWS}
WITH_C = {"entities": REGISTRY["entities"],
          "views": [dict(VIEWS[0], features=VIEWS[0]["features"] + [{"name": "c", "type": "double"}]),
                    VIEWS[1]]}

F32 = float(np.float32(0.1))  # what a float feature written as 0.1 reads back as


class NumericDecode(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.now = self.client.status()["server_time_us"]
        self.t = self.now - 60 * SEC
        # raw rows, so that a NaN is stored as a NaN (the client's put maps NaN to null)
        self.raw_put("m", [("u1", self.t, [1.5, 2.25]),
                           ("u2", self.t, [None, 0.5]),
                           ("u3", self.t, [math.nan, None]),
                           ("u4", self.t, [7, F32]),
                           ("u5", self.now - 7200 * SEC, [3.0, 4.0])])  # beyond the 1h ttl
        self.raw_put("s", [("u1", self.t, ["x", 9.5]), ("u2", self.t, ["y", None])])

    def raw_put(self, view, rows):
        req = pb.PutRequest()
        for ent, ts, vals in rows:
            req.rows.add(view=view, entity=ent.encode(), event_ts_us=ts,
                         values=msgpack.packb(vals, use_single_float=False))
        r = self.client._c().call(pb.OP_PUT, req, pb.PutResponse)
        self.assertEqual(r.code, 0, r.message)

    def check_m(self, df, prefix=""):
        """u1..u6 in order, columns m:a and m:b (statuses in :status)."""
        a, b = df[prefix + "m:a"].to_numpy(), df[prefix + "m:b"].to_numpy()
        self.assertEqual(a.dtype, np.float64)
        self.assertEqual(list(df["m:a:status"]),
                         ["PRESENT", "NULL", "PRESENT", "PRESENT", "EXPIRED", "NOT_FOUND"])
        self.assertEqual(list(df["m:b:status"]),
                         ["PRESENT", "PRESENT", "NULL", "PRESENT", "EXPIRED", "NOT_FOUND"])
        self.assertEqual(a[0], 1.5)
        self.assertTrue(math.isnan(a[1]))
        self.assertTrue(math.isnan(a[2]), "a stored NaN reads as NaN, with status PRESENT")
        self.assertEqual(a[3], 7.0)
        self.assertTrue(np.isnan(a[4:]).all(), "EXPIRED and NOT_FOUND values are withheld")
        self.assertEqual(list(b[[0, 1, 3]]), [2.25, 0.5, F32])
        self.assertTrue(np.isnan(b[[2, 4, 5]]).all())

    def test_get(self):
        df = self.client.get({"user_id": [f"u{i}" for i in range(1, 7)]}, ["m:a", "m:b"])
        self.check_m(df)
        df = self.client.get({"user_id": ["u5"]}, ["m:a"], include_expired=True)
        self.assertEqual(df["m:a"][0], 3.0, "an EXPIRED value when asked for")

    def test_export_pit(self):
        labels = pd.DataFrame({"user_id": [f"u{i}" for i in range(1, 7)],
                               "event_timestamp": [self.now] * 6, "y": range(6)})
        df = self.client.export_pit(labels, ["m:a", "m:b"], with_status=True)
        self.check_m(df)
        self.assertEqual(list(df["y"]), list(range(6)))
        self.assertEqual(df.attrs["statuses"],
                         {"PRESENT": 6, "NULL": 2, "EXPIRED": 2, "NOT_FOUND": 2})

    def test_export_snapshot(self):
        df = self.client.export_snapshot("m", with_status=True).set_index("user_id")
        self.assertEqual(df.loc["u1", "m:a"], 1.5)
        self.assertEqual(df.loc["u2", "m:a:status"], "NULL")
        self.assertTrue(math.isnan(df.loc["u3", "m:a"]))
        self.assertEqual(df.loc["u3", "m:a:status"], "PRESENT")
        self.assertEqual(df.loc["u4", "m:a"], 7.0)

    def test_feature_added_later_is_null_for_older_rows(self):
        self.client.apply(WITH_C)
        self.client._views = None  # re-read the registry
        ids = {"user_id": ["u1", "u2", "u4"]}
        # every row of this reply predates c: one matrix, c past its width
        df = self.client.get(ids, ["m:a", "m:c"])
        self.assertEqual(list(df["m:c:status"]), ["NULL", "NULL", "NULL"])
        self.assertTrue(np.isnan(df["m:c"].to_numpy()).all())
        self.assertEqual(df["m:a"][0], 1.5)
        self.assertTrue(math.isnan(df["m:a"][1]))
        self.assertEqual(df["m:a"][2], 7.0)
        self.assertEqual(list(df["m:a:status"]), ["PRESENT", "NULL", "PRESENT"])
        # a newer row with c: rows of two lengths in one reply
        self.raw_put("m", [("u6", self.t, [0.25, 0.5, 0.75])])
        df = self.client.get({"user_id": ["u1", "u6", "u2"]}, ["m:a", "m:c"])
        self.assertEqual(list(df["m:c:status"]), ["NULL", "PRESENT", "NULL"])
        self.assertEqual(df["m:c"][1], 0.75)
        self.assertEqual(list(df["m:a"][:2]), [1.5, 0.25])
        self.assertTrue(math.isnan(df["m:a"][2]))
        # a snapshot in pages of 3 (u1 u2 u3 | u4 u5 u6): a page of one width (one matrix) and a
        # page of two widths (cell by cell), joined into one column
        snap = self.client.export_snapshot("m", limit=3, with_status=True).set_index("user_id")
        self.assertEqual(list(snap.index), ["u1", "u2", "u3", "u4", "u5", "u6"])
        self.assertEqual(list(snap["m:c:status"]),
                         ["NULL", "NULL", "NULL", "NULL", "EXPIRED", "PRESENT"])
        self.assertEqual(snap.loc["u6", "m:c"], 0.75)
        self.assertEqual(snap["m:c"].dtype, np.float64)
        self.assertEqual(list(snap["m:a:status"]),
                         ["PRESENT", "NULL", "PRESENT", "PRESENT", "EXPIRED", "PRESENT"])
        self.assertEqual([snap.loc[e, "m:a"] for e in ("u1", "u4", "u6")], [1.5, 7.0, 0.25])
        self.assertTrue(snap[["m:a", "m:b"]].loc[["u2", "u5"], "m:a"].isna().all())

    def test_view_with_non_numeric_features(self):
        df = self.client.get({"user_id": ["u1", "u2", "u3"]}, ["s:z"])
        self.assertEqual(df["s:z"][0], 9.5)
        self.assertEqual(list(df["s:z:status"]), ["PRESENT", "NULL", "NOT_FOUND"])
        df = self.client.get({"user_id": ["u1", "u2"]}, ["s:label", "s:z"])
        self.assertEqual(list(df["s:label"]), ["x", "y"])
