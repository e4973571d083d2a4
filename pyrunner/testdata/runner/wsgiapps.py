"""Fixture for runner_test.py: one WSGI app that dispatches on PATH_INFO to small test apps.

One worker serves a whole test class, so the apps also show that the runner resets its state
between requests. Apps that must wait for the test read one byte from the pipe whose read end
the test passes in and names in the environ key GATE_FD.
"""

import hashlib
import io
import json
import os
import sys

# Labels of the iterables and files whose close() ran; /closed returns and clears them.
CLOSED = []

ROUTES = {}

TEXT = [("Content-Type", "text/plain")]
PATH_INFO_KEY = "PATH_INFO"


def route(path):
    """Register the decorated function as the app for PATH_INFO == path."""

    def register(func):
        ROUTES[path] = func
        return func

    return register


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        start_response("404 Not Found", list(TEXT))
        return [b"no such route"]
    return handler(environ, start_response)


application = app
NOT_CALLABLE = 42


class Holder:
    """Gives the app a dotted path: wsgiapps:holder.app."""

    app = staticmethod(app)


holder = Holder()


def wait_gate(environ):
    """Block until the test writes one byte into the gate pipe."""
    os.read(int(environ["GATE_FD"]), 1)


class Closing:
    """An iterable with close(): items are bytes, or exceptions to raise at that point."""

    def __init__(self, label, items):
        self.label = label
        self.items = items

    def __iter__(self):
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self):
        CLOSED.append(self.label)


class TrackedFile(io.BytesIO):
    """A file-like object that records its close()."""

    def close(self):
        CLOSED.append("file")
        super().close()


# --- plain responses -------------------------------------------------------------------------


@route("/hello")
def hello(environ, start_response):
    body = b"Hello, world!"
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


@route("/closed")
def closed(environ, start_response):
    start_response("200 OK", list(TEXT))
    labels = ",".join(CLOSED)
    del CLOSED[:]
    return [labels.encode()]


@route("/environ")
def environ_dump(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    cgi = {k: v for k, v in environ.items() if not k.startswith(("wsgi.", "wsgi_fcgi."))}
    out = {
        "cgi": cgi,
        "all_str": all(type(v) is str for v in cgi.values()),
        # marshal's 'Z' keys are interned: the app's literal is the very same object.
        "key_is_literal": next(k for k in environ if k == PATH_INFO_KEY) is PATH_INFO_KEY,
        "version": list(environ["wsgi.version"]),
        "url_scheme": environ["wsgi.url_scheme"],
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "run_once": environ["wsgi.run_once"],
        "input_terminated": environ["wsgi.input_terminated"],
        "errors_has_write": callable(getattr(environ["wsgi.errors"], "write", None)),
        "file_wrapper_callable": callable(environ["wsgi.file_wrapper"]),
        "input_has_read": callable(getattr(environ["wsgi.input"], "read", None)),
    }
    return [json.dumps(out).encode()]


@route("/echo-header")
def echo_header(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [environ["HTTP_X_TEST"].encode("latin-1")]


@route("/list")
def list_two(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"a", b"b"]


@route("/list-one")
def list_one(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"ab"]


@route("/list-trailing-empty")
def list_trailing_empty(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"", b"ab", b"", b""]


@route("/tuple")
def tuple_two(environ, start_response):
    start_response("200 OK", list(TEXT))
    return (b"a", b"b")


@route("/empty")
def empty(environ, start_response):
    start_response("204 No Content", [])
    return []


@route("/big")
def big(environ, start_response):
    size = int(environ["QUERY_STRING"])
    start_response("200 OK", list(TEXT))
    return [b"x" * size]


@route("/big-cl")
def big_cl(environ, start_response):
    size = int(environ["QUERY_STRING"])
    start_response("200 OK", TEXT + [("Content-Length", str(size))])
    return iter([bytearray(b"y" * size)])


@route("/cl-early")
def cl_early(environ, start_response):
    start_response("200 OK", TEXT + [("content-length", "6")])
    return Closing("cl-early", [b"abc", b"def", b"extra"])


@route("/cl-over")
def cl_over(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "4")])
    return [b"abcdef"]


