"""Runs the unittest tests of one or more test files and prints `N passed, M failed` last.

Usage: runner.py FILE.py...  (exit status 0 only if every test passed). Skipped tests count as
neither; errors count as failures.
"""
import importlib.util
import os
import sys
import time
import unittest


class Result(unittest.TextTestResult):
    """Counts tests, not subtests: a test failed if it or any of its subtests failed or erred."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.failed_ids = set()

    def addFailure(self, test, err):
        self.failed_ids.add(test.id())
        super().addFailure(test, err)

    def addError(self, test, err):
        self.failed_ids.add(getattr(test, "id", lambda: repr(test))())
        super().addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.failed_ids.add(test.id())
        super().addSubTest(test, subtest, err)

    def addUnexpectedSuccess(self, test):
        self.failed_ids.add(test.id())
        super().addUnexpectedSuccess(test)

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.stream.writeln(f"    ({time.monotonic() - self._t0:.2f} s)")
        self.stream.flush()


def main(paths):
    suite = unittest.TestSuite()
    load_errors = 0
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        try:
            spec = importlib.util.spec_from_file_location(name, p)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        except Exception as e:  # noqa: BLE001
            print(f"{p}: cannot load: {e!r}", flush=True)
            load_errors += 1
            continue
        suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(mod))
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failed_ids) + load_errors
    skipped = len({t.id() for t, _ in res.skipped} - res.failed_ids)
    passed = max(0, res.testsRun - len(res.failed_ids) - skipped)
    if not res.wasSuccessful() and failed == 0:
        failed = 1
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
