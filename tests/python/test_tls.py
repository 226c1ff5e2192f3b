"""TLS in the Python client against a real freshetd with tls_cert/tls_key (a self-signed
certificate for localhost/127.0.0.1 made with the openssl CLI, as the C e2e tests do)."""
import os
import shutil
import subprocess
import tempfile
import unittest

import freshet
from support import Server, assert_clean_stop, cli_path

REGISTRY = {"entities": [{"name": "card", "join_key": "card_id"}],
            "views": [{"name": "va", "entity": "card", "ttl": "1h",
                       "features": [{"name": "a", "type": "int64"}]}]}


def make_cert(d, name):
    cert, key = os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class Tls(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="freshet-py-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cert, key = make_cert(self.tmp, "server")
        self.other_ca, _ = make_cert(self.tmp, "other")
        out = subprocess.run([cli_path(), "token", "new", "job", "admin"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
        self.token = out[0]
        auth = os.path.join(self.tmp, "tokens")
        with open(auth, "w") as fh:
            fh.write(out[1] + "\n")
        self.server = Server("--tls-cert", self.cert, "--tls-key", key, "--auth-file", auth)
        self.addCleanup(self.server.cleanup)

    def tearDown(self):
        assert_clean_stop(self, self.server)

    def connect(self, **kw):
        return freshet.Client("127.0.0.1", self.server.port, timeout=30, token=self.token, **kw)

    def test_verified_connection_round_trip(self):
        with self.connect(tls_ca=self.cert) as c:
            c.apply(REGISTRY)
            now = c.status()["server_time_us"]
            c.put("va", [{"card_id": "c1", "event_timestamp": now, "a": 7}])
            df = c.get(["c1"], ["va:a"])
            self.assertEqual(int(df["va:a"][0]), 7)
        with freshet.Client.from_addr(self.server.addr, token=self.token, tls_insecure=True) as c:
            self.assertIn("va", [v["name"] for v in c.status()["views"]])

    def test_untrusted_certificate_is_refused(self):
        with self.assertRaises(freshet.FreshetError) as e:
            self.connect(tls_ca=self.other_ca)
        self.assertEqual(e.exception.code_name, "IO")
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(e.exception))

    def test_plaintext_client_gets_no_service(self):
        with self.assertRaises(freshet.FreshetError) as e:
            self.connect()  # the Hello goes out in clear; the server drops the connection
        self.assertIn(e.exception.code_name, ("CLOSED", "IO"))

    def test_missing_ca_file_is_a_clear_error(self):
        with self.assertRaises(freshet.FreshetError) as e:
            self.connect(tls_ca=os.path.join(self.tmp, "nope.pem"))
        self.assertEqual(e.exception.code_name, "BAD_ARG")
        self.assertIn("nope.pem", str(e.exception))


if __name__ == "__main__":
    unittest.main()
