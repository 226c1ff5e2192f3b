"""`freshet export pit --connections N` and the Python client's `export_pit(connections=N)` spread
chunks over N connections (so over N server workers) that all read one LMDB snapshot.

- The output does not depend on N (byte for byte, rows in input order).
- Under concurrent commits, every chunk of one export still reads the same snapshot: a writer
  rewrites every entity in one atomic batch per step, so an export whose chunks read different
  snapshots would show two different steps. The test repeats the export until one of them
  overlapped at least two commits, so the check cannot pass vacuously.
"""
import os
import shutil
import tempfile
import threading

import pandas as pd

from support import SEC, ServerTest

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"}],
    "views": [{"name": "v", "entity": "user", "ttl": "1h",
               "features": [{"name": "x", "type": "int64"}, {"name": "y", "type": "double"}]}],
}
ENTITIES = 200


class ExportParallel(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.base = self.client.status()["server_time_us"] - 600 * SEC
        self.tmp = tempfile.mkdtemp(prefix="freshet-par-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def labels(self, n, at):
        path = os.path.join(self.tmp, "labels.csv")
        with open(path, "w") as fh:
            fh.write("user_id,event_timestamp,row\n")
            for k in range(n):
                fh.write(f"u{(k * 7919) % ENTITIES},{at(k)},{k}\n")
        return path

    def export(self, labels, connections, out_name, *extra):
        out = os.path.join(self.tmp, out_name)
        p = self.cli("export", "pit", "--labels", labels, "--features", "v:x,v:y", "--chunk", "50",
                     "--connections", str(connections), "-o", out, *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return out

    def test_output_does_not_depend_on_connections(self):
        for step in range(5):  # 5 versions per entity
            self.client.put("v", [{"user_id": f"u{e}", "event_timestamp": self.base + step * SEC + e,
                                   "x": step * 1000 + e, "y": e / 8} for e in range(ENTITIES)])
        lab = self.labels(2500, lambda k: self.base + (k % 7) * SEC)
        outs = [self.export(lab, n, f"out{n}.csv", "--with-status") for n in (1, 2, 3)]
        texts = []
        for o in outs:
            with open(o) as fh:
                texts.append(fh.read())
        self.assertEqual(texts[0], texts[1])
        self.assertEqual(texts[0], texts[2])
        df = pd.read_csv(outs[0])
        self.assertEqual(list(df["row"]), list(range(2500)))  # input order kept
        self.assertGreater((df["v:x:status"] == "PRESENT").sum(), 1000)

    def check_one_snapshot(self, export_xs):
        """While a writer commits one step per batch (every entity's x = the step), export_xs()
        (the x values one export returned) must hold a single step, never older than the last
        step acknowledged before it began; repeated until three exports overlapped two commits."""
        w = self.server.client()
        self.addCleanup(w.close)
        step = [0]
        first = threading.Event()
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                k = step[0] + 1
                w.put("v", [{"user_id": f"u{e}", "event_timestamp": self.base + k, "x": k, "y": 0.5}
                            for e in range(ENTITIES)])
                step[0] = k  # acknowledged: committed
                first.set()

        t = threading.Thread(target=writer)
        t.start()
        try:
            self.assertTrue(first.wait(60), "the writer committed nothing")
            overlapped = 0
            for attempt in range(30):
                before = step[0]
                xs = set(export_xs(attempt))
                during = step[0] - before
                self.assertEqual(len(xs), 1, f"one export saw several commits: {sorted(xs)[:10]}")
                self.assertGreaterEqual(xs.pop(), before)  # nothing older than before it began
                if during >= 2:
                    overlapped += 1
                    if overlapped == 3:
                        break
            self.assertEqual(overlapped, 3, "no export overlapped two commits in 30 tries")
        finally:
            stop.set()
            t.join()

    def test_one_snapshot_while_writes_commit(self):
        lab = self.labels(3000, lambda k: self.base + 300 * SEC)
        self.check_one_snapshot(
            lambda attempt: pd.read_csv(self.export(lab, 3, f"snap{attempt}.csv"))["v:x"])

    def test_python_export_does_not_depend_on_connections(self):
        for step in range(5):
            self.client.put("v", [{"user_id": f"u{e}", "event_timestamp": self.base + step * SEC + e,
                                   "x": step * 1000 + e, "y": e / 8} for e in range(ENTITIES)])
        labels = pd.DataFrame({"user_id": [f"u{(k * 7919) % ENTITIES}" for k in range(2500)],
                               "event_timestamp": [self.base + (k % 7) * SEC for k in range(2500)],
                               "row": range(2500)})
        dfs = [self.client.export_pit(labels, ["v:x", "v:y"], with_status=True, chunk_rows=50,
                                      connections=n) for n in (1, 2, 3)]
        for df in dfs[1:]:
            pd.testing.assert_frame_equal(df, dfs[0])
            self.assertEqual(df.attrs["statuses"], dfs[0].attrs["statuses"])
        self.assertEqual(list(dfs[0]["row"]), list(range(2500)))
        self.assertGreater((dfs[0]["v:x:status"] == "PRESENT").sum(), 1000)
        # the snapshots were released: a later export pins a newer one and sees newer data
        self.client.put("v", [{"user_id": "u0", "event_timestamp": self.base + 9 * SEC, "x": -1,
                               "y": 0.0}])
        again = self.client.export_pit(labels.iloc[:1].assign(user_id="u0",
                                                              event_timestamp=self.base + 10 * SEC),
                                       ["v:x"], chunk_rows=1, connections=3)
        self.assertEqual(list(again["v:x"]), [-1])

    def test_python_export_reads_one_snapshot_while_writes_commit(self):
        labels = pd.DataFrame({"user_id": [f"u{(k * 7919) % ENTITIES}" for k in range(3000)],
                               "event_timestamp": self.base + 300 * SEC})
        self.check_one_snapshot(lambda attempt: self.client.export_pit(
            labels, ["v:x"], chunk_rows=50, connections=3)["v:x"])

    def test_bad_connections_flag(self):
        lab = self.labels(3, lambda k: self.base)
        for bad in ("0", "17", "x"):
            p = self.cli("export", "pit", "--labels", lab, "--features", "v:x", "--connections", bad)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(f'--connections: "{bad}" is not a whole number in [1, 16]', p.stderr)
