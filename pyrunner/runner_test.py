"""Tests of runner.py, the Python side of wsgi-fcgi, driven exactly as the Go gateway drives it.

Each test starts the real runner as a subprocess with its ends of a channel (two pipes) and
plays the gateway on the other ends: it encodes the environ in marshal format as
PROTOCOL.md specifies, writes REQUEST frames, answers READ with BODY, and checks the frames
that come back. The apps are small modules in testdata/runner/.

Run from the repository root:

    python3 -m unittest discover -s pyrunner -p 'runner_test.py'

Standard library only. RUNNER_PYTHON names another interpreter to run the runner with (the
tests themselves run under the current one). RUNNER_BENCH=1 makes the benchmark longer and adds a
cProfile summary of the runner's hot path.
"""

import collections
import hashlib
import io
import json
import marshal
import mmap
import os
import pstats
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import unittest.mock

sys.dont_write_bytecode = True  # no __pycache__ next to the fixture apps and runner.py

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "runner.py")
APPS = os.path.join(HERE, "testdata", "runner")
PYTHON = os.environ.get("RUNNER_PYTHON") or sys.executable
COOKIE_VAR = "WSGI_FCGI_RUNNER_COOKIE"
COOKIE = "wsgi-fcgi-runner-v1"
TIMEOUT = 10.0  # seconds any single wait may take before a test fails instead of hanging

# Frame types and flags (PROTOCOL.md, "Frames"), repeated here: the test is the other side.
REQUEST, BODY, READY, FATAL, START, DATA, READ, ABORTED = 1, 2, 16, 17, 18, 19, 21, 22
FORK, SPAWNED, EXITED = 32, 33, 34  # a preload master's control frames (PROTOCOL.md, "Preload")
EOF, END, ERROR = 0x01, 0x02, 0x04
FRAME = struct.Struct("<IBBH")
U32 = struct.Struct("<I")
U16 = struct.Struct("<H")
MiB = 1 << 20
KiB = 1 << 10

Frame = collections.namedtuple("Frame", "type flags payload")


def encode_str(s, intern):
    """Encode a native str (latin-1 code points) as PROTOCOL.md's marshal key or value."""
    raw = s.encode("latin-1")
    if raw.isascii():
        if len(raw) < 256:
            return (b"Z" if intern else b"z") + bytes([len(raw)]) + raw
        if not intern:
            return b"a" + U32.pack(len(raw)) + raw
    utf8 = s.encode("utf-8")
    return b"u" + U32.pack(len(utf8)) + utf8


def encode_environ(environ):
    """Encode a dict of str to str as the gateway does (PROTOCOL.md, "The environ encoding")."""
    parts = [b"{"]
    for key, value in environ.items():
        parts.append(encode_str(key, True))
        parts.append(encode_str(value, False))
    parts.append(b"0")
    return b"".join(parts)


def base_environ(path, body=b""):
    """The CGI variables of a plain request, as the gateway would send them."""
    return {
        "REQUEST_METHOD": "POST" if body else "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "REQUEST_URI": path,
        "CONTENT_TYPE": "application/octet-stream" if body else "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost:8080",
        "wsgi.url_scheme": "http",
    }


def request_frame(environ, inline=b"", eof=True, seq=1):
    """Build the REQUEST frame numbered seq: the marshal environ and the inline body."""
    block = encode_environ(environ)
    payload = U32.pack(len(block)) + block + inline
    return FRAME.pack(len(payload), REQUEST, EOF if eof else 0, seq & 0xFFFF) + payload


class Board:
    """The gateway's side of a cancel board (PROTOCOL.md, "The cancel board"): a memfd (or a
    temporary file) of 256 bytes per channel, mapped read-write."""

    def __init__(self, channels=1):
        size = 256 * channels
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("wsgi-fcgi-board")
        else:
            self.fd, path = tempfile.mkstemp()
            os.unlink(path)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.words = memoryview(self.map).cast("I")

    def cancel(self, n, reason=1, channel=0):
        """Cancel request n of a channel: the reason first, then the number (as the gateway)."""
        base = 64 * channel
        self.words[base + 32 + n % 32] = reason
        self.words[base + n % 32] = n & 0xFFFFFFFF

    def close_fd(self):
        """Close the descriptor (the runner has its own); the map stays."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class PipeEnd:
    """The gateway's ends of a channel (two pipes), with the few socket methods the tests use:
    sendall, recv, recv_into, settimeout, shutdown (of the writing side) and close."""

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd
        self.timeout = None

    def settimeout(self, timeout):
        self.timeout = timeout

    def _wait(self):
        if self.timeout is not None:
            ready, _, _ = select.select([self.rfd], [], [], self.timeout)
            if not ready:
                raise socket.timeout("channel read timed out")

    def recv(self, n):
        self._wait()
        return os.read(self.rfd, n)

    def recv_into(self, buf):
        self._wait()
        # FileIO.readinto: a read(2) into buf on every interpreter (PyPy's os has no readv).
        return io.FileIO(self.rfd, "rb", closefd=False).readinto(buf)

    def sendall(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]

    def shutdown(self, how):
        assert how == socket.SHUT_WR
        self._close_w()

    def _close_w(self):
        if self.wfd is not None:
            os.close(self.wfd)
            self.wfd = None

    def close(self):
        self._close_w()
        if self.rfd is not None:
            os.close(self.rfd)
            self.rfd = None


def channel_pipes():
    """Make a channel: (the gateway's PipeEnd, the runner's (read fd, write fd), "R:W")."""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    return PipeEnd(from_r, to_w), (to_r, from_w), "%d:%d" % (to_r, from_w)


class Conn:
    """The gateway's end of the channel: frame reads and writes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def recv(self):
        """Return the next Frame, or None if the runner closed the channel between frames."""
        while len(self.buf) < 8:
            data = self.sock.recv(4 * MiB)
            if not data:
                if self.buf:
                    raise AssertionError("channel closed inside a frame header")
                return None
            self.buf += data
        length, ftype, flags, reserved = FRAME.unpack_from(self.buf)
        assert reserved == 0, "reserved field is %d" % reserved
        assert length <= 16 * MiB, "frame of %d bytes" % length
        while len(self.buf) < 8 + length:
            data = self.sock.recv(4 * MiB)
            if not data:
                raise AssertionError("channel closed inside a frame")
            self.buf += data
        payload, self.buf = self.buf[8:8 + length], self.buf[8 + length:]
        return Frame(ftype, flags, payload)

    def send(self, ftype, flags, payload=b""):
        self.sock.sendall(FRAME.pack(len(payload), ftype, flags, 0) + payload)


class Result:
    """One response as the gateway saw it."""

    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.frames = []  # (type, flags, body bytes) of each START/DATA frame
        self.reads = []  # n of each READ
        self.error = False  # the response ended with END|ERROR

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def parse_block(block):
    """Split a header block into (status, [(name, value)])."""
    fields = block.decode("latin-1").split("\0")
    assert len(fields) % 2 == 1, "header block with %d fields" % len(fields)
    return fields[0], list(zip(fields[1::2], fields[2::2]))


# Runner arguments (app, args, chdir) for testdata/runner/wsgiapps.py's app.
WSGIAPPS = ("wsgiapps:app", (), APPS)


