"""The server stores stretches of float32/float64 features as packed runs (msgpack ext types 1
and 2 holding little-endian values; src/proto/mp.h). The Python client must read every stored
form back cell for cell:

- rows that are exactly one run go through one numpy step (_packed_matrix), others through the
  cell-by-cell path (_unpack_row), and both give the same values;
- a nil ends a run and reads as NULL, a NaN inside a run stays a PRESENT NaN;
- runs followed by other features (an int, a string) keep those features in place;
- a payload sent already packed by a client is accepted and reads the same;
- a malformed ext item is a clear BAD_REQUEST, not a crash or a wrong value;
- put of a DataFrame to an all-double (all-float) view sends the packed form itself, byte for
  byte what the server would have stored (a later put of the same rows as dicts is `unchanged`);
  a row with a missing value goes value by value; a value out of the float32 range is BAD_ARG
  naming the row, on both paths.
"""
import math
import struct
import unittest

import msgpack
import numpy as np
import pandas as pd

from freshet import FreshetError
from freshet import client as fc
from freshet import freshet_pb2 as pb
from support import SEC, ServerTest

F32 = [f"f{i}" for i in range(6)]
VIEWS = [
    {"name": "q", "entity": "user", "ttl": "1h",
     "features": [{"name": n, "type": "float"} for n in F32]},
    {"name": "d", "entity": "user", "ttl": "1h",
     "features": [{"name": f"g{i}", "type": "double"} for i in range(5)]},
    {"name": "mix", "entity": "user", "ttl": "1h",
     "features": ([{"name": n, "type": "float"} for n in F32]
                  + [{"name": "n", "type": "int64"}, {"name": "s", "type": "string"}])},
]
REGISTRY = {"entities": [{"name": "user", "join_key": "user_id"}], "views": VIEWS}


def f32(x):
    return float(np.float32(x))


def run_ext(code, fmt, values):
    """A packed run as a client could send it: ext type code, little-endian values."""
    return msgpack.ExtType(code, struct.pack("<" + fmt * len(values), *values))


