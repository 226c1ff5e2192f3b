"""`freshet export pit` refuses bad input: a non-zero exit, stderr naming the line/column or the
feature, and no output file left behind (neither OUT nor OUT.partial), even when earlier chunks
were already written to OUT.partial. A good run leaves exactly OUT."""
import os
import subprocess
import tempfile

import pandas as pd

from support import MIN, SANITIZER_MARKS, ServerTest, cli_path

REGISTRY = {
    "entities": [{"name": "user", "join_key": "user_id"},
                 {"name": "merchant", "join_key": "merchant_id"}],
    "views": [
        {"name": "acct", "entity": "user", "ttl": "10m",
         "features": [{"name": "bal", "type": "double"}, {"name": "n", "type": "int64"}]},
        {"name": "shop", "entity": "merchant", "ttl": "1h",
         "features": [{"name": "risk", "type": "double"}]},
    ],
}


class CliExportBadInput(ServerTest):
    def setUp(self):
        super().setUp()
        self.client.apply(REGISTRY)
        self.now = self.client.status()["server_time_us"]
        self.client.put("acct", [{"user_id": f"u{k}", "event_timestamp": self.now - MIN,
                                  "bal": float(k), "n": k} for k in range(50)])
        self.tmp = tempfile.mkdtemp(prefix="freshet-cli-")
        self.out = os.path.join(self.tmp, "out.csv")

    def tearDown(self):
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)
        super().tearDown()

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def labels_csv(self, n, bad_line=None, bad_value="not-a-time"):
        """A CSV with a header (line 1) and n rows (lines 2..n+1); bad_line gets bad_value."""
        lines = ["user_id,event_timestamp,y"]
        for k in range(n):
            ts = str(self.now - k) if len(lines) + 1 != bad_line else bad_value
            lines.append(f"u{k % 60},{ts},{k % 2}")
        return self.write("labels.csv", "\n".join(lines) + "\n")

    def assert_refused(self, p, *needles):
        self.assertNotEqual(p.returncode, 0, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)
        self.assertFalse(os.path.exists(self.out), "OUT left behind")
        self.assertFalse(os.path.exists(self.out + ".partial"), "OUT.partial left behind")
        self.assertEqual(p.stdout, "")

    def export(self, labels, features, *extra):
        return self.cli("export", "pit", "--labels", labels, "--features", features, "-o",
                        self.out, *extra)

    def test_full_disk_on_stdout_fails_loudly(self):
        """Rows go out on the CLI's output thread: a write error there must end the export with a
        non-zero exit and the reason, not a silent short file."""
        lab = self.labels_csv(25000)  # several chunks, more than stdio buffers
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        for fmt in ("csv", "msgpack"):
            with open("/dev/full", "wb") as full:
                p = subprocess.run([cli_path(), "--server", self.server.addr, "export", "pit",
                                    "--labels", lab, "--features", "acct:bal,acct:n", "--chunk",
                                    "1000", "--format", fmt], stdout=full, stderr=subprocess.PIPE,
                                   text=True, env=env, timeout=300)
            self.assertNotEqual(p.returncode, 0, p.stderr)
            self.assertIn("No space left on device", p.stderr)
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, p.stderr)

    def test_good_run_leaves_exactly_out(self):
        p = self.export(self.labels_csv(120), "acct:bal,acct:n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["labels.csv", "out.csv"])
        df = pd.read_csv(self.out)
        self.assertEqual(list(df.columns), ["user_id", "event_timestamp", "y", "acct:bal", "acct:n"])
        self.assertEqual(len(df), 120)
        self.assertIn("export pit (event mode): 120 rows", p.stderr)

    def test_missing_entity_column(self):
        lab = self.write("labels.csv", f"event_timestamp,y\n{self.now},1\n")
        self.assert_refused(self.export(lab, "acct:bal"), 'missing column "user_id"')
        # a second view needs its own key too
        lab = self.write("labels.csv", f"user_id,event_timestamp\nu1,{self.now}\n")
        self.assert_refused(self.export(lab, "acct:bal,shop:risk"), 'missing column "merchant_id"')

    def test_missing_timestamp_column(self):
        lab = self.write("labels.csv", "user_id,y\nu1,1\n")
        self.assert_refused(self.export(lab, "acct:bal"), 'missing column "event_timestamp"')

    def test_unparseable_timestamp_after_chunks_were_written(self):
        # chunks of 1000 rows, 4 in flight: about 20 chunks have been joined and written to
        # OUT.partial when line 25002 (row 25001) fails to parse
        lab = self.labels_csv(25001, bad_line=25002, bad_value="2026-13-45T99:00:00Z")
        self.assert_refused(self.export(lab, "acct:bal", "--chunk", "1000"), "line 25002",
                            "event_timestamp", "2026-13-45T99:00:00Z")

    def test_unparseable_timestamp_first_row(self):
        lab = self.labels_csv(5, bad_line=2, bad_value="yesterday")
        self.assert_refused(self.export(lab, "acct:bal"), "line 2", "event_timestamp", "yesterday")

    def test_unknown_feature_and_view(self):
        lab = self.labels_csv(10)
        self.assert_refused(self.export(lab, "acct:bal,acct:nope"), "acct:nope", "UNKNOWN_FEATURE")
        self.assert_refused(self.export(lab, "nosuchview:x"), "nosuchview", "UNKNOWN_VIEW")

    def test_wrong_field_count(self):
        text = f"user_id,event_timestamp,y\nu1,{self.now},1\nu2,{self.now}\n"
        self.assert_refused(self.export(self.write("labels.csv", text), "acct:bal"), "line 3")

    def test_jsonl_missing_key_names_line_and_column(self):
        text = (f'{{"user_id": "u1", "event_timestamp": {self.now}}}\n'
                f'{{"user_id": "u2", "event_timestamp": {self.now}}}\n'
                f'{{"event_timestamp": {self.now}}}\n')
        self.assert_refused(self.export(self.write("labels.jsonl", text), "acct:bal"),
                            "line 3", "user_id")
