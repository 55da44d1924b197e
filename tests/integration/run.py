"""Runs the numbered integration test files (NN-name.py) in order. Each test_*
function runs with a time limit; whatever it started is torn down after it,
and a sanitizer report in any broker's stderr fails it.

Usage: /usr/bin/python3 tests/integration/run.py [-k SUBSTRING] [FILE...]
Prints one line per test and, last, "RESULT passed=N failed=M".
"""
import argparse
import glob
import importlib.util
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

TEST_TIMEOUT = int(os.environ.get("SN_TEST_TIMEOUT", "180"))


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("test exceeded %ds" % TEST_TIMEOUT)


def load(path):
    name = os.path.basename(path)[:-3].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("files", nargs="*")
    opts = ap.parse_args()
    files = opts.files or sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]-*.py")))
    label = os.environ.get("SN_TEST_LABEL", "")
    passed = failed = 0
    signal.signal(signal.SIGALRM, on_alarm)
    try:
        for path in files:
            mod = load(path)
            # definition order: a module's dict keeps it
            tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
            for name, fn in tests:
                full = "%s::%s" % (os.path.basename(path), name)
                if opts.k not in full:
                    continue
                started = time.monotonic()
                error = None
                signal.alarm(TEST_TIMEOUT)
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - report every failure
                    error = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                finally:
                    signal.alarm(0)
                    reports = harness.cleanup_all()
                if reports and not error:
                    error = "broker problems:\n" + "\n".join(reports)
                secs = time.monotonic() - started
                if error:
                    failed += 1
                    print("FAIL %s %s (%.1fs)\n%s" % (label, full, secs, error.rstrip()), flush=True)
                else:
                    passed += 1
                    print("ok   %s %s (%.1fs)" % (label, full, secs), flush=True)
    finally:
        harness.Session.cleanup()
    print("RESULT passed=%d failed=%d" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