@route("/cwd")
def cwd(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [os.getcwd().encode()]


# --- streaming and write() -------------------------------------------------------------------


@route("/stream")
def stream(environ, start_response):
    start_response("200 OK", list(TEXT))
    yield b""  # skipped: headers wait for the first non-empty chunk
    yield b"first"
    wait_gate(environ)
    yield b"second"


@route("/write")
def write_app(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    write(b"")
    write(b"one")
    wait_gate(environ)
    write(bytearray(b"two"))
    return [b"three"]


@route("/gate")
def gate(environ, start_response):
    start_response("200 OK", list(TEXT))
    yield b"before"
    wait_gate(environ)
    yield b"after"


# --- request bodies --------------------------------------------------------------------------


@route("/sha")
def sha(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("200 OK", list(TEXT))
    return [("%d %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()]


@route("/sha-chunks")
def sha_chunks(environ, start_response):
    size = int(environ["QUERY_STRING"])
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while True:
        data = stream.read(size)
        if not data:
            break
        assert len(data) <= size
        digest.update(data)
        total += len(data)
    start_response("200 OK", list(TEXT))
    return [("%d %s" % (total, digest.hexdigest())).encode()]


@route("/ops")
def ops(environ, start_response):
    """Run the read operations named in QUERY_STRING (see runner_test.run_ops) on wsgi.input."""
    results = run_ops(environ["wsgi.input"], environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(results).encode()]


def run_ops(stream, spec):
    """Apply ops like "readline", "readline:5", "read:7", "read", "readlines:10", "iter" to stream."""
    results = []
    for op in spec.split(","):
        name, _, arg = op.partition(":")
        args = (int(arg),) if arg else ()
        if name == "iter":
            value = [line for line in stream]
        elif name == "readlines":
            value = stream.readlines(*args)
        else:
            value = getattr(stream, name)(*args)
        if isinstance(value, list):
            results.append([v.decode("latin-1") for v in value])
        else:
            results.append(value.decode("latin-1"))
    return results


@route("/cap")
def cap(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.read(100)
    second = stream.read()
    third = stream.read(10)
    start_response("200 OK", list(TEXT))
    return [("%d %d %d" % (len(first), len(second), len(third))).encode()]


@route("/ignore")
def ignore(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [b"ignored"]


@route("/read-after-end")
def read_after_end(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "2")])
    yield b"ok"
    # The response is complete (END went out with "ok"): reading now must not send READ.
    data = environ["wsgi.input"].read()
    CLOSED.append("read-after-end:%d" % len(data))


@route("/read-cut")
def read_cut(environ, start_response):
    stream = environ["wsgi.input"]
    outcome = []
    for _ in range(2):
        try:
            stream.read()
            outcome.append("no error")
        except OSError as e:
            outcome.append(type(e).__name__)
    start_response("200 OK", list(TEXT))
    return [" ".join(outcome).encode()]


# --- errors ----------------------------------------------------------------------------------


@route("/raise-before")
def raise_before(environ, start_response):
    raise ValueError("boom-before")


@route("/raise-after-start")
def raise_after_start(environ, start_response):
    start_response("200 OK", list(TEXT))
    raise ValueError("boom-after-start")


@route("/raise-in-first")
def raise_in_first(environ, start_response):
    start_response("200 OK", list(TEXT))
    return Closing("raise-in-first", [ValueError("boom-in-first"), b"never"])


@route("/raise-mid")
def raise_mid(environ, start_response):
    start_response("200 OK", list(TEXT))
    return Closing("raise-mid", [b"partial", ValueError("boom-mid")])


@route("/close-normal")
def close_normal(environ, start_response):
    start_response("200 OK", list(TEXT))
    return Closing("normal", [b"a", b"b"])


@route("/close-early")
def close_early(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "1")])
    return Closing("early", [b"a"])


@route("/close-raises")
def close_raises(environ, start_response):
    class BadClose(Closing):
        def close(self):
            CLOSED.append("bad-close")
            raise RuntimeError("boom in close")

    start_response("200 OK", list(TEXT))
    return BadClose("bad-close", [b"body"])


@route("/excinfo-replace")
def excinfo_replace(environ, start_response):
    start_response("200 OK", list(TEXT))
    try:
        raise ValueError("replace me")
    except ValueError:
        start_response("503 Service Unavailable", list(TEXT), sys.exc_info())
    return [b"replaced"]


@route("/excinfo-after")
def excinfo_after(environ, start_response):
    write = start_response("200 OK", list(TEXT))
    write(b"sent")
    try:
        raise ValueError("too late")
    except ValueError:
        start_response("500 Oops", list(TEXT), sys.exc_info())  # re-raises the ValueError
    return [b"never"]


@route("/excinfo-twice")
def excinfo_twice(environ, start_response):
    start_response("200 OK", list(TEXT))
    start_response("200 OK", list(TEXT))
    return [b"never"]


BAD_HEADERS = {
    "value-int": ("200 OK", [("X-Num", 5)]),
    "name-bytes": ("200 OK", [(b"X-Name", "v")]),
    "status-bytes": (b"200 OK", []),
    "not-latin1": ("200 OK", [("X-Euro", "\u20ac")]),
    "nul-value": ("200 OK", [("X-Nul", "a\0b")]),
    "nul-status": ("200 OK\0", []),
    "triple": ("200 OK", [("X-A", "b", "c")]),
    "huge": ("200 OK", [("X-Big", "b" * (1 << 20))]),
}


@route("/bad-header")
def bad_header(environ, start_response):
    status, headers = BAD_HEADERS[environ["QUERY_STRING"]]
    start_response(status, headers)
    return [b"never"]


@route("/bad-header-caught")
def bad_header_caught(environ, start_response):
    """PEP 3333: the error is raised in start_response, so the app can catch it and recover."""
    try:
        start_response("200 OK", [("X-Nul", "a\0b")])
    except ValueError:
        start_response("200 OK", list(TEXT))
    return [b"recovered"]


@route("/str-chunk")
def str_chunk(environ, start_response):
    start_response("200 OK", list(TEXT))
    return ["text"]


@route("/no-start")
def no_start(environ, start_response):
    return [b"x"]


@route("/exit")
def exit_app(environ, start_response):
    sys.exit(0)


# --- files and output ------------------------------------------------------------------------


@route("/file")
def file_app(environ, start_response):
    with open(environ["FILE_PATH"], "rb") as f:
        data = f.read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](TrackedFile(data))


@route("/file-real")
def file_real(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(environ["FILE_PATH"], "rb"), 4096)


@route("/print")
def print_app(environ, start_response):
    # Bytes that would look like frames if they reached the channel.
    for i in range(200):
        print("printed line %d \x10\x00\x00\x00\x12\x02\x00\x00" % i)
    # No flush: the runner makes stdout line-buffered, so each line leaves at once.
    sys.stderr.write("to stderr\n")
    start_response("200 OK", list(TEXT))
    return [b"printed"]


@route("/errors-traceback")
def errors_traceback_app(environ, start_response):
    """A traceback written to wsgi.errors line by line, with no flush, after a message."""
    import traceback

    errors = environ["wsgi.errors"]
    try:
        raise ValueError("logged, not raised")
    except ValueError:
        errors.write("handled an error:\n")
        traceback.print_exc(file=errors)
    start_response("200 OK", list(TEXT))
    return [b"logged"]


@route("/errors")
def errors_app(environ, start_response):
    environ["wsgi.errors"].write("line from wsgi.errors\n")
    environ["wsgi.errors"].writelines(["two ", "lines\n"])
    environ["wsgi.errors"].flush()
    start_response("200 OK", list(TEXT))
    return [b"logged"]
