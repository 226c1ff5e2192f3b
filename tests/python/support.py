"""Test support: a freshetd per test (ephemeral port, temporary data directory) and helpers.

BUILD_DIR comes from the FRESHET_BUILD_DIR environment variable (tests/python/run.sh sets it).
The server is started with --listen 127.0.0.1:0; the test waits for its `listening HOST:PORT` line
on stdout (no sleeps), and stops it with SIGTERM by PID, expecting exit status 0 and no sanitizer
report on stderr.
"""

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import freshet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    d = os.environ.get("FRESHET_BUILD_DIR", os.path.join(ROOT, "build", "asan"))
    return d if os.path.isabs(d) else os.path.join(ROOT, d)


def cli_path():
    return os.path.join(build_dir(), "freshet")


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "WARNING: ThreadSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")


class Server:
    """One freshetd in its own temporary directory."""

    def __init__(self, *extra_args, start_timeout=60):
        self.tmp = tempfile.mkdtemp(prefix="freshet-py-")
        self.data = os.path.join(self.tmp, "data")
        self.stderr_path = os.path.join(self.tmp, "freshetd.stderr")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [os.path.join(build_dir(), "freshetd"), "--data", self.data,
             "--listen", "127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE, stderr=self._err, env=env)
        try:
            self.addr = self._wait_listening(start_timeout)  # its error quotes freshetd's stderr
        except BaseException:
            self.proc.stdout.close()
            self._err.close()
            self.cleanup()  # a server that never started leaves no directory behind
            raise
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)

    def _wait_listening(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    raise RuntimeError("freshetd did not print its listening line in time")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.proc.wait()
                    raise RuntimeError(f"freshetd exited ({self.proc.returncode}) before "
                                       f"listening: {self.stderr()}")
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith("listening "):
                        return line.split()[1]
        finally:
            sel.close()

    def client(self, timeout=60):
        return freshet.Client(self.host, self.port, timeout=timeout)

    def stderr(self):
        if not self._err.closed:
            self._err.flush()
        with open(self.stderr_path, "rb") as fh:
            return fh.read().decode(errors="replace")

    def stop(self, timeout=60):
        """SIGTERM by PID; returns (exit code, stderr text)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise
        self.proc.stdout.close()
        self._err.close()
        err = self.stderr()
        return self.proc.returncode, err

    def cleanup(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def assert_clean_stop(test, server):
    """Stops server by SIGTERM; asserts exit status 0 and no sanitizer report on its stderr."""
    code, err = server.stop()
    for mark in SANITIZER_MARKS:
        test.assertNotIn(mark, err, f"freshetd stderr has a sanitizer report:\n{err[-4000:]}")
    test.assertEqual(code, 0, f"freshetd exit status {code}; stderr:\n{err[-4000:]}")


class ServerTest(unittest.TestCase):
    """Starts a fresh freshetd before each test and checks its clean exit after."""

    server_args = ()

    def setUp(self):
        self.server = Server(*self.server_args)
        self.addCleanup(self.server.cleanup)
        self.client = self.server.client()

    def tearDown(self):
        self.client.close()
        assert_clean_stop(self, self.server)

    def cli(self, *args, check=False):
        """Runs the freshet CLI against this test's server; returns CompletedProcess."""
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        p = subprocess.run([cli_path(), "--server", self.server.addr, *args],
                           capture_output=True, text=True, env=env, timeout=300)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, p.stderr, f"freshet CLI sanitizer report:\n{p.stderr[-4000:]}")
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p


SEC = 1_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