class PackedRuns(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.now = self.client.status()["server_time_us"]
        self.t = self.now - 60 * SEC
        self.qrows = {
            "u1": [f32(0.1 * i) for i in range(6)],
            "u2": [f32(-1.5), f32(2.25), math.nan, f32(1e-7), f32(3), f32(-0.0)],
            "u3": [f32(1), f32(2), f32(3), f32(4), None, f32(6)],  # the nil ends the run
        }
        self.raw_put("q", [(e, self.t, v) for e, v in self.qrows.items()], single=True)
        self.drows = {"u1": [0.1, -2.5e-300, 1e300, 7.0, math.nan],
                      "u2": [1.0, 2.0, 3.0, 4.0, 5.0]}
        self.raw_put("d", [(e, self.t, v) for e, v in self.drows.items()], single=False)
        self.raw_put("mix", [("u1", self.t, [f32(i) for i in range(6)] + [42, "x"]),
                             ("u2", self.t, [None] * 6 + [7, None])], single=True)

    def raw_put(self, view, rows, single):
        req = pb.PutRequest()
        for ent, ts, vals in rows:
            payload = vals if isinstance(vals, bytes) else msgpack.packb(
                vals, use_single_float=single)
            req.rows.add(view=view, entity=ent.encode(), event_ts_us=ts, values=payload)
        r = self.client._c().call(pb.OP_PUT, req, pb.PutResponse)
        self.assertEqual(r.code, 0, r.message)
        return r

    def check_cells(self, df, view, names, want):
        for e, row in want.items():
            i = list(df["user_id"]).index(e)
            for n, w in zip(names, row):
                got, st = df[f"{view}:{n}"][i], df[f"{view}:{n}:status"][i]
                if w is None:
                    self.assertEqual(st, "NULL", f"{e} {n}")
                    self.assertTrue(math.isnan(got), f"{e} {n}")
                elif math.isnan(w):
                    self.assertEqual(st, "PRESENT", f"{e} {n}: a stored NaN is a value")
                    self.assertTrue(math.isnan(got), f"{e} {n}")
                else:
                    self.assertEqual(st, "PRESENT", f"{e} {n}")
                    self.assertEqual(struct.pack("<d", got), struct.pack("<d", w), f"{e} {n}")

    def test_get_reads_every_stored_form(self):
        ents = {"user_id": ["u1", "u2", "u3"]}
        df = self.client.get(ents, [f"q:{n}" for n in F32])
        self.check_cells(df, "q", F32, self.qrows)
        # u1 and u2 are single runs (the numpy step), u3 is not: one reply each way
        df = self.client.get({"user_id": ["u1", "u2"]}, [f"q:{n}" for n in F32])
        self.check_cells(df, "q", F32, {k: self.qrows[k] for k in ("u1", "u2")})
        gs = [f"g{i}" for i in range(5)]
        df = self.client.get({"user_id": ["u1", "u2"]}, [f"d:{n}" for n in gs])
        self.check_cells(df, "d", gs, self.drows)

    def test_runs_then_other_features(self):
        df = self.client.get({"user_id": ["u1", "u2"]}, ["mix:f0", "mix:f5", "mix:n", "mix:s"])
        self.assertEqual(list(df["mix:f5"][:1]), [5.0])
        self.assertEqual(list(df["mix:n"]), [42, 7])
        self.assertEqual(list(df["mix:s"]), ["x", None])
        self.assertEqual(list(df["mix:f0:status"]), ["PRESENT", "NULL"])
        self.assertEqual(list(df["mix:s:status"]), ["PRESENT", "NULL"])

    def test_export_pit_and_snapshot_use_the_same_cells(self):
        labels = pd.DataFrame({"user_id": ["u3", "u1", "u9", "u2"],
                               "event_timestamp": [self.now] * 4, "y": [1, 2, 3, 4]})
        df = self.client.export_pit(labels, [f"q:{n}" for n in F32], with_status=True)
        self.assertEqual(list(df["y"]), [1, 2, 3, 4])
        self.check_cells(df, "q", F32, self.qrows)
        self.assertEqual(list(df["q:f0:status"]), ["PRESENT", "PRESENT", "NOT_FOUND", "PRESENT"])
        snap = self.client.export_snapshot("q", with_status=True)
        self.check_cells(snap, "q", F32, self.qrows)

    def test_a_payload_sent_packed_is_accepted_and_reads_the_same(self):
        vals = [f32(0.5), f32(-0.25), f32(8), f32(1e-3), f32(3.5), f32(-7)]
        packed = msgpack.packb([run_ext(1, "f", vals)])
        self.raw_put("q", [("p1", self.t, packed)], single=True)
        # the same cells sent plain are a replay of the stored version: nothing written
        r = self.raw_put("q", [("p1", self.t, vals)], single=True)
        self.assertEqual((r.rows_written, r.unchanged), (0, 1))
        df = self.client.get({"user_id": ["p1"]}, [f"q:{n}" for n in F32])
        self.check_cells(df, "q", F32, {"p1": vals})

    def test_a_run_into_a_column_of_another_type_is_refused(self):
        payload = msgpack.packb([run_ext(1, "f", [1.0] * 7), "x"])  # 7 floats: n is an int64
        req = pb.PutRequest()
        req.rows.add(view="mix", entity=b"bad", event_ts_us=self.t, values=payload)
        with self.assertRaises(FreshetError) as cm:
            self.client._c().call(pb.OP_PUT, req, pb.PutResponse)
        self.assertEqual(cm.exception.code_name, "TYPE_MISMATCH")
        self.assertIn("values.n", str(cm.exception))


class PutPacked(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.t = self.client.status()["server_time_us"] - 60 * SEC

    def frame(self, view, names, cols):
        return pd.DataFrame({"user_id": [f"e{i}" for i in range(len(cols[0]))],
                             "event_timestamp": self.t, **dict(zip(names, cols))})

    def test_dataframe_put_sends_the_stored_form(self):
        gs = [f"g{i}" for i in range(5)]
        cols = [[0.1 * i, 1.5, -0.0, np.nan if i == 3 else 2.0 ** -i, 7] for i in range(5)]
        df = self.frame("d", gs, cols)
        payloads = fc._packed_payloads({c: df[c] for c in df.columns},
                                       [(g, "double") for g in gs], len(df))
        self.assertIsNotNone(payloads[0])
        self.assertIsNone(payloads[3], "a row with a NaN goes value by value")
        self.assertEqual(fc._unpack_row(payloads[0]), [0.0, 0.1, 0.2, 0.30000000000000004, 0.4])
        r = self.client.put("d", df)
        self.assertEqual(r["rows_written"], 5)
        again = self.client.put("d", df.to_dict("records"))  # dicts: encoded value by value
        self.assertEqual((again["rows_written"], again["unchanged"]), (0, 5),
                         "the client's packed rows are the server's stored form, byte for byte")
        got = self.client.get({"user_id": list(df["user_id"])}, [f"d:{g}" for g in gs])
        for j, g in enumerate(gs):
            for i in range(5):
                want = cols[j][i]
                if isinstance(want, float) and math.isnan(want):
                    self.assertEqual(got[f"d:{g}:status"][i], "NULL")
                else:
                    self.assertEqual(struct.pack("<d", got[f"d:{g}"][i]),
                                     struct.pack("<d", float(want)), f"{g} row {i}")

    def test_float_view_rounds_like_the_value_path_and_refuses_out_of_range(self):
        cols = [[0.1, 1e-40, 3.4e38, -2.5, float("inf")] for _ in F32]
        df = self.frame("q", F32, cols)
        self.client.put("q", df)
        again = self.client.put("q", df.to_dict("records"))
        self.assertEqual(again["unchanged"], 5)
        got = self.client.get({"user_id": list(df["user_id"])}, ["q:f0"])
        self.assertEqual(list(got["q:f0"]), [f32(x) for x in cols[0]])
        bad = self.frame("q", F32, [[1.0, 1e39] for _ in F32])
        for rows in (bad, bad.to_dict("records")):
            with self.assertRaises(FreshetError) as cm:
                self.client.put("q", rows)
            self.assertEqual(cm.exception.code_name, "BAD_ARG")
            self.assertEqual(cm.exception.row_index, 1)
            self.assertIn("out of the float32 range", str(cm.exception))


class UnpackRow(unittest.TestCase):  # no server needed
    def test_single_run_rows_take_the_numpy_step_and_match_the_cell_path(self):
        rows = [msgpack.packb([run_ext(1, "f", [1.5, -2.0, 0.25, 8.0])]),
                b"",
                msgpack.packb([run_ext(1, "f", [3.0, 4.0, float("nan"), 0.0])])]
        idx, m, nil = fc._packed_matrix(rows)
        self.assertEqual(list(idx), [0, 2])
        self.assertEqual(m.dtype, np.float64)
        self.assertFalse(nil.any())
        cells = [fc._unpack_row(rows[0]), fc._unpack_row(rows[2])]
        np.testing.assert_array_equal(m, np.array(cells, dtype=np.float64))
        self.assertEqual(cells[0], [1.5, -2.0, 0.25, 8.0])

    def test_rows_of_other_shapes_fall_back_to_the_cell_path(self):
        a = msgpack.packb([run_ext(1, "f", [1.0, 2.0, 3.0, 4.0])])
        b = msgpack.packb([run_ext(1, "f", [1.0, 2.0, 3.0, 4.0, 5.0])])   # longer
        c = msgpack.packb([run_ext(2, "d", [1.0, 2.0])])                 # float64, same size
        d = msgpack.packb([None, run_ext(1, "f", [1.0, 2.0, 3.0, 4.0])]) # not one run
        self.assertIsNone(fc._packed_matrix([a, b]))
        self.assertIsNone(fc._packed_matrix([a, c]))
        self.assertIsNone(fc._packed_matrix([d]))
        self.assertEqual(fc._unpack_row(d), [None, 1.0, 2.0, 3.0, 4.0])
        self.assertEqual(fc._unpack_row(c), [1.0, 2.0])
        mixed = msgpack.packb([7, run_ext(2, "d", [0.1, 0.2]), "s", [0.5, 0.25],
                               run_ext(1, "f", [1.0])])
        self.assertEqual(fc._unpack_row(mixed), [7, 0.1, 0.2, "s", [0.5, 0.25], 1.0])

    def test_malformed_ext_items_are_bad_requests(self):
        for bad in (msgpack.packb([msgpack.ExtType(1, b"\0\0\0")]),       # ragged float32
                    msgpack.packb([msgpack.ExtType(2, b"\0" * 12)]),      # ragged float64
                    msgpack.packb([msgpack.ExtType(1, b"")]),             # empty
                    msgpack.packb([msgpack.ExtType(5, b"\0" * 4)]),       # another type
                    msgpack.packb({"a": 1}),                              # not an array
                    b"\x92\xc0"):                                         # truncated
            with self.assertRaises(FreshetError) as cm:
                fc._unpack_row(bad)
            self.assertEqual(cm.exception.code_name, "BAD_REQUEST", bad)
