"""Tokens in the Python client: Client(token=...) sends a Hello; roles are enforced."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import freshet
from support import Server, assert_clean_stop, cli_path

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
        self.read_line, self.admin_line = read_line, admin_line
        path = self.auth_path = os.path.join(self.tmp, "tokens")
        with open(path, "w") as fh:
            fh.write(f"{read_line}\n{admin_line}\n")
        self.server = Server("--auth-file", path)
        self.addCleanup(self.server.cleanup)

    def tearDown(self):
        assert_clean_stop(self, self.server)

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

    def reload(self, text, event):
        """Rewrites the auth file, sends SIGHUP and waits for the server's log line `event`."""
        with open(self.auth_path, "w") as fh:
            fh.write(text)
        seen = self.server.stderr().count(f"event={event}")
        os.kill(self.server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while self.server.stderr().count(f"event={event}") == seen:  # the server's own report
            self.assertLess(time.monotonic(), deadline, f"no {event} line:\n{self.server.stderr()}")
            time.sleep(0.01)

    def test_sighup_reload_revokes_and_adds_tokens_on_live_connections(self):
        writer, writer_line = new_token("writer", "write")
        live_read = freshet.Client(self.server.host, self.server.port, token=self.read)
        live_admin = freshet.Client(self.server.host, self.server.port, token=self.admin)
        self.addCleanup(live_read.close)
        self.addCleanup(live_admin.close)
        live_admin.apply(REGISTRY)
        live_read.status()
        # drop "reader", keep "root", add "writer"
        self.reload(f"{self.admin_line}\n{writer_line}\n", "auth_reloaded")
        with self.assertRaises(freshet.FreshetError) as e:
            live_read.status()  # the same connection, authenticated before the reload
        self.assertEqual(e.exception.code_name, "UNAUTHORIZED")
        self.assertIn("revoked", str(e.exception))
        with self.assertRaises(freshet.FreshetError) as e:
            freshet.Client(self.server.host, self.server.port, token=self.read)
        self.assertEqual(e.exception.code_name, "UNAUTHORIZED")
        live_admin.status()  # kept its token: still admin on its live connection
        with freshet.Client(self.server.host, self.server.port, token=writer) as c:
            c.put("va", [{"card_id": "c9", "event_timestamp": "2026-01-01T00:00:00Z", "a": 9}])
        self.assertIn("event=auth_role_changed", self.server.stderr())

    def test_sighup_with_a_bad_file_keeps_the_tokens_in_force(self):
        live = freshet.Client(self.server.host, self.server.port, token=self.read)
        self.addCleanup(live.close)
        self.reload("root admin not-hex\n", "auth_reload_failed")
        live.status()
        with freshet.Client(self.server.host, self.server.port, token=self.admin) as c:
            c.status()
        err = self.server.stderr()
        self.assertIn("tokens_in_force=2", err)
        self.assertIn("SHA256HEX", err)


if __name__ == "__main__":
    unittest.main()