class Runner:
    """One runner process and the gateway's end of its channel."""

    def __init__(
        self, app="wsgiapps:app", args=(), chdir=APPS, cookie=COOKIE, env=None, python_args=(),
        pass_fds=(), sock_type=socket.SOCK_STREAM, board=False,
    ):
        self.seq = 0  # REQUEST frames sent (PROTOCOL.md, "Request numbers")
        self.board = Board() if board else None
        if board:
            env = dict(env or {}, WSGI_FCGI_RUNNER_BOARD_FD=str(self.board.fd))
            pass_fds = tuple(pass_fds) + (self.board.fd,)
        self.gate_r, self.gate_w = os.pipe()
        if sock_type == socket.SOCK_STREAM:
            ours, theirs, fd_value = channel_pipes()  # a worker's channel
        else:
            ours, sock = socket.socketpair(socket.AF_UNIX, sock_type)  # a preload master's
            theirs, fd_value = (sock.fileno(),), str(sock.fileno())
        environment = dict(os.environ)
        environment.pop("PYTHONUNBUFFERED", None)  # the runner must make its own streams line-buffered
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONWARNINGS"] = "default"  # ResourceWarning and the like show up in stderr
        environment["WSGI_FCGI_RUNNER_FD"] = fd_value
        if cookie is None:
            environment.pop(COOKIE_VAR, None)
        else:
            environment[COOKIE_VAR] = cookie
        environment.update(env or {})
        cmd = [PYTHON] + list(python_args) + [RUNNER, "--app", app]
        if chdir:
            cmd += ["--chdir", chdir]
        cmd += list(args)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=theirs + (self.gate_r,) + tuple(pass_fds),
            env=environment,
        )
        if sock_type == socket.SOCK_STREAM:
            for fd in theirs:
                os.close(fd)
        else:
            sock.close()
        os.close(self.gate_r)  # the runner holds it now
        if self.board:
            self.board.close_fd()
        ours.settimeout(TIMEOUT)
        self.sock = ours
        self.conn = Conn(ours)
        self.stdout = []
        self.stderr = []
        self.readers = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self.readers:
            t.start()

    @staticmethod
    def _collect(stream, lines):
        for line in iter(stream.readline, b""):
            lines.append(line.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def ready(self):
        """Wait for READY and return its key=value pairs."""
        frame = self.conn.recv()
        assert frame is not None, "runner exited before READY: %s" % self.stderr
        assert frame.type == READY, "want READY, got %r" % (frame,)
        return dict(item.split("=", 1) for item in frame.payload.decode().split())

    def release_gate(self):
        os.write(self.gate_w, b"x")

    def next_seq(self):
        """The number of the next REQUEST on the channel."""
        self.seq += 1
        return self.seq

    def send_request(self, path, environ=None, body=b"", inline=None, eof=None):
        """Send REQUEST; return the body bytes left for READ/BODY and whether EOF was sent.

        Its number is self.seq afterwards."""
        env = base_environ(path, body)
        env["GATE_FD"] = str(self.gate_r)
        env.update(environ or {})
        if inline is None:
            inline = min(len(body), 64 * KiB)
        if eof is None:
            eof = inline >= len(body)
        self.sock.sendall(request_frame(env, body[:inline], eof, self.next_seq()))
        return body[inline:], eof

    def request(self, path, environ=None, body=b"", inline=None, eof=None, **answer):
        """Run one request to its END and return the Result."""
        rest, eof = self.send_request(path, environ, body, inline, eof)
        return self.read_response(rest, eof, **answer)

    def read_response(self, rest=b"", eof=True, body_chunk=None, eof_with_last=True, cut=False, started=False):
        """Read frames up to END, answering READs from rest as the gateway would.

        body_chunk caps each BODY below what READ asked; eof_with_last puts EOF on the BODY
        that carries the last byte (otherwise the runner must stop asking by itself); cut
        answers the first READ with EOF|ERROR (the web server aborted); started says the test
        has already read the START frame itself.
        """
        result = Result()
        if started:
            result.status = "(read by the test)"
        while True:
            frame = self.conn.recv()
            if frame is None:
                raise AssertionError("channel closed mid-response; stderr: %s" % "\n".join(self.stderr))
            if frame.type == READ:
                assert len(frame.payload) == 4, "READ of %d bytes" % len(frame.payload)
                n = U32.unpack(frame.payload)[0]
                assert not eof, "READ(%d) after the body was complete" % n
                assert 0 < n <= MiB, "READ(%d)" % n
                result.reads.append(n)
                if cut:
                    self.conn.send(BODY, EOF | ERROR)
                    eof = True
                    continue
                give = rest[:min(n, body_chunk or n)]
                rest = rest[len(give):]
                flags = EOF if not give or (eof_with_last and not rest) else 0
                self.conn.send(BODY, flags, give)
                eof = bool(flags & EOF)
                continue
            if frame.type == START:
                assert result.status is None, "second START"
                block_len = U32.unpack_from(frame.payload)[0]
                result.status, result.headers = parse_block(frame.payload[4:4 + block_len])
                body = frame.payload[4 + block_len:]
            elif frame.type == DATA:
                assert result.status is not None, "DATA before START"
                body = frame.payload
            else:
                raise AssertionError("unexpected frame %r" % (frame,))
            assert len(body) <= MiB, "%d body bytes in one frame" % len(body)
            result.frames.append((frame.type, frame.flags, len(body)))
            result.body += body
            if frame.flags & END:
                result.error = bool(frame.flags & ERROR)
                return result
            assert not frame.flags & ERROR, "ERROR without END"

    def logs(self):
        """The runner's JSON log lines so far."""
        out = []
        for line in list(self.stderr):
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_for(self, predicate, what):
        """Wait until predicate() is true, for at most TIMEOUT seconds."""
        deadline = time.monotonic() + TIMEOUT
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; stderr: %s" % (what, self.stderr))
            time.sleep(0.01)

    def wait_log(self, predicate, what):
        """Wait for a JSON log line matching predicate and return it."""
        found = []

        def check():
            found[:] = [entry for entry in self.logs() if predicate(entry)]
            return found

        self.wait_for(check, what)
        return found[0]

    def close(self):
        """Close the channel (as the gateway's stop does) and return the exit status."""
        self.sock.close()
        return self.wait()

    def wait(self):
        """Wait for the runner to exit and return its status."""
        try:
            rc = self.proc.wait(TIMEOUT)
        finally:
            self.sock.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self.readers:
                t.join(TIMEOUT)
            os.close(self.gate_w)
        return rc


class EncoderTest(unittest.TestCase):
    """The test's environ encoder matches what marshal.loads reads (so the other tests mean something)."""

    def test_round_trip(self):
        env = {
            "PATH_INFO": "/caf\xe9",
            "EMPTY": "",
            "LONG_ASCII": "a" * 300,
            "LONG_LATIN1": "\xff" * 300,
            "X" * 300: "long key",
        }
        self.assertEqual(marshal.loads(encode_environ(env)), env)


class ServeTest(unittest.TestCase):
    """Responses: framing, streaming, errors. One worker serves the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner(*WSGIAPPS)
        cls.info = cls.runner.ready()

    @classmethod
    def tearDownClass(cls):
        rc = cls.runner.close()
        assert rc == 0, "runner exit status %r" % rc
        warnings = [line for line in cls.runner.stderr if "Warning" in line]
        assert not warnings, warnings

    def req(self, path, **kw):
        return self.runner.request(path, **kw)

    def closed(self):
        """The labels of the iterables closed since the last call."""
        labels = self.req("/closed").body.decode()
        return labels.split(",") if labels else []

    def assert_runner_500(self, result):
        self.assertEqual(result.status, "500 Internal Server Error")
        self.assertEqual(result.body, b"Internal Server Error\n")
        self.assertEqual(result.frames, [(START, END, len(result.body))])
        self.assertFalse(result.error)

    def test_ready(self):
        self.assertEqual(self.info["protocol"], "2")
        self.assertEqual(int(self.info["pid"]), self.runner.proc.pid)
        self.assertRegex(self.info["python"], r"^3\.\d+\.\d+$")

    def test_hello_is_one_frame(self):
        for _ in range(3):  # and the worker is ready again after each
            r = self.req("/hello")
            self.assertEqual(r.status, "200 OK")
            self.assertEqual(r.headers, [("Content-Type", "text/plain"), ("Content-Length", "13")])
            self.assertEqual(r.body, b"Hello, world!")
            self.assertEqual(r.frames, [(START, END, 13)])

    def test_environ(self):
        env = json.loads(self.req("/environ", environ={"HTTP_X_A": "b"}).body)
        self.assertEqual(env["cgi"]["HTTP_X_A"], "b")
        self.assertEqual(env["cgi"]["PATH_INFO"], "/environ")
        self.assertTrue(env["all_str"])
        if _python_impl() == "cpython":
            # marshal's interned keys are the app's literals; PyPy does not intern them, and its
            # `is` on two equal str objects is no promise either way.
            self.assertTrue(env["key_is_literal"])
        self.assertEqual(env["version"], [1, 0])
        self.assertEqual(env["url_scheme"], "http")
        self.assertEqual(
            (env["multithread"], env["multiprocess"], env["run_once"], env["input_terminated"]),
            (False, True, False, True),
        )
        self.assertTrue(env["errors_has_write"] and env["file_wrapper_callable"] and env["input_has_read"])
        self.assertNotIn(COOKIE_VAR, env["cgi"])

    def test_latin1_environ_value(self):
        for value in ("caf\xe9 \xff\x80", "\xe9" * 300, "plain " * 60, ""):
            r = self.req("/echo-header", environ={"HTTP_X_TEST": value})
            self.assertEqual(r.body, value.encode("latin-1"))

    def test_list_without_length(self):
        r = self.req("/list")
        self.assertEqual(r.body, b"ab")
        self.assertEqual(r.frames, [(START, 0, 1), (DATA, END, 1)])  # END rides on the last item
        self.assertEqual(self.req("/tuple").frames, [(START, 0, 1), (DATA, END, 1)])
        self.assertEqual(self.req("/list-one").frames, [(START, END, 2)])
        self.assertEqual(self.req("/list-trailing-empty").frames, [(START, END, 2)])

    def test_empty_body(self):
        r = self.req("/empty")
        self.assertEqual((r.status, r.headers, r.body), ("204 No Content", [], b""))
        self.assertEqual(r.frames, [(START, END, 0)])

    def test_generator_streams(self):
        self.runner.send_request("/stream")
        # "first" must arrive while the generator waits on the gate: were it buffered, this
        # recv would time out.
        frame = self.runner.conn.recv()
        self.assertEqual((frame.type, frame.flags), (START, 0))
        self.assertTrue(frame.payload.endswith(b"first"))
        self.runner.release_gate()
        r = self.runner.read_response(started=True)
        self.assertEqual(r.body, b"second")
        self.assertEqual(r.frames, [(DATA, 0, 6), (DATA, END, 0)])

    def test_write_callable(self):
        self.runner.send_request("/write")
        frame = self.runner.conn.recv()  # write(b"one") went out before write() returned
        self.assertEqual((frame.type, frame.flags), (START, 0))
        self.assertTrue(frame.payload.endswith(b"one"))
        self.runner.release_gate()
        r = self.runner.read_response(started=True)
        self.assertEqual(r.body, b"twothree")
        self.assertEqual(r.frames, [(DATA, 0, 3), (DATA, END, 5)])

    def test_big_chunk_is_split(self):
        size = 2 * MiB + 5
        r = self.req("/big", environ={"QUERY_STRING": str(size)})
        self.assertEqual(r.body, b"x" * size)
        self.assertEqual(r.frames, [(START, 0, MiB), (DATA, 0, MiB), (DATA, END, 5)])

    def test_big_chunk_with_length(self):
        size = 3 * MiB
        r = self.req("/big-cl", environ={"QUERY_STRING": str(size)})
        self.assertEqual(len(r.body), size)
        self.assertEqual(r.frames, [(START, 0, MiB), (DATA, 0, MiB), (DATA, END, MiB)])

    def test_content_length_ends_early(self):
        r = self.req("/cl-early")
        self.assertEqual(r.body, b"abcdef")
        self.assertEqual(r.frames, [(START, 0, 3), (DATA, END, 3)])
        self.assertEqual(self.closed(), ["cl-early"])  # iterated to the end, then closed
        self.runner.wait_log(lambda e: "Content-Length" in e["@message"] and e.get("dropped") == 5, "dropped log")

    def test_content_length_truncates(self):
        r = self.req("/cl-over")
        self.assertEqual(r.body, b"abcd")
        self.assertEqual(r.frames, [(START, END, 4)])

    def test_exception_before_start_response(self):
        r = self.req("/raise-before")
        self.assert_runner_500(r)
        entry = self.runner.wait_log(lambda e: "boom-before" in e.get("error", ""), "error log")
        self.assertEqual(entry["@level"], "error")
        self.assertEqual(entry["@module"], "runner")
        self.assertIn("Traceback", entry["traceback"])
        self.assertIn("boom-before", entry["traceback"])
        self.assertEqual(entry["uri"], "/raise-before")
        self.assertEqual(self.req("/hello").body, b"Hello, world!")  # and the worker goes on

    def test_exception_before_first_chunk(self):
        self.assert_runner_500(self.req("/raise-after-start"))
        self.assert_runner_500(self.req("/raise-in-first"))
        self.assertEqual(self.closed(), ["raise-in-first"])

    def test_exception_after_start(self):
        r = self.req("/raise-mid")
        self.assertEqual(r.body, b"partial")
        self.assertEqual(r.frames, [(START, 0, 7), (DATA, END | ERROR, 0)])
        self.assertTrue(r.error)
        self.assertEqual(self.closed(), ["raise-mid"])
        self.runner.wait_log(lambda e: "boom-mid" in e.get("error", "") and e["headers_sent"], "error log")

    def test_close_always_called(self):
        self.assertEqual(self.req("/close-normal").body, b"ab")
        self.assertEqual(self.closed(), ["normal"])
        r = self.req("/close-early")
        self.assertEqual(r.frames, [(START, END, 1)])
        self.assertEqual(self.closed(), ["early"])

    def test_close_raising(self):
        r = self.req("/close-raises")
        self.assertEqual((r.body, r.error), (b"body", False))  # END went out before close()
        self.assertEqual(self.closed(), ["bad-close"])
        self.runner.wait_log(lambda e: "boom in close" in e.get("error", ""), "close error log")

    def test_exc_info_replaces_headers(self):
        r = self.req("/excinfo-replace")
        self.assertEqual((r.status, r.body), ("503 Service Unavailable", b"replaced"))

    def test_exc_info_after_headers_reraises(self):
        r = self.req("/excinfo-after")
        self.assertEqual((r.status, r.body, r.error), ("200 OK", b"sent", True))
        self.runner.wait_log(lambda e: "too late" in e.get("error", ""), "re-raised error")

    def test_start_response_twice(self):
        self.assert_runner_500(self.req("/excinfo-twice"))
        self.runner.wait_log(lambda e: "second time" in e.get("error", ""), "twice error")

    def test_invalid_headers(self):
        for kind in ("value-int", "name-bytes", "status-bytes", "not-latin1", "nul-value", "nul-status", "triple", "huge"):
            with self.subTest(kind=kind):
                self.assert_runner_500(self.req("/bad-header", environ={"QUERY_STRING": kind}))
        self.runner.wait_log(lambda e: "value of header 'X-Num' must be str, not int" in e.get("error", ""), "log")

    def test_header_error_is_raised_in_start_response(self):
        r = self.req("/bad-header-caught")
        self.assertEqual((r.status, r.body), ("200 OK", b"recovered"))

    def test_bad_body_and_missing_start_response(self):
        self.assert_runner_500(self.req("/str-chunk"))
        self.assert_runner_500(self.req("/no-start"))

    def test_print_does_not_touch_channel(self):
        r = self.req("/print")
        self.assertEqual(r.body, b"printed")
        self.runner.wait_for(lambda: any(l.startswith("printed line 199") for l in self.runner.stdout), "stdout")
        self.runner.wait_for(lambda: "to stderr" in self.runner.stderr, "stderr")

    def test_wsgi_errors(self):
        """Each flush of wsgi.errors is one record (the gateway logs it at the record's level)."""
        self.assertEqual(self.req("/errors", environ={"wsgi_fcgi.request_id": "rid-errors"}).body, b"logged")
        rec = self.runner.wait_log(lambda r: r.get("stream") == "wsgi.errors", "wsgi.errors record")
        self.assertEqual(
            (rec["@level"], rec["@message"], rec.get("more"), rec.get("request_id")),
            ("info", "line from wsgi.errors", "two lines", "rid-errors"),
        )

    def test_wsgi_errors_traceback(self):
        """A traceback written to wsgi.errors line by line is one error record, at the end of
        the request when the app does not flush."""
        self.assertEqual(self.req("/errors-traceback").body, b"logged")
        rec = self.runner.wait_log(lambda r: r.get("@message") == "handled an error:", "traceback record")
        self.assertEqual((rec["@level"], rec["stream"], rec["error"]), ("error", "wsgi.errors", "ValueError: logged, not raised"))
        self.assertTrue(rec["traceback"].startswith("Traceback (most recent call last):\n  File "), rec["traceback"])
        self.assertFalse([l for l in self.runner.stderr if "logged, not raised" in l and not l.startswith("{")])

    def test_file_wrapper(self):
        data = os.urandom(2 * MiB + 100)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            r = self.req("/file", environ={"FILE_PATH": f.name})
            self.assertEqual(r.body, data)
            self.assertEqual(r.frames, [(START, 0, MiB), (DATA, 0, MiB), (DATA, 0, 100), (DATA, END, 0)])
            self.assertEqual(self.closed(), ["file"])
            self.assertEqual(self.req("/file-real", environ={"FILE_PATH": f.name}).body, data)

    def test_read_after_end_sends_no_read(self):
        body = b"z" * (100 * KiB)
        r = self.req("/read-after-end", body=body, inline=10)
        self.assertEqual((r.body, r.reads), (b"ok", []))
        self.assertEqual(self.closed(), ["read-after-end:10"])  # only what had already arrived


class RunOnceTest(unittest.TestCase):
    """--run-once (the gateway run as a CGI program): wsgi.run_once is True."""

    def test_run_once(self):
        runner = Runner(args=("--run-once",))
        self.addCleanup(runner.close)
        runner.ready()
        env = json.loads(runner.request("/environ").body)
        self.assertEqual((env["run_once"], env["multiprocess"], env["multithread"]), (True, True, False))


class DebugTest(unittest.TestCase):
    """--debug: the runner's 500 carries the traceback; it is logged with or without it."""

    def start(self, args):
        runner = Runner(args=args)
        self.addCleanup(runner.close)
        runner.ready()
        return runner

    def test_traceback_in_body(self):
        runner = self.start(("--debug",))
        r = runner.request("/raise-before")
        self.assertEqual(r.status, "500 Internal Server Error")
        self.assertTrue(r.body.startswith(b"Internal Server Error\n\nTraceback"), r.body)
        self.assertIn(b"boom-before", r.body)
        self.assertEqual(r.frames, [(START, END, len(r.body))])  # Content-Length matches too
        self.assertEqual(r.header("Content-Length"), str(len(r.body)))
        entry = runner.wait_log(lambda e: "boom-before" in e.get("error", ""), "error log")
        self.assertIn("boom-before", entry["traceback"])
        self.assertEqual(runner.request("/hello").body, b"Hello, world!")

    def test_off_by_default(self):
        r = self.start(()).request("/raise-before")
        self.assertEqual(r.body, b"Internal Server Error\n")

    def test_preload_workers_inherit_it(self):
        master = Runner(args=("--preload", "--debug"), sock_type=socket.SOCK_SEQPACKET)
        self.addCleanup(lambda: master.proc.poll() is None and master.proc.kill())
        master.ready()
        conn, _, pid = PreloadTest.fork(self, master, 1)
        conn.sock.sendall(request_frame(base_environ("/raise-before")))
        frame = conn.recv()
        self.assertEqual(frame.type, START)
        self.assertIn(b"boom-before", frame.payload)
        conn.sock.close()
        master.conn.recv()  # EXITED
        self.assertEqual(master.close(), 0)


class BodyTest(unittest.TestCase):
    """wsgi.input: inline body, READ/BODY exchanges, CONTENT_LENGTH bounds."""

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner()
        cls.runner.ready()

    @classmethod
    def tearDownClass(cls):
        assert cls.runner.close() == 0
        warnings = [line for line in cls.runner.stderr if "Warning" in line]
        assert not warnings, warnings

    def req(self, path, **kw):
        return self.runner.request(path, **kw)

    def test_large_body(self):
        body = os.urandom(3 * MiB + 123)
        r = self.req("/sha", body=body)
        self.assertEqual(r.body.decode(), "%d %s" % (len(body), hashlib.sha256(body).hexdigest()))
        self.assertEqual(r.reads, [MiB, MiB, len(body) - 64 * KiB - 2 * MiB])

    def test_large_body_short_answers(self):
        # The gateway may answer a READ with less than it asked for, and send EOF separately.
        body = os.urandom(300 * KiB)
        r = self.req("/sha", body=body, inline=1000, body_chunk=50 * KiB, eof_with_last=False)
        self.assertEqual(r.body.decode(), "%d %s" % (len(body), hashlib.sha256(body).hexdigest()))

    def test_read_n_asks_at_least_64k(self):
        body = os.urandom(200 * KiB)
        r = self.req("/sha-chunks", body=body, inline=5000, environ={"QUERY_STRING": "1000"})
        self.assertEqual(r.body.decode(), "%d %s" % (len(body), hashlib.sha256(body).hexdigest()))
        self.assertEqual(r.reads, [64 * KiB, 64 * KiB, 64 * KiB, len(body) - 5000 - 3 * 64 * KiB])

    def test_read_n_large(self):
        body = os.urandom(3 * MiB)
        r = self.req("/sha-chunks", body=body, inline=0, eof=False, environ={"QUERY_STRING": str(2 * MiB)})
        self.assertEqual(r.body.decode(), "%d %s" % (len(body), hashlib.sha256(body).hexdigest()))
        self.assertEqual(r.reads, [MiB, MiB, MiB])

    def test_line_reads_match_bytesio(self):
        short = b"first line\nsecond\n\nthird line here\nshort\nlast without newline"
        long = b"a\n" + b"y" * 70000 + b"\nafter the long line\n" + b"z" * 66000
        cases = [
            "readline,readline:3,readline,read:4,readline,readline,readline,readline",
            "readlines",
            "readlines:15,read:2,iter",
            "iter",
            "readline:0,read:0,read,read,readline",
            "read:30,readline,readline:2,readline:100",
        ]
        sys.path.insert(0, APPS)
        try:
            import wsgiapps
        finally:
            sys.path.remove(APPS)
        # Small BODY answers put frame boundaries inside lines; the long body crosses READ_MIN.
        for body, inlines, chunks in [(short, (0, 5, 20, len(short)), (None, 3)), (long, (0, 70000), (None, 5000))]:
            for ops in cases:
                expected = wsgiapps.run_ops(io.BytesIO(body), ops)
                for inline in inlines:
                    for chunk in chunks:
                        with self.subTest(ops=ops, size=len(body), inline=inline, chunk=chunk):
                            r = self.req("/ops", body=body, inline=inline, body_chunk=chunk, environ={"QUERY_STRING": ops})
                            self.assertEqual(json.loads(r.body), expected)

    def test_reads_capped_at_content_length(self):
        # CONTENT_LENGTH 10: the runner asks for no more than the 6 bytes still missing.
        r = self.req("/cap", body=b"0123456789", inline=4)
        self.assertEqual((r.body, r.reads), (b"10 0 0", [6]))
        # Inline bytes beyond CONTENT_LENGTH are not handed to the app.
        r = self.req("/cap", body=b"0123456789", environ={"CONTENT_LENGTH": "7"})
        self.assertEqual((r.body, r.reads), (b"7 0 0", []))

    def test_eof_flag_means_no_read(self):
        # The REQUEST says EOF after 4 bytes although CONTENT_LENGTH says 10: no READ is sent.
        rest, _ = self.runner.send_request("/cap", body=b"0123456789", inline=4, eof=True)
        r = self.runner.read_response(rest, eof=True)
        self.assertEqual((r.body, r.reads), (b"4 0 0", []))

    def test_app_ignores_body(self):
        r = self.req("/ignore", body=b"q" * MiB)
        self.assertEqual((r.body, r.reads), (b"ignored", []))
        self.assertEqual(self.req("/ignore").body, b"ignored")  # nothing was left in the channel

    def test_body_cut_short(self):
        r = self.req("/read-cut", body=b"c" * (200 * KiB), cut=True)
        self.assertEqual(r.body, b"OSError OSError")
        self.assertEqual(len(r.reads), 1)  # the second read raises without asking again

    def test_no_body(self):
        r = self.req("/cap")
        self.assertEqual((r.body, r.reads), (b"0 0 0", []))


class LifecycleTest(unittest.TestCase):
    """Start-up, loading the app, and every way the worker ends."""

    def start(self, app, **kw):
        runner = Runner(app, **kw)
        self.addCleanup(lambda: runner.proc.poll() is None and runner.proc.kill())
        return runner

    def assert_fatal(self, app, message, traceback_has=None, **kw):
        """The runner sends FATAL (message, then any traceback), logs nothing, and exits 4."""
        runner = self.start(app, **kw)
        frame = runner.conn.recv()
        self.assertEqual(frame.type, FATAL)
        first, _, tb = frame.payload.decode().partition("\n")
        self.assertEqual(first, message)
        if traceback_has is None:
            self.assertEqual(tb, "")
        else:
            self.assertIn(traceback_has, tb)
            self.assertNotIn("runner.py", tb)  # only the app's frames
            self.assertNotIn("importlib", tb)
        self.assertIsNone(runner.conn.recv())
        self.assertEqual(runner.close(), 4)
        self.assertEqual(runner.logs(), [])  # PROTOCOL.md: the gateway logs it, not the runner

    def test_import_failures(self):
        self.assert_fatal(
            "no_such_module_xyz",
            "cannot import \"no_such_module_xyz\" with %s: ModuleNotFoundError: No module named 'no_such_module_xyz'"
            % interpreter_label(),
        )
        self.assert_fatal(
            "broken_import:app",
            'cannot import "broken_import:app" with %s: RuntimeError: boom at import' % interpreter_label(),
            traceback_has='broken_import.py", line 3, in <module>\n    raise RuntimeError("boom at import")',
        )
        self.assert_fatal(
            "exit_at_import",
            'cannot import "exit_at_import" with %s: SystemExit: 7' % interpreter_label(),
            traceback_has="sys.exit(7)",
        )
        self.assert_fatal("hello:nope", 'app "hello:nope": module has no attribute "nope"')
        self.assert_fatal("hello:app.x", 'app "hello:app.x": module has no attribute "app.x"')
        self.assert_fatal("wsgiapps:NOT_CALLABLE", 'app "wsgiapps:NOT_CALLABLE": "NOT_CALLABLE" is not callable (int)')
        self.assert_fatal(":app", 'app ":app": expected module:callable')
        self.assert_fatal("hello", 'cannot chdir to "/no/such/dir": No such file or directory', chdir="/no/such/dir")

    def test_syntax_error_shows_where(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "bad_syntax.py"), "w") as f:
                f.write("def application(environ, start_response)\n    pass\n")
            runner = self.start("bad_syntax", args=["--pythonpath", tmp])
            frame = runner.conn.recv()
            first, _, tb = frame.payload.decode().partition("\n")
            self.assertTrue(first.startswith('cannot import "bad_syntax" with %s: SyntaxError: ' % interpreter_label()), first)
            self.assertIn('bad_syntax.py", line 1', tb)
            self.assertIn("def application(environ, start_response)", tb)
            self.assertEqual(runner.close(), 4)

    def test_app_spellings(self):
        for app, kw in [
            ("hello", {}),  # module alone: application
            ("hello:app", {}),
            ("wsgiapps:holder.app", {}),  # dotted attribute path
            ("pathapp", {"args": ["--pythonpath", "extra"]}),  # relative to --chdir
            ("pathapp", {"args": ["--pythonpath", os.path.join(APPS, "extra")], "chdir": None}),
        ]:
            with self.subTest(app=app):
                runner = self.start(app, **kw)
                runner.ready()
                path = "/hello" if app.startswith("wsgiapps") else "/"
                r = runner.request(path)
                self.assertIn(r.body, (b"Hello, world!", b"from pythonpath"))
                self.assertEqual(runner.close(), 0)

    def test_chdir(self):
        runner = self.start("wsgiapps", chdir=os.path.join(APPS, "extra"), args=["--pythonpath", APPS])
        runner.ready()
        self.assertEqual(runner.request("/cwd").body.decode(), os.path.join(APPS, "extra"))
        self.assertEqual(runner.close(), 0)

    def test_missing_cookie(self):
        for cookie in (None, "wrong"):
            runner = self.start("hello", cookie=cookie)
            self.assertIsNone(runner.conn.recv())
            self.assertEqual(runner.close(), 2)
            self.assertEqual(len(runner.stderr), 1, runner.stderr)
            self.assertIn("wsgi-fcgi", runner.stderr[0])

    def test_bad_fd(self):
        runner = self.start("hello", env={"WSGI_FCGI_RUNNER_FD": "not-a-number"})
        self.assertEqual(runner.close(), 2)

    def test_channel_eof_exits_zero(self):
        runner = self.start("hello")
        runner.ready()
        self.assertEqual(runner.close(), 0)

    def test_protocol_errors_exit_one(self):
        bad = [
            FRAME.pack(4, BODY, 0, 0) + b"abcd",  # BODY while idle
            FRAME.pack(16 * MiB + 1, REQUEST, 0, 0),  # over the size limit
            FRAME.pack(5, REQUEST, EOF, 1) + U32.pack(1) + b"?",  # not marshal
            FRAME.pack(8, REQUEST, 0, 0) + b"abc",  # channel closes inside a frame
        ]
        for frame in bad:
            with self.subTest(frame=frame[:12]):
                runner = self.start("hello")
                runner.ready()
                runner.sock.sendall(frame)
                runner.sock.shutdown(socket.SHUT_WR)
                self.assertIsNone(runner.conn.recv())
                self.assertEqual(runner.close(), 1)
                runner.wait_log(lambda e: e["@message"] == "channel error: exiting", "channel error log")

    def test_sigterm_when_idle(self):
        runner = self.start("hello")
        runner.ready()
        runner.request("/")
        began = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        self.assertEqual(runner.wait(), 0)
        self.assertLess(time.monotonic() - began, 5)

    def test_sigterm_finishes_current_request(self):
        runner = self.start("wsgiapps")
        runner.ready()
        runner.send_request("/gate")
        frame = runner.conn.recv()
        self.assertTrue(frame.payload.endswith(b"before"))
        runner.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        self.assertIsNone(runner.proc.poll())  # still busy with the request
        runner.release_gate()
        r = runner.read_response(started=True)
        self.assertEqual((r.body, r.error), (b"after", False))
        self.assertIsNone(runner.conn.recv())  # then it exits without waiting for another
        self.assertEqual(runner.wait(), 0)

    def test_app_exit_answers_then_exits(self):
        runner = self.start("wsgiapps")
        runner.ready()
        r = runner.request("/exit")
        self.assertEqual(r.status, "500 Internal Server Error")
        self.assertIsNone(runner.conn.recv())
        self.assertEqual(runner.wait(), 0)

    def test_parent_change_exits(self):
        # A middle process starts the runner, then exits when the test closes its stdin: the
        # runner is re-parented, serves the request it gets, then sees the new parent and exits.
        ours, theirs, fd_value = channel_pipes()
        ours.settimeout(TIMEOUT)
        self.addCleanup(ours.close)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", WSGI_FCGI_RUNNER_FD=fd_value)
        env[COOKIE_VAR] = COOKIE
        middle_code = (
            "import subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], pass_fds=[%d, %d], stdin=subprocess.DEVNULL,"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(p.pid, flush=True)\n"
            "sys.stdin.read()\n" % theirs
        )
        middle = subprocess.Popen(
            [sys.executable, "-c", middle_code, PYTHON, RUNNER, "--app", "hello", "--chdir", APPS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=list(theirs),
            env=env,
        )
        for fd in theirs:
            os.close(fd)
        pid = int(middle.stdout.readline())
        self.addCleanup(lambda: _kill_quietly(pid))
        conn = Conn(ours)
        self.assertEqual(conn.recv().type, READY)
        middle.stdin.close()
        self.assertEqual(middle.wait(TIMEOUT), 0)
        middle.stdout.close()
        ours.sendall(request_frame(base_environ("/")))
        frame = conn.recv()
        self.assertEqual((frame.type, frame.flags), (START, END))
        self.assertIsNone(conn.recv())  # exited: the channel closed


def _kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def import_runner():
    """Import runner.py into the test process, for tests of its parts."""
    sys.path.insert(0, HERE)
    try:
        import runner
    finally:
        sys.path.remove(HERE)
    return runner


class TrickleEnds:
    """Fake channel ends: readinto hands out the bytes given in pieces of `step`; write and
    writev accept at most `step` bytes per call, as a write interrupted by a signal does."""

    def __init__(self, incoming=b"", step=1):
        self.incoming = memoryview(incoming)
        self.step = step
        self.sent = b""
        self.calls = 0

    def readinto(self, buf):
        n = min(self.step, len(self.incoming), len(buf))
        buf[:n] = self.incoming[:n]
        self.incoming = self.incoming[n:]
        return n

    def writev(self, parts):
        self.calls += 1
        data = b"".join(bytes(p) for p in parts)[:self.step]
        self.sent += data
        return len(data)

    def write(self, data):
        return self.writev([data])

    def close(self):
        pass


class ChannelTest(unittest.TestCase):
    """The runner's framing, in-process, with fake channel ends."""

    def setUp(self):
        self.runner = import_runner()

    def test_recv_in_small_pieces_and_many_at_once(self):
        # The last frame is bigger than the initial receive buffer, which must grow.
        frames = [(REQUEST, EOF, b"abc"), (BODY, 0, b""), (BODY, EOF, os.urandom(300 * KiB))]
        wire = b"".join(FRAME.pack(len(p), t, f, 0) + p for t, f, p in frames)
        for step in (3, 4099, 100 * KiB, len(wire)):
            with self.subTest(step=step):
                chan = self.runner.Channel(TrickleEnds(wire, step))
                for ftype, flags, payload in frames:
                    self.assertEqual(tuple(chan.recv()), (ftype, flags, payload))
                self.assertIsNone(chan.recv())

    def test_eof_inside_a_frame(self):
        chan = self.runner.Channel(TrickleEnds(FRAME.pack(10, BODY, 0, 0) + b"abc", 4))
        with self.assertRaises(self.runner.ChannelError):
            chan.recv()

    def test_partial_sends_complete(self):
        for total in (100, 5000):  # joined and send(), or sendmsg
            ends = TrickleEnds(step=37)
            chan = self.runner.Channel(ends)
            body = os.urandom(total)
            chan.send_start(END, b"200 OK", body)
            want = struct.pack("<IBBHI", 4 + 6 + total, START, END, 0, 6) + b"200 OK" + body
            self.assertEqual(ends.sent, want)
            self.assertEqual(ends.calls, -(-len(want) // 37))


class ImportTracebackTest(unittest.TestCase):
    """FATAL's traceback stays within what the gateway reads (64 KiB)."""

    def test_long_traceback_keeps_its_end(self):
        runner = import_runner()
        try:
            raise ValueError("x" * (100 * KiB) + " the end")
        except ValueError as e:
            text = runner.import_traceback(e)
        self.assertLessEqual(len(text), 61 * KiB)
        self.assertTrue(text.startswith("...\n"))
        self.assertTrue(text.endswith(" the end"))


class ErrorRecordTest(unittest.TestCase):
    """The record a flush of wsgi.errors becomes."""

    def test_records(self):
        runner = import_runner()
        tb = 'Traceback (most recent call last):\n  File "/srv/app.py", line 1, in f\n    g()\nKeyError: 1'
        cases = [
            ("", None),
            (" \n\n", None),
            ("one line\n", ("info", "one line", {})),
            ("\nfirst\nsecond\n", ("info", "first", {"more": "second"})),
            (tb + "\n", ("error", "KeyError: 1", {"traceback": tb})),
            ("ERROR in app: boom\n" + tb, ("error", "ERROR in app: boom", {"error": "KeyError: 1", "traceback": tb})),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                self.assertEqual(runner.error_record(text), want)

    def test_keeps_until_flush_then_one_record(self):
        runner = import_runner()
        lines = []
        stream = runner.ErrorStream(types.SimpleNamespace(in_app=False, request_id="r1"))
        saved, runner.log = runner.log, lambda level, message, **f: lines.append((level, message, f))
        try:
            stream.write("a\n")
            stream.writelines(["b", "\n"])
            self.assertEqual(lines, [])
            stream.flush()
            stream.flush()
        finally:
            runner.log = saved
        self.assertEqual(lines, [("info", "a", {"more": "b", "stream": "wsgi.errors", "request_id": "r1"})])

    def test_outside_a_request_a_line_goes_at_once(self):
        runner = import_runner()
        lines = []
        stream = runner.ErrorStream(types.SimpleNamespace(in_app=False, request_id=""))
        saved, runner.log = runner.log, lambda level, message, **f: lines.append((level, message, f))
        try:
            stream.write("from a background thread")
            self.assertEqual(lines, [])
            stream.write("\n")
        finally:
            runner.log = saved
        self.assertEqual(lines, [("info", "from a background thread", {"stream": "wsgi.errors"})])


class FileWrapperTest(unittest.TestCase):
    """wsgi.file_wrapper used as a plain iterable (by middleware that wraps the app's result)."""

    def test_iterates_in_blocks_and_closes(self):
        runner = import_runner()
        f = io.BytesIO(b"a" * 10000)
        wrapper = runner.FileWrapper(f)
        self.assertEqual([len(b) for b in wrapper], [8192, 1808])
        self.assertEqual([len(b) for b in runner.FileWrapper(io.BytesIO(b"abcde"), 2)], [2, 2, 1])
        wrapper.close()
        self.assertTrue(f.closed)


HELLO_ENVIRON = {
    # What nginx's fastcgi_params give for GET / (as bench/inproc.py builds it).
    "QUERY_STRING": "",
    "REQUEST_METHOD": "GET",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "REQUEST_URI": "/",
    "DOCUMENT_URI": "/",
    "DOCUMENT_ROOT": "/usr/share/nginx/html",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REQUEST_SCHEME": "http",
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SERVER_SOFTWARE": "nginx/1.22.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "40000",
    "REMOTE_USER": "",
    "SERVER_ADDR": "127.0.0.1",
    "SERVER_PORT": "8080",
    "SERVER_NAME": "localhost",
    "REDIRECT_STATUS": "200",
    "HTTP_HOST": "127.0.0.1",
    "HTTP_USER_AGENT": "fcgiload",
    "HTTP_ACCEPT": "*/*",
    "wsgi.url_scheme": "http",
}


def drive(runner, frame, count):
    """Send `count` hello requests one after another, each after the previous END; return seconds."""
    buf = bytearray(64 * KiB)
    view = memoryview(buf)
    sock = runner.sock
    frame = bytearray(frame)
    recv_into, sendall, unpack_from = sock.recv_into, sock.sendall, FRAME.unpack_from
    number, first = U16.pack_into, runner.seq + 1
    runner.seq += count
    began = time.perf_counter()
    for n in range(first, first + count):
        number(frame, 6, n & 0xFFFF)
        sendall(frame)
        have = recv_into(buf)
        while have < 8 or have < 8 + unpack_from(buf)[0]:
            have += recv_into(view[have:])
        length, ftype, flags, _ = unpack_from(buf)
        if ftype != START or flags != END or have != 8 + length:
            raise AssertionError("want one START|END frame, got type %d flags %d" % (ftype, flags))
    return time.perf_counter() - began


def cpu_seconds(pid):
    """CPU time a process has used: /proc/PID/schedstat (ns), else /proc/PID/stat (ticks)."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            ns = int(f.read().split()[0])
        if ns:
            return ns / 1e9
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# A stand-in for the runner that answers every frame with a fixed START|END frame and does
# nothing else: the round trip of two Python processes over the channel's pipes on this machine now.
ECHO = """
import io, os, struct
r, w = (int(fd) for fd in os.environ["WSGI_FCGI_RUNNER_FD"].split(":"))
readinto = io.FileIO(r, "rb", closefd=False).readinto
reply = struct.pack("<IBBHI", 4, 18, 2, 0, 0)
os.write(w, struct.pack("<IBBH", 0, 16, 0, 0))
buf = bytearray(1 << 18)
while readinto(buf):
    os.write(w, reply)
"""


def read_pipe(fd, until):
    """Read fd until `until` (bytes) has arrived; return all of it as text."""
    data = b""
    deadline = time.monotonic() + TIMEOUT
    while until not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r in %r" % (until, data))
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("pipe closed; got %r, want %r" % (data, until))
            data += chunk
    return data.decode("utf-8", "replace")


def proc_gone(pid):
    """Whether pid has exited (gone, or a zombie no one reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class StackDumpTest(unittest.TestCase):
    """SIGUSR1 writes every thread's stack to WSGI_FCGI_RUNNER_STACK_FD (PROTOCOL.md)."""

    def test_sigusr1_dumps_the_running_app(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        runner = Runner(env={"WSGI_FCGI_RUNNER_STACK_FD": str(w)}, pass_fds=(w,))
        os.close(w)
        self.addCleanup(lambda: runner.proc.poll() is None and runner.proc.kill())
        runner.ready()
        runner.send_request("/gate")
        self.assertEqual(runner.conn.recv().type, START)  # the app now waits at the gate
        # START may reach us before the app got to the gate: ask again until it is there.
        deadline = time.monotonic() + TIMEOUT
        while True:
            runner.proc.send_signal(signal.SIGUSR1)
            stack = read_pipe(r, b"in <module>")
            if "in wait_gate" in stack or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.assertIn("in wait_gate", stack)
        self.assertIn("wsgiapps.py", stack)
        runner.release_gate()
        result = runner.read_response(started=True)
        self.assertEqual(result.body, b"after")  # the dump did not disturb the request
        self.assertEqual(runner.close(), 0)


@unittest.skipUnless(sys.platform.startswith("linux"), "PR_SET_PDEATHSIG and /proc are Linux")
class PreloadTest(unittest.TestCase):
    """A preload master (--preload): FORK, SPAWNED, EXITED on a SOCK_SEQPACKET control socket."""

    def start_master(self, app="wsgiapps:app"):
        master = Runner(app, args=("--preload",), sock_type=socket.SOCK_SEQPACKET)
        self.addCleanup(lambda: master.proc.poll() is None and master.proc.kill())
        return master

    def fork(self, master, token, board=None, output=None):
        """Ask for a worker; return (its Conn, its stack pipe's read end, its pid).

        board: a Board whose descriptor goes with FORK, between the channel and the stack pipe.
        The worker's stdout and stderr are two pipes that go first; output, a list, receives
        their read ends."""
        ours, theirs, _ = channel_pipes()
        r, w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fds = (out_w, err_w) + theirs + ((board.fd,) if board else ()) + (w,)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))]
        master.sock.sendmsg([FRAME.pack(4, FORK, 0, 0) + U32.pack(token)], rights)
        for fd in (out_w, err_w) + theirs + (w,):
            os.close(fd)
        self.addCleanup(ours.close)
        for fd in (r, out_r, err_r):
            self.addCleanup(os.close, fd)
        if output is not None:
            output[:] = [out_r, err_r]
        frame = master.conn.recv()
        self.assertEqual(frame.type, SPAWNED)
        got_token, pid = struct.unpack("<II", frame.payload)
        self.assertEqual(got_token, token)
        self.addCleanup(lambda: proc_gone(pid) or os.kill(pid, signal.SIGKILL))
        ours.settimeout(TIMEOUT)
        conn = Conn(ours)
        ready = conn.recv()
        self.assertEqual(ready.type, READY)
        self.assertIn(b"pid=%d " % pid, ready.payload)
        return conn, r, pid

    def exited(self, master):
        frame = master.conn.recv()
        self.assertEqual(frame.type, EXITED)
        return struct.unpack("<Ii", frame.payload)

    def test_forked_workers_serve_and_are_reported(self):
        master = self.start_master()
        self.assertEqual(master.ready().get("preload"), "1")
        workers = [self.fork(master, token) for token in (7, 8)]
        for conn, _, pid in workers:
            with open("/proc/%d/stat" % pid) as f:
                self.assertEqual(int(f.read().rsplit(")", 1)[1].split()[1]), master.proc.pid)
            conn.sock.sendall(request_frame(base_environ("/hello")))
            frame = conn.recv()
            self.assertEqual(frame.type, START)
            self.assertIn(b"200 OK", frame.payload)
            while not frame.flags & END:
                frame = conn.recv()
        # A forked worker dumps its stack on SIGUSR1 into the pipe it was given.
        conn, r, pid = workers[0]
        os.kill(pid, signal.SIGUSR1)
        self.assertIn("in serve", read_pipe(r, b"in <module>"))
        # Its channel closes: it exits 0 and the master says so.
        conn.sock.close()
        self.assertEqual(self.exited(master), (pid, 0))
        # Killed: the master reports the signal.
        os.kill(workers[1][2], signal.SIGKILL)
        got_pid, status = self.exited(master)
        self.assertEqual(got_pid, workers[1][2])
        self.assertTrue(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL)
        # The control socket closes: the master exits 0.
        self.assertEqual(master.close(), 0)

    def test_workers_die_with_the_master(self):
        master = self.start_master()
        master.ready()
        _, _, pid = self.fork(master, 1)
        master.proc.kill()
        master.proc.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not proc_gone(pid):
            self.assertLess(time.monotonic(), deadline, "worker %d outlived its master" % pid)
            time.sleep(0.01)
        master.wait()

    def test_worker_output_goes_to_its_own_pipes(self):
        master = self.start_master()
        master.ready()
        output = []
        conn, _, pid = self.fork(master, 3, output=output)
        conn.sock.sendall(request_frame(base_environ("/print")))
        frame = conn.recv()
        while not frame.flags & END:
            frame = conn.recv()
        self.assertIn("printed line 199", read_pipe(output[0], b"printed line 199"))
        self.assertIn("to stderr", read_pipe(output[1], b"to stderr\n"))
        conn.sock.close()
        self.assertEqual(self.exited(master), (pid, 0))
        self.assertEqual(master.close(), 0)
        self.assertNotIn("printed line 0", "\n".join(master.stdout))
        self.assertNotIn("to stderr", "\n".join(master.stderr))

    def thread_warnings(self, master):
        return [e for e in master.logs() if "threads" in e and e["@level"] == "warn"]

    def test_threads_at_import_are_named_before_the_first_fork(self):
        master = self.start_master("threaded_import:app")
        master.ready()
        conn, _, pid = self.fork(master, 1)
        warning = master.wait_log(lambda e: "threads" in e, "the threads warning")
        self.assertEqual(warning["@level"], "warn")
        self.assertIn("metrics-exporter (threaded_import.export_loop)", warning["threads"])
        self.assertIn("Reaper (threaded_import.Reaper)", warning["threads"])
        self.assertEqual(warning.get("unnamed_threads"), 1)  # started with _thread: no name
        conn2, _, pid2 = self.fork(master, 2)
        for c, p in ((conn, pid), (conn2, pid2)):
            c.sock.close()
            self.assertEqual(self.exited(master)[0], p)
        self.assertEqual(master.close(), 0)
        self.assertEqual(len(self.thread_warnings(master)), 1, master.stderr)  # once, not per fork
        # Nor again by Python 3.12 and later, without the names.
        self.assertEqual([line for line in master.stderr if "is multi-threaded" in line], [])

    def test_no_thread_warning_without_threads(self):
        master = self.start_master("at_fork_thread:app")  # starts its thread in each worker
        master.ready()
        conn, _, pid = self.fork(master, 1)
        conn.sock.sendall(request_frame(base_environ("/")))
        frame = conn.recv()
        self.assertEqual(frame.type, START)
        self.assertTrue(frame.payload.endswith(b"pool-reaper"), frame)  # os.register_at_fork ran
        conn.sock.close()
        self.assertEqual(self.exited(master)[0], pid)
        self.assertEqual(master.close(), 0)
        self.assertEqual(self.thread_warnings(master), [])

    def test_import_failure_is_fatal(self):
        master = self.start_master("broken_import")
        frame = master.conn.recv()
        self.assertEqual(frame.type, FATAL)
        self.assertIn(b"boom at import", frame.payload)
        self.assertEqual(master.wait(), 4)


def read_title(pid):
    """What ps shows of pid: its command line (arguments joined by spaces, as ps -o args
    shows them) and its command name (ps -o comm, top)."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        args = f.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    with open("/proc/%d/comm" % pid) as f:
        comm = f.read().rstrip("\n")
    return args, comm


class TitleTest(unittest.TestCase):
    """Process titles: ps tells workers and preload masters apart, and two apps apart."""

    def test_worker(self):
        runner = Runner("threaded_import:app")
        self.addCleanup(runner.close)
        runner.ready()
        self.assertEqual(read_title(runner.proc.pid), ("wsgi-fcgi: worker [threaded_import]", "worker threaded"))
        # Set before the import: the threads the app started have the name too.
        for tid in os.listdir("/proc/%d/task" % runner.proc.pid):
            with open("/proc/%d/task/%s/comm" % (runner.proc.pid, tid)) as f:
                self.assertEqual(f.read().rstrip("\n"), "worker threaded")

    def test_name(self):
        runner = Runner(args=("--name", "mysite"))
        self.addCleanup(runner.close)
        runner.ready()
        self.assertEqual(read_title(runner.proc.pid), ("wsgi-fcgi: worker [mysite]", "worker mysite"))

    def test_preload_master_and_its_workers(self):
        master = PreloadTest.start_master(self)
        master.ready()
        self.assertEqual(read_title(master.proc.pid), ("wsgi-fcgi: preload master [wsgiapps]", "master wsgiapps"))
        conn, _, pid = PreloadTest.fork(self, master, 1)
        self.assertEqual(read_title(pid), ("wsgi-fcgi: worker [wsgiapps]", "worker wsgiapps"))
        self.assertEqual(read_title(master.proc.pid)[0], "wsgi-fcgi: preload master [wsgiapps]")
        conn.sock.close()
        self.assertEqual(master.close(), 0)

    def test_without_proc_the_title_stays(self):
        runner = import_runner()
        logged = []
        with unittest.mock.patch.object(runner, "log", lambda *args, **fields: logged.append(args)), \
                unittest.mock.patch("builtins.open", side_effect=PermissionError("denied")), \
                unittest.mock.patch.object(runner.os, "open", side_effect=PermissionError("denied")):
            runner.set_title("worker", "mysite")  # does not raise
        self.assertEqual(logged, [("debug", "the process title cannot be set"), ("debug", "the process name cannot be set")])

    def test_comm_is_cut_to_15_bytes(self):
        runner = import_runner()
        for role, name, want in [
            ("worker", "mysite", ("wsgi-fcgi: worker [mysite]", "worker mysite")),
            ("preload master", "mysite.wsgi", ("wsgi-fcgi: preload master [mysite.wsgi]", "master mysite.w")),
            ("worker", "caf\u00e9caf\u00e9", ("wsgi-fcgi: worker [caf\u00e9caf\u00e9]", "worker caf\u00e9caf")),
        ]:
            with self.subTest(role=role, name=name):
                self.assertEqual(runner.titles(role, name), want)


class ThreadsTest(unittest.TestCase):
    """--threads: one channel per thread (WSGI_FCGI_RUNNER_FD="3,4"), served at once."""

    def test_channels_serve_at_once(self):
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        gate_r, gate_w = os.pipe()
        self.addCleanup(os.close, gate_w)
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)
        env.update({COOKIE_VAR: COOKIE, "PYTHONDONTWRITEBYTECODE": "1",
                    "WSGI_FCGI_RUNNER_FD": ",".join(str(theirs.fileno()) for _, theirs in pairs)})
        stderr = tempfile.TemporaryFile()
        self.addCleanup(stderr.close)
        app, args, chdir = WSGIAPPS
        proc = subprocess.Popen(
            [PYTHON, RUNNER, "--app", app, "--chdir", chdir] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            pass_fds=[theirs.fileno() for _, theirs in pairs] + [gate_r], env=env,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        os.close(gate_r)
        conns = []
        for ours, theirs in pairs:
            theirs.close()
            ours.settimeout(TIMEOUT)
            conns.append(Conn(ours))
            self.assertEqual(conns[-1].recv().type, READY)
        # Channel 0's request blocks at the gate; channel 1 answers meanwhile.
        env0 = base_environ("/gate")
        env0["GATE_FD"] = str(gate_r)
        conns[0].sock.sendall(request_frame(env0))
        self.assertEqual(conns[0].recv().payload[-6:], b"before")
        conns[1].sock.sendall(request_frame(base_environ("/environ")))
        frame = conns[1].recv()
        self.assertEqual(frame.type, START)
        while not frame.flags & END:
            more = conns[1].recv()
            frame = Frame(more.type, more.flags, frame.payload + more.payload)
        body = frame.payload[4 + U32.unpack_from(frame.payload)[0]:]
        self.assertTrue(json.loads(body)["multithread"])
        os.write(gate_w, b"x")
        frame = conns[0].recv()
        while not frame.flags & END:
            frame = conns[0].recv()
        # The process ends when every channel has closed.
        conns[0].sock.close()
        time.sleep(0.1)
        self.assertIsNone(proc.poll())
        conns[1].sock.close()
        self.assertEqual(proc.wait(TIMEOUT), 0)


# --- Cancellation (PROTOCOL.md, "The cancel board", "Interrupting the app") -------------------
#
# The app below runs in the runner (--app runner_test:cancel_app --chdir pyrunner). It records
# what happened in EVENTS, which /events returns and clears; it tells the test where it is by
# writing one byte to the pipe named by the environ key NOTIFY_FD, and waits for the test at
# the gate (GATE_FD, as wsgiapps.py does).

EVENTS = []


def _notify(environ, what=b"."):
    os.write(int(environ["NOTIFY_FD"]), what)


def _gate(environ):
    os.read(int(environ["GATE_FD"]), 1)


class _Stream:
    """An iterable with close(): chunk 0 at once, then one chunk per byte through the gate."""

    def __init__(self, environ):
        self.environ = environ

    def __iter__(self):
        yield b"chunk0"
        for i in range(1, 100):
            if "AT_GATE_FD" in self.environ:  # tell the test the generator is at the gate
                os.write(int(self.environ["AT_GATE_FD"]), b".")
            _gate(self.environ)
            yield b"chunk%d" % i

    def close(self):
        EVENTS.append("close")


def _record(body):
    """Run body(); record the exception it raised (raised:Name) and that finally ran."""
    try:
        return body()
    except BaseException as e:
        EVENTS.append("raised:" + type(e).__name__)
        raise
    finally:
        EVENTS.append("finally")


def cancel_app(environ, start_response):
    path = environ["PATH_INFO"]
    text = [("Content-Type", "text/plain")]
    if path == "/events":
        start_response("200 OK", text)
        body = ",".join(EVENTS).encode()
        del EVENTS[:]
        return [body]
    EVENTS.append("start:" + path)
    if path == "/hello":
        start_response("200 OK", text)
        return [b"hello"]
    if path == "/gate":
        _gate(environ)
        start_response("200 OK", text)
        return [b"done"]
    if path == "/stream":
        start_response("200 OK", text)
        return _Stream(environ)
    if path == "/sleep":  # blocked in a C call, in the main thread

        def sleep():
            _notify(environ)
            time.sleep(30)

        _record(sleep)
    elif path == "/busy":  # a loop of Python bytecode that calls nothing that blocks

        def busy():
            _notify(environ)
            deadline = time.monotonic() + 30
            n = 0
            while n < 10 ** 9 and time.monotonic() < deadline:
                n += 1

        _record(busy)
    elif path == "/upload":
        read = environ["wsgi.input"].read
        _record(lambda: [read(64 * KiB) for _ in range(100)])
    elif path == "/poll":
        cancelled = environ["wsgi_fcgi.cancelled"]
        before = cancelled()
        _notify(environ)
        _gate(environ)
        start_response("200 OK", text)
        return [b"%r,%r" % (before, cancelled())]
    elif path == "/write":  # big write() calls: 4 MiB each, sent as 1 MiB frames
        write = start_response("200 OK", text)
        _record(lambda: [write(b"x" * (4 * MiB)) for _ in range(4)])
    elif path == "/exceptions":
        import wsgi_fcgi

        start_response("200 OK", text)
        classes = (wsgi_fcgi.Interrupted, wsgi_fcgi.RequestAborted, wsgi_fcgi.SoftTimeout)
        return [",".join("%s:%s" % (c.__name__, c.__mro__[1].__name__) for c in classes).encode()]
    start_response("200 OK", text)
    return [b"finished"]


def interpreter_label():
    """How the runner names the interpreter it runs under in an import error:
    "/usr/bin/python3 (3.11.2)", "/usr/bin/pypy3 (3.9.16, PyPy 7.3.11)"."""
    if not _LABEL:
        program = (
            "import sys; p = getattr(sys, 'pypy_version_info', None); "
            "print('%s (%d.%d.%d%s)' % ((sys.executable,) + tuple(sys.version_info[:3]) "
            "+ (', PyPy %d.%d.%d' % tuple(p[:3]) if p else '',)))"
        )
        _LABEL.append(subprocess.check_output([PYTHON, "-c", program]).decode().strip())
    return _LABEL[0]


_LABEL = []


def _python_impl():
    out = subprocess.check_output([PYTHON, "-c", "import sys; print(sys.implementation.name)"])
    return out.decode().strip()


class InterruptRuleTest(unittest.TestCase):
    """The SIGUSR2 handler, in-process: it raises only into the app's code, once per request."""

    def test_only_into_app_code(self):
        runner = import_runner()
        board = memoryview(bytearray(256)).cast("I")
        lane = runner.Lane(board, 0)
        lane.main = True
        saved = runner.LANES[:]
        runner.LANES[:] = [lane]
        self.addCleanup(runner.LANES.__setitem__, slice(None), saved)
        app_frame = sys._getframe()  # the test's: not the runner's
        runner_frame = types.SimpleNamespace(f_globals=vars(runner))
        lane.key, lane.slot, lane.in_app = 37, 5, True
        runner.on_interrupt(signal.SIGUSR2, app_frame)  # not cancelled: nothing
        board[5 + 32], board[5] = 2, 37
        lane.in_app = False
        runner.on_interrupt(signal.SIGUSR2, app_frame)  # in the runner's code (in_app clear)
        lane.in_app = True
        runner.on_interrupt(signal.SIGUSR2, runner_frame)  # a runner frame
        runner.on_interrupt(signal.SIGUSR2, None)
        with self.assertRaises(runner.SoftTimeout):
            runner.on_interrupt(signal.SIGUSR2, app_frame)
        runner.on_interrupt(signal.SIGUSR2, app_frame)  # once per request
        lane.key, lane.slot = 69, 5  # the next request in that slot: not cancelled
        runner.on_interrupt(signal.SIGUSR2, app_frame)
        board[5] = 69
        board[5 + 32] = 1
        with self.assertRaises(runner.RequestAborted):
            runner.on_interrupt(signal.SIGUSR2, app_frame)
        # A request the runner's own board check stopped (a write() of a cancelled request)
        # counts as interrupted: a signal while the app unwinds from that exception, in its
        # except or finally blocks, raises no second one there.
        lane.key, lane.slot, lane.thrown = 70, 5, -1
        board[5] = 70
        self.assertIsInstance(lane.interruption(), runner.RequestAborted)
        runner.on_interrupt(signal.SIGUSR2, app_frame)
        # The request after 2**32 - 1 has the number 0, every word of a fresh board: never cancelled.
        lane.key, lane.slot = -1, 0
        self.assertIsNone(lane.interruption())
        self.assertTrue(issubclass(runner.Interrupted, BaseException))
        self.assertFalse(issubclass(runner.Interrupted, Exception))


def proc_state(pid, tid=None):
    """The scheduler state letter of a process (or of one of its threads)."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def wait_state(pid, states, what):
    """Poll until the process is in one of states (e.g. "S": blocked); a sync point, not a sleep."""
    deadline = time.monotonic() + TIMEOUT
    while proc_state(pid) not in states:
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.001)


@unittest.skipUnless(sys.platform.startswith("linux"), "/proc and memfd are Linux")
class CancelTest(unittest.TestCase):
    """Requests the gateway cancels: the board, SIGUSR2, ABORTED."""

    def start(self, **kw):
        self.notify_r, notify_w = os.pipe()
        self.addCleanup(os.close, self.notify_r)
        runner = Runner("runner_test:cancel_app", chdir=HERE, board=True, pass_fds=(notify_w,), **kw)
        os.close(notify_w)
        self.notify_fd = notify_w  # the runner's copy has this number
        self.addCleanup(lambda: runner.proc.poll() is None and runner.proc.kill())
        self.assertEqual(runner.ready()["protocol"], "2")
        return runner

    def send(self, runner, path, **kw):
        environ = dict(kw.pop("environ", {}), NOTIFY_FD=str(self.notify_fd))
        runner.send_request(path, environ=environ, **kw)
        return runner.seq

    def notified(self):
        ready, _, _ = select.select([self.notify_r], [], [], TIMEOUT)
        self.assertTrue(ready, "the app did not get to its notify point")
        return os.read(self.notify_r, 1)

    def events(self, runner):
        return runner.request("/events").body.decode().split(",")

    def assert_aborted(self, runner):
        frame = runner.conn.recv()
        self.assertIsNotNone(frame, "channel closed; stderr: %s" % runner.stderr)
        self.assertEqual(frame, Frame(ABORTED, 0, b""))

    def test_cancelled_before_start_never_runs(self):
        runner = self.start()
        first = self.send(runner, "/gate")
        second = self.send(runner, "/hello")  # sent ahead, behind the request at the gate
        runner.board.cancel(second)
        runner.release_gate()
        self.assertEqual(runner.read_response().body, b"done")
        self.assertEqual(first, second - 1)
        self.assert_aborted(runner)  # no START: the app never saw it
        self.assertEqual(runner.request("/hello").body, b"hello")
        self.assertEqual(self.events(runner), ["start:/gate", "start:/hello"])
        self.assertEqual(runner.close(), 0)

    def test_stream_stops_between_chunks(self):
        runner = self.start()
        n = self.send(runner, "/stream")
        frame = runner.conn.recv()
        self.assertEqual(frame.type, START)
        self.assertTrue(frame.payload.endswith(b"chunk0"))
        # The generator waits at the gate for chunk 1; cancel, then let it yield once more.
        wait_state(runner.proc.pid, "S", "the generator to wait at the gate")
        runner.board.cancel(n)
        runner.release_gate()
        self.assertEqual(runner.conn.recv(), Frame(DATA, 0, b"chunk1"))
        self.assert_aborted(runner)
        # close() ran once, before ABORTED; the next request is served.
        self.assertEqual(self.events(runner), ["start:/stream", "close"])
        entry = runner.wait_log(lambda e: e["@message"] == "request stopped: cancelled", "the log line")
        self.assertEqual((entry["reason"], entry["method"], entry["uri"], entry["@level"]), ("aborted", "GET", "/stream", "debug"))
        self.assertNotIn("traceback", entry)
        self.assertEqual(runner.close(), 0)

    def interrupt_sleep(self, runner, reason):
        n = self.send(runner, "/sleep")
        self.notified()
        wait_state(runner.proc.pid, "S", "the app to sleep")
        began = time.monotonic()
        runner.board.cancel(n, reason)
        runner.proc.send_signal(signal.SIGUSR2)
        self.assert_aborted(runner)
        self.assertLess(time.monotonic() - began, 5)

    def test_sigusr2_interrupts_a_sleeping_app(self):
        runner = self.start()
        for reason, name, logged in ((1, "RequestAborted", "aborted"), (2, "SoftTimeout", "soft timeout")):
            with self.subTest(reason=reason):
                self.interrupt_sleep(runner, reason)
                self.assertEqual(self.events(runner), ["start:/sleep", "raised:" + name, "finally"])
                runner.wait_log(lambda e: e.get("reason") == logged, "the log line")
        self.assertEqual(runner.request("/hello").body, b"hello")
        self.assertFalse([e for e in runner.logs() if e["@level"] == "error"])
        self.assertEqual(runner.close(), 0)

    def test_sigusr2_without_cancel_does_nothing(self):
        runner = self.start()
        for _ in range(40):  # wrap the board's 32 slots: stale numbers in them change nothing
            runner.request("/hello")
        n = self.send(runner, "/gate")
        runner.board.cancel(n - 32)  # the same slot, an older request
        runner.board.cancel(n + 1)  # the next slot, a later one
        for _ in range(3):
            wait_state(runner.proc.pid, "S", "the app to wait at the gate")
            runner.proc.send_signal(signal.SIGUSR2)
        runner.release_gate()
        r = runner.read_response()
        self.assertEqual((r.status, r.body, r.error), ("200 OK", b"done", False))
        self.assertEqual(runner.close(), 0)

    def test_wsgi_input_raises_when_cancelled(self):
        runner = self.start()
        n = self.send(runner, "/upload", body=b"x" * MiB, inline=0)
        frame = runner.conn.recv()
        self.assertEqual(frame.type, READ)
        runner.board.cancel(n)
        runner.conn.send(BODY, EOF | ERROR)
        self.assert_aborted(runner)
        self.assertEqual(self.events(runner), ["start:/upload", "raised:RequestAborted", "finally"])
        # Not cancelled: OSError, as before (and the app's error answer).
        r = runner.request("/upload", body=b"x" * MiB, inline=0, cut=True)
        self.assertEqual(r.status, "500 Internal Server Error")
        self.assertEqual(self.events(runner), ["start:/upload", "raised:OSError", "finally"])
        self.assertEqual(runner.close(), 0)

    def test_cancelled_callable_flips(self):
        runner = self.start()
        n = self.send(runner, "/poll")
        self.notified()
        runner.board.cancel(n)
        runner.release_gate()
        r = runner.read_response()  # a list is in memory: it goes out whole, with END
        self.assertEqual(r.body, b"False,True")
        self.assertEqual(runner.close(), 0)

    def test_exceptions_module(self):
        runner = self.start()
        self.assertEqual(
            runner.request("/exceptions").body,
            b"Interrupted:BaseException,RequestAborted:Interrupted,SoftTimeout:Interrupted",
        )
        self.assertEqual(runner.close(), 0)

    def test_request_number_mismatch_is_a_channel_error(self):
        runner = self.start()
        self.assertEqual(runner.request("/hello").body, b"hello")
        runner.sock.sendall(request_frame(base_environ("/hello"), seq=3))  # 2 is next
        self.assertIsNone(runner.conn.recv())
        self.assertEqual(runner.wait(), 1)
        entry = runner.wait_log(lambda e: e["@message"] == "channel error: exiting", "channel error log")
        self.assertIn("numbered 3, want 2", entry["error"])

    def test_preload_worker_gets_the_board(self):
        notify_r, notify_w = os.pipe()
        self.addCleanup(os.close, notify_r)
        master = Runner("runner_test:cancel_app", args=("--preload",), chdir=HERE, sock_type=socket.SOCK_SEQPACKET, pass_fds=(notify_w,))
        os.close(notify_w)
        self.addCleanup(lambda: master.proc.poll() is None and master.proc.kill())
        self.assertEqual(master.ready()["protocol"], "2")
        board = Board()
        self.addCleanup(board.close_fd)
        conn, _, pid = PreloadTest.fork(self, master, 5, board)
        env = dict(base_environ("/sleep"), NOTIFY_FD=str(notify_w))
        board.cancel(1)
        conn.sock.sendall(request_frame(env, seq=1))
        self.assertEqual(conn.recv(), Frame(ABORTED, 0, b""))  # cancelled before it started
        conn.sock.sendall(request_frame(env, seq=2))
        self.assertTrue(select.select([notify_r], [], [], TIMEOUT)[0])
        os.read(notify_r, 1)
        wait_state(pid, "S", "the app to sleep")
        board.cancel(2, 2)
        os.kill(pid, signal.SIGUSR2)
        self.assertEqual(conn.recv(), Frame(ABORTED, 0, b""))
        conn.sock.sendall(request_frame(base_environ("/events"), seq=3))
        frame = conn.recv()
        self.assertTrue(frame.payload.endswith(b"start:/sleep,raised:SoftTimeout,finally"), frame)
        conn.sock.close()
        self.assertEqual(master.conn.recv().type, EXITED)
        self.assertEqual(master.close(), 0)

    def start_threads(self):
        """Start a runner with two channels (--threads 2) and a board: the main thread serves
        channel 0, a thread channel 1. Returns the process, the two Conns, the board, the
        read end of the app's notify pipe, the write end of its gate, and the environ keys
        that name them to the app."""
        notify_r, notify_w = os.pipe()
        self.addCleanup(os.close, notify_r)
        gate_r, gate_w = os.pipe()
        self.addCleanup(os.close, gate_w)
        board = Board(2)
        pipes = [channel_pipes() for _ in range(2)]
        env = dict(os.environ)
        env.pop("PYTHONUNBUFFERED", None)
        env.update({COOKIE_VAR: COOKIE, "PYTHONDONTWRITEBYTECODE": "1",
                    "WSGI_FCGI_RUNNER_FD": ",".join(fd_value for _, _, fd_value in pipes),
                    "WSGI_FCGI_RUNNER_BOARD_FD": str(board.fd)})
        stderr = tempfile.TemporaryFile()
        self.addCleanup(stderr.close)
        theirs = [fd for _, fds, _ in pipes for fd in fds]
        proc = subprocess.Popen(
            [PYTHON, RUNNER, "--app", "runner_test:cancel_app", "--chdir", HERE],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            pass_fds=theirs + [board.fd, notify_w, gate_r], env=env,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        for fd in theirs + [notify_w, gate_r]:
            os.close(fd)
        board.close_fd()
        conns = []
        for ours, _, _ in pipes:
            ours.settimeout(TIMEOUT)
            conns.append(Conn(ours))
            self.assertEqual(conns[-1].recv().type, READY)
        return proc, conns, board, notify_r, gate_w, {"NOTIFY_FD": str(notify_w), "GATE_FD": str(gate_r)}

    @unittest.skipUnless(_python_impl() == "cpython", "PyThreadState_SetAsyncExc is CPython's")
    def test_thread_is_interrupted(self):
        # The app on channel 1 (a thread) spins in Python code, and SIGUSR2 reaches it through
        # SetAsyncExc.
        proc, conns, board, notify_r, _, fds = self.start_threads()
        environ = dict(base_environ("/busy"), **fds)
        conns[1].sock.sendall(request_frame(environ, seq=1))
        self.assertTrue(select.select([notify_r], [], [], TIMEOUT)[0])
        os.read(notify_r, 1)
        began = time.monotonic()
        board.cancel(1, 1, channel=1)
        proc.send_signal(signal.SIGUSR2)
        self.assertEqual(conns[1].recv(), Frame(ABORTED, 0, b""))
        self.assertLess(time.monotonic() - began, 5)
        conns[1].sock.sendall(request_frame(base_environ("/events"), seq=2))
        frame = conns[1].recv()
        self.assertTrue(frame.payload.endswith(b"start:/busy,raised:RequestAborted,finally"), frame)
        conns[0].sock.sendall(request_frame(base_environ("/hello"), seq=1))  # the main thread's channel
        self.assertTrue(conns[0].recv().payload.endswith(b"hello"))
        for conn in conns:
            conn.sock.close()
        self.assertEqual(proc.wait(TIMEOUT), 0)

    def test_thread_stops_at_next_chunk(self):
        # What stops a cancelled request in a thread other than the main one under PyPy, which
        # has no SetAsyncExc to interrupt it (so no SIGUSR2 here): the board check after its
        # next chunk.
        proc, conns, board, notify_r, gate_w, fds = self.start_threads()
        fds["AT_GATE_FD"] = fds.pop("NOTIFY_FD")
        conns[1].sock.sendall(request_frame(dict(base_environ("/stream"), **fds), seq=1))
        frame = conns[1].recv()
        self.assertEqual(frame.type, START)
        self.assertTrue(frame.payload.endswith(b"chunk0"))
        # Cancel only once the generator waits for chunk 1: cancelled earlier, the board check
        # after chunk 0 would stop it before chunk 1 (as it should), and chunk 1 never comes.
        self.assertTrue(select.select([notify_r], [], [], TIMEOUT)[0])
        os.read(notify_r, 1)
        board.cancel(1, 1, channel=1)
        os.write(gate_w, b".")  # chunk 1 was being produced: it goes out, then the check stops it
        self.assertEqual(conns[1].recv(), Frame(DATA, 0, b"chunk1"))
        self.assertEqual(conns[1].recv(), Frame(ABORTED, 0, b""))
        conns[1].sock.sendall(request_frame(base_environ("/events"), seq=2))
        self.assertTrue(conns[1].recv().payload.endswith(b"start:/stream,close"))
        for conn in conns:
            conn.sock.close()
        self.assertEqual(proc.wait(TIMEOUT), 0)

    def test_signals_never_break_frames(self):
        # The app writes 16 MiB with write() while the test reads slowly and a thread sends
        # SIGUSR2 every millisecond: at first the request is not cancelled (nothing happens),
        # then it is (the app is stopped at a frame boundary). Every frame stays whole.
        runner = self.start()
        n = self.send(runner, "/write")
        stop = threading.Event()

        def storm():
            while not stop.is_set():
                runner.proc.send_signal(signal.SIGUSR2)
                time.sleep(0.001)

        stormer = threading.Thread(target=storm, daemon=True)
        stormer.start()
        self.addCleanup(stormer.join)
        self.addCleanup(stop.set)
        frames = []
        body = 0
        while True:
            frame = runner.conn.recv()
            self.assertIsNotNone(frame, "channel closed; stderr: %s" % runner.stderr)
            frames.append(frame.type)
            if frame.type == ABORTED:
                break
            self.assertIn(frame.type, (START, DATA))
            self.assertFalse(frame.flags & END)
            data = frame.payload[4 + U32.unpack_from(frame.payload)[0]:] if frame.type == START else frame.payload
            self.assertEqual(data, b"x" * len(data))
            body += len(data)
            if body == 6 * MiB:
                runner.board.cancel(n)
        stop.set()
        self.assertEqual(frames[0], START)
        self.assertGreaterEqual(body, 6 * MiB)
        self.assertLess(body, 16 * MiB)
        self.assertEqual(body % MiB, 0)
        self.assertEqual(self.events(runner), ["start:/write", "raised:RequestAborted", "finally"])
        self.assertEqual(runner.close(), 0)


class BenchTest(unittest.TestCase):
    """Prints µs per hello request through the real runner; asserts nothing about time.

    The machine may be busy with other work, so each figure is the best of several rounds,
    next to the same measurement against a do-nothing Python echo process.
    """

    def measure(self, runner, frame, rounds, count):
        """Return (best µs round trip, best runner CPU µs) per request over `rounds` rounds."""
        runner.ready()
        drive(runner, frame, 1000)  # warm-up
        best_wall = best_cpu = float("inf")
        for _ in range(rounds):
            cpu0 = cpu_seconds(runner.proc.pid)
            seconds = drive(runner, frame, count)
            cpu1 = cpu_seconds(runner.proc.pid)
            best_wall = min(best_wall, seconds / count * 1e6)
            if cpu0 is not None:
                best_cpu = min(best_cpu, (cpu1 - cpu0) / count * 1e6)
        self.assertEqual(runner.close(), 0)
        return best_wall, best_cpu

    def test_bench_hello(self):
        long_run = os.environ.get("RUNNER_BENCH") == "1"
        rounds, count = (10, 10000) if long_run else (5, 1000)
        frame = request_frame(HELLO_ENVIRON)
        wall, cpu = self.measure(Runner("hello"), frame, rounds, count)
        echo_wall, echo_cpu = self.measure(Runner("hello", python_args=["-c", ECHO]), frame, rounds, count)
        sys.stderr.write(
            "\nbench hello (python %s, best of %d x %d requests): runner %.1f us/request round trip, "
            "%.1f us CPU in the runner; do-nothing echo process %.1f us round trip, %.1f us CPU\n"
            % (_python_version(), rounds, count, wall, cpu, echo_wall, echo_cpu)
        )
        if long_run:
            self.profile(frame, rounds * count)

    def profile(self, frame, count):
        """Run the runner under cProfile and print the top of its hot path."""
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "runner.prof")
            runner = Runner("hello", python_args=["-m", "cProfile", "-o", out])
            runner.ready()
            drive(runner, frame, count)
            self.assertEqual(runner.close(), 0)
            stream = io.StringIO()
            stats = pstats.Stats(out, stream=stream)
            stats.strip_dirs().sort_stats("tottime").print_stats(15)
            sys.stderr.write("cProfile of the runner, %d hello requests:\n%s" % (count, stream.getvalue()))


def _python_version():
    out = subprocess.check_output([PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
    return out.decode().strip()


if __name__ == "__main__":
    unittest.main()
