"""Tokens in the Python client: Client(token=...) sends a Hello; roles are enforced."""
import os
import shutil
import subprocess
import tempfile
import unittest

import freshet
from support import SANITIZER_MARKS, Server, cli_path

REGISTRY = {"entities": [{"name": "card", "join_key": "card_id"}],
            "views": [{"name": "va", "entity": "card",
                       "features": [{"name": "a", "type": "int64"}]}]}


def new_token(name, role):
    out = subprocess.run([cli_path(), "token", "new", name, role], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    return out[0], out[1]


class Auth(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="freshet-py-auth-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.read, read_line = new_token("reader", "read")
        self.admin, admin_line = new_token("root", "admin")
        path = os.path.join(self.tmp, "tokens")
        with open(path, "w") as fh:
            fh.write(f"{read_line}\n{admin_line}\n")
        self.server = Server("--auth-file", path)
        self.addCleanup(self.server.cleanup)

    def tearDown(self):
        code, err = self.server.stop()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err)
        self.assertEqual(code, 0, err[-4000:])

    def test_token_roles(self):
        with freshet.Client(self.server.host, self.server.port, token=self.admin) as c:
            c.apply(REGISTRY)
            c.put("va", [{"card_id": "c1", "event_timestamp": "2026-01-01T00:00:00Z", "a": 1}])
        with freshet.Client.from_addr(self.server.addr, token=self.read) as c:
            self.assertIn("va", [v["name"] for v in c.status()["views"]])
            with self.assertRaises(freshet.FreshetError) as e:
                c.put("va", [{"card_id": "c2", "event_timestamp": "2026-01-01T00:00:00Z", "a": 2}])
            self.assertEqual(e.exception.code_name, "UNAUTHORIZED")
        with freshet.Client(self.server.host, self.server.port) as c:
            with self.assertRaises(freshet.FreshetError) as e:
                c.status()
            self.assertEqual(e.exception.code_name, "UNAUTHORIZED")
        with self.assertRaises(freshet.FreshetError) as e:
            freshet.Client(self.server.host, self.server.port, token="not-a-token")
        self.assertEqual(e.exception.code_name, "UNAUTHORIZED")


if __name__ == "__main__":
    unittest.main()
