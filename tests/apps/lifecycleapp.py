"""A WSGI app for the request lifecycle tests (tests/lifecycle_test.go): every request it
starts, every iterable it closes and every interruption it sees is appended to the file
LIFECYCLE_LOG names, one line each ("start ID PID", "close ID", "interrupted ID NAME",
"finally ID"), so the tests wait for events rather than for time.

    /stream[/...]?id=ID&n=N&gap=S   N chunks of 2 KiB, one every S seconds (an iterable with close())
    /stuck?id=ID&s=S          sleeps S seconds in one call
    /spin?id=ID&s=S           runs Python for S seconds (sleeps of 10 ms in a loop)
    /deaf?id=ID&s=S           sleeps S seconds, swallowing every exception (ignores interrupts)
    /big?n=N                  N bytes, in 1 MiB chunks
    /upload?id=ID             reads the whole body and answers its length
    /pid                      the worker's pid
"""

import os
import time
from urllib.parse import parse_qs

LOG = os.environ.get("LIFECYCLE_LOG", os.devnull)


def note(*words):
    with open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


class Stream:
    """An iterable with close(), as PEP 3333 requires the server to call exactly once."""

    def __init__(self, rid, n, gap):
        self.rid, self.n, self.gap = rid, n, gap

    def __iter__(self):
        for _ in range(self.n):
            yield b"x" * 2048
            time.sleep(self.gap)

    def close(self):
        note("close", self.rid)


def noting(rid, fn, *args):
    """Call fn(*args), noting an exception that interrupts it and the finally that follows."""
    try:
        fn(*args)
    except BaseException as e:
        note("interrupted", rid, type(e).__name__)
        raise
    finally:
        note("finally", rid)


def spin(seconds):
    """Run Python for that long: sleeps of 10 ms in a loop."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


class Big:
    """N bytes in 1 MiB chunks, an iterable with close()."""

    def __init__(self, rid, n):
        self.rid, self.n = rid, n

    def __iter__(self):
        chunk = b"b" * (1 << 20)
        for i in range(0, self.n, len(chunk)):
            yield chunk[: min(len(chunk), self.n - i)]

    def close(self):
        note("close", self.rid)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    rid = q.get("id", "-")
    if path != "/pid":
        note("start", rid, os.getpid())
    if path.startswith("/stream"):
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return Stream(rid, int(q.get("n", "600")), float(q.get("gap", "0.05")))
    if path == "/stuck":
        noting(rid, time.sleep, float(q.get("s", "30")))
    elif path == "/spin":
        noting(rid, spin, float(q.get("s", "30")))
    elif path == "/deaf":
        end = time.monotonic() + float(q.get("s", "30"))
        while time.monotonic() < end:
            try:
                time.sleep(0.05)
            except BaseException as e:
                note("swallowed", rid, type(e).__name__)
    elif path == "/big":
        n = int(q.get("n", "1048576"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return Big(rid, n)
    elif path == "/upload":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d\n" % len(body)]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % os.getpid()]
