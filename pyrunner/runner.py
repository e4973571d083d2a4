"""The Python side of wsgi-fcgi: one long-lived worker that runs a WSGI (PEP 3333) app.

The gateway (Go, pyrunner/*.go) embeds this file and starts it with `python3 -c` and a one-line
loader that reads this source from an unlinked file the gateway passes as a descriptor
(pyrunner/worker.go, runnerBootstrap), with the arguments

    --app module:callable [--chdir DIR] [--pythonpath P1:P2...] [--name NAME] [--preload] [--debug]

and WSGI_FCGI_RUNNER_COOKIE and WSGI_FCGI_RUNNER_FD in the environment. Its tests run it as a
file (python runner.py ...). The worker imports the
app once, sends READY on the channel (two pipes, "R:W": it reads requests from fd R and writes
frames to fd W), then serves one request at a time until the channel closes. With several
channels in WSGI_FCGI_RUNNER_FD (--threads) it serves each in a thread of its own; with
--preload it is instead a master that forks workers (class Master), and the variable names its
control socket. SIGUSR1 writes every thread's stack to WSGI_FCGI_RUNNER_STACK_FD. A request the
gateway cancels (its "cancel board", WSGI_FCGI_RUNNER_BOARD_FD, and SIGUSR2) is stopped: the app
is never called, its iterable is no longer advanced, or an exception from the wsgi_fcgi module is
raised in it; the runner then answers ABORTED.

The wire -- frames, the marshal environ, the header block, what happens at every break -- is
specified in PROTOCOL.md next to this file; the code below follows
it and names its sections rather than repeating it.

Its shape mirrors a gunicorn worker: import the app once, loop over requests, finish the current
request on SIGTERM, exit when the channel closes or the parent process changes.

Standard library only, CPython 3.8 to 3.13 and PyPy 3.9 (where PyPy differs: no os.writev, no
gc.freeze, no PyThreadState_SetAsyncExc; see the fallbacks below). stdout and stderr belong to the app (the gateway
relays them to its log); the runner's own log lines are hclog-style JSON objects on stderr.

Exit status: 0 the channel closed, SIGTERM, or the parent went away; 1 a channel or protocol
error; 2 not started by the gateway (no cookie) or bad arguments; 4 the app could not be loaded;
or the status of a sys.exit() the app called while serving a request (after its answer).
"""

import argparse
import datetime
import faulthandler
import gc
import importlib
import io
import json
import marshal
import mmap
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import types
import warnings

# The gateway starts the runner with python3 -c and a line that reads this file's source from
# a descriptor and runs it (pyrunner/worker.go, runnerBootstrap): the source is left in this
# global, where it would stay alive in every process.
globals().pop("_runner_source", None)
# The runner's directory, which Python put first on sys.path, when it runs as a file (python3
# runner.py, as its tests run it); None under python3 -c.
RUNNER_DIR = os.path.dirname(os.path.realpath(__file__)) if "__file__" in globals() else None

PROTOCOL_VERSION = 2
# What READY says of the interpreter (PROTOCOL.md, "Frames"): "python=3.11.2 implementation=cpython".
READY_PYTHON = "python=%d.%d.%d implementation=%s" % (sys.version_info[:3] + (sys.implementation.name,))
COOKIE_VAR = "WSGI_FCGI_RUNNER_COOKIE"
COOKIE = "wsgi-fcgi-runner-v1"
FD_VAR = "WSGI_FCGI_RUNNER_FD"
STACK_FD_VAR = "WSGI_FCGI_RUNNER_STACK_FD"
BOARD_FD_VAR = "WSGI_FCGI_RUNNER_BOARD_FD"

EXIT_OK = 0
EXIT_CHANNEL = 1
EXIT_USAGE = 2
EXIT_APP_LOAD = 4  # as gunicorn's APP_LOAD_ERROR: the pool backs off instead of crash-looping

# Frame types (PROTOCOL.md, "Frames").
REQUEST = 1
BODY = 2
READY = 16
FATAL = 17
START = 18
DATA = 19
READ = 21
ABORTED = 22

# Frame flags.
EOF = 0x01
END = 0x02
ERROR = 0x04

MAX_PAYLOAD = 16 << 20  # the largest frame payload either side may send
MAX_CHUNK = 1 << 20  # the most response body bytes the runner puts in one frame
READ_MIN = 64 << 10  # a READ asks for at least this much (unless less is left) ...
READ_MAX = 1 << 20  # ... and at most this much
RECV_SIZE = 256 << 10  # initial size of the receive buffer; it grows for bigger frames
SMALL_FRAME = 1 << 10  # frames up to this size are joined and sent with write(), not writev
MAX_HEADER_BLOCK = 1 << 20  # the gateway drops a worker whose START has a bigger header block

FRAME = struct.Struct("<IBBH")  # payload length, type, flags, request number (REQUEST) or 0
FRAME_U32 = struct.Struct("<IBBHI")  # a frame header and the uint32 that opens START and READ
U32 = struct.Struct("<I")

# The runner's own answer when the app fails before START: no traceback reaches the client.
ERROR_BODY = b"Internal Server Error\n"
ERROR_BLOCK = (
    "500 Internal Server Error\0Content-Type\0text/plain; charset=utf-8\0Content-Length\0%d"
    % len(ERROR_BODY)
).encode("latin-1")

# --debug (the gateway's --debug, WSGI_FCGI_DEBUG): the 500 body also carries the traceback.
# Set once by run(), before any request; a preload master's workers inherit it with the fork.
DEBUG = False


def error_response(tb):
    """The header block and body of the runner's own 500: the traceback too with --debug."""
    if not DEBUG:
        return ERROR_BLOCK, ERROR_BODY
    body = ERROR_BODY + b"\n" + tb.encode("utf-8", "replace")
    block = (
        "500 Internal Server Error\0Content-Type\0text/plain; charset=utf-8\0Content-Length\0%d"
        % len(body)
    ).encode("latin-1")
    return block, body


def log(level, message, **fields):
    """Write one hclog-style JSON line to stderr; the gateway relays it at `level`.

    Never called on the hot path. Writes to sys.__stderr__ so that an app replacing sys.stderr
    does not capture the runner's lines.
    """
    entry = {
        "@level": level,
        "@message": message,
        "@module": "runner",
        "@timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    }
    entry.update(fields)
    stream = sys.__stderr__
    try:
        stream.write(json.dumps(entry) + "\n")
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr is gone: there is nowhere left to say anything


class ChannelError(BaseException):
    """The channel to the gateway closed, failed, or carried a frame that breaks PROTOCOL.md.

    It derives from BaseException, like SystemExit, so that an app's `except Exception` around a
    wsgi.input read or a write() call cannot swallow it: the worker must stop, not go on with a
    channel in an unknown state.
    """


class Stop(BaseException):
    """Raised by the SIGTERM handler while the worker is idle, to leave the blocking recv."""


# --- Cancellation (PROTOCOL.md, "The cancel board" and "Interrupting the app") -----------------


class Interrupted(BaseException):
    """The gateway cancelled the request: raised in the app, which should let it propagate.

    A BaseException, like KeyboardInterrupt, so that an app's `except Exception:` does not
    swallow it; `finally` blocks and the iterable's close() still run. The app sees it as
    wsgi_fcgi.Interrupted (the runner registers the module wsgi_fcgi before importing the app).
    """


class RequestAborted(Interrupted):
    """The web server gave up on the request (the client went away), or it was already answered."""


class SoftTimeout(Interrupted):
    """The request ran past the gateway's --soft-timeout; the client has been answered 504."""


# The module the app imports (`import wsgi_fcgi`), as uWSGI offers `uwsgi`.
API = types.ModuleType("wsgi_fcgi", "wsgi-fcgi's exceptions for requests the gateway cancels.")
for _cls in (Interrupted, RequestAborted, SoftTimeout):
    _cls.__module__ = "wsgi_fcgi"
    setattr(API, _cls.__name__, _cls)
del _cls

# Cancel reasons on the board, and the name each has in the runner's log line.
INTERRUPTS = {1: RequestAborted, 2: SoftTimeout}
REASON_NAMES = {RequestAborted: "aborted", SoftTimeout: "soft timeout", Interrupted: "cancelled"}

BOARD_WORDS = 64  # uint32 words per channel: 32 request numbers, then their 32 reasons
BOARD_SLOTS = 32
U32_MASK = 0xFFFFFFFF

RUNNER_GLOBALS = globals()  # a frame whose f_globals is this is the runner's own code


class Lane:
    """One channel's view of the cancel board, and whether its thread is in the app's code.

    The request in progress is cancelled iff board[slot] == key: key is its 32-bit number while
    its response is open (-1 before, after END or ABORTED, and for the one number in 2**32 that
    is 0, which the zeroed board could not tell from "never cancelled"); slot is its word.
    in_app is true only while control is in the app (app(), its iterable's __iter__/next and
    FileWrapper reads); the runner's callbacks clear it on entry and restore it on exit.
    """

    __slots__ = ("board", "base", "key", "slot", "in_app", "thrown", "ident", "main")

    def __init__(self, board, index):
        self.board = board  # memoryview of native uint32 words
        self.base = BOARD_WORDS * index
        self.key = -1
        self.slot = self.base
        self.in_app = False
        self.thrown = -1  # the key of the request SIGUSR2 last raised an exception in
        self.ident = None  # the serving thread's ident, and whether it is the main thread
        self.main = False

    def cancelled(self):
        """environ["wsgi_fcgi.cancelled"]: whether the request in progress is cancelled.

        One callable per lane (no cost per request): it answers for the request the lane is
        serving, until that request's END or ABORTED.
        """
        return self.board[self.slot] == self.key

    def interruption(self):
        """The exception for the current request if it is cancelled, else None.

        The request counts as interrupted from then on, as when SIGUSR2 raised it: a signal
        that comes while the app unwinds from this exception (in its `except` or `finally`
        blocks) raises no second one there.
        """
        exc = self.pending()
        if exc is not None:
            self.thrown = self.key
        return exc

    def pending(self):
        """The exception for the current request if it is cancelled, else None, not marking
        the request as interrupted: for the SIGUSR2 handler, which may not raise it."""
        board, slot, key = self.board, self.slot, self.key
        if board[slot] != key:
            return None
        cls = INTERRUPTS.get(board[slot + BOARD_SLOTS], Interrupted)
        return cls("request cancelled (%s)" % REASON_NAMES[cls])


def zero_board(channels):
    """A board that cancels nothing: for a worker started without WSGI_FCGI_RUNNER_BOARD_FD."""
    return memoryview(bytearray(4 * BOARD_WORDS * channels)).cast("I")


def map_board(fd, channels):
    """Map the cancel board read-only and close fd; raise OSError or ValueError if it is unfit."""
    try:
        os.set_inheritable(fd, False)
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    if len(m) < 4 * BOARD_WORDS * channels:
        raise ValueError("board of %d bytes, want %d for %d channels" % (len(m), 4 * BOARD_WORDS * channels, channels))
    return memoryview(m).cast("I")  # the view keeps the map alive


NO_LANE = Lane(zero_board(1), 0)  # the lane of NO_BODY, shared: nothing reads its flag

# The lanes of this process, for the SIGUSR2 handler; and PyThreadState_SetAsyncExc with ctypes
# when there are threads to interrupt on CPython (None on PyPy: the board checks stop those).
LANES = []
ASYNC_EXC = None


def on_interrupt(signum, frame):
    """SIGUSR2: raise Interrupted in the app code of every lane whose request is cancelled.

    The gateway marks the board, then signals (and may signal again while the request lasts).
    Never into the runner's own code: the lane must be in the app (in_app) and the thread's
    innermost Python frame must not be the runner's. The main thread's lane gets the exception
    from this handler; another thread's through PyThreadState_SetAsyncExc, which takes effect
    at that thread's next bytecode boundary. Once per request: a later signal does not
    interrupt the `finally` blocks the first one started (the board checks at the next
    boundary still stop an app that swallowed it).
    """
    here = None
    for lane in LANES:
        key = lane.key
        if not lane.in_app or lane.thrown == key or lane.board[lane.slot] != key:
            continue
        exc = lane.pending()
        if exc is None:
            continue
        if lane.main:
            if frame is not None and frame.f_globals is not RUNNER_GLOBALS:
                lane.thrown = key
                here = exc
        elif ASYNC_EXC is not None:
            _throw(lane, key, type(exc))
    if here is not None:
        raise here


def _throw(lane, key, cls):
    """Raise cls in the thread serving lane (CPython), if that thread is in the app's code."""
    ident = lane.ident
    f = sys._current_frames().get(ident)
    if f is None or f.f_globals is RUNNER_GLOBALS or not lane.in_app:
        return
    set_async_exc, ctypes = ASYNC_EXC
    set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(cls))
    if lane.in_app and lane.key == key:
        lane.thrown = key
    else:
        set_async_exc(ctypes.c_ulong(ident), None)  # it left the app meanwhile: take it back


def _write_joined(fd, parts):
    """os.writev where the interpreter has none (PyPy): one write() of the joined buffers."""
    return os.write(fd, b"".join(parts))


# One system call per frame either way; PyPy's os lacks writev, so its frames over SMALL_FRAME
# cost one copy of the chunk.
writev = getattr(os, "writev", _write_joined)


class Pipes:
    """The runner's end of a channel: the pipe it reads requests from and the pipe it writes
    frames to (PROTOCOL.md, "The channel"). Both are blocking."""

    __slots__ = ("rfd", "wfd", "readinto")

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd
        # FileIO.readinto: a read(2) straight into the caller's buffer (os.readinto is 3.14+).
        self.readinto = io.FileIO(rfd, "rb", closefd=False).readinto

    def write(self, data):
        return os.write(self.wfd, data)

    def writev(self, parts):
        return writev(self.wfd, parts)

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class SocketEnd:
    """A socket used as a channel: a preload master's control socket, which carries FATAL."""

    __slots__ = ("sock", "readinto", "write", "writev", "close")

    def __init__(self, sock):
        self.sock = sock
        self.readinto = sock.recv_into
        self.write = sock.send
        self.writev = sock.sendmsg
        self.close = sock.close


class Channel:
    """The framed channel to the gateway (PROTOCOL.md, "The channel" and "Frames").

    Frames are received into one preallocated bytearray: a read usually brings a whole
    REQUEST frame in one system call, and each frame is handed out as a memoryview into the
    buffer, so nothing is copied until a caller copies it. Each frame is sent with one system
    call: writev of its pieces, so a big body chunk is never concatenated with its header.
    `ends` is a Pipes (or, for a preload master's FATAL, a SocketEnd): anything with
    readinto, write, writev and close.
    """

    __slots__ = ("ends", "buf", "view", "start", "end", "seq")

    def __init__(self, ends):
        self.ends = ends
        self.buf = bytearray(RECV_SIZE)
        self.view = memoryview(self.buf)
        self.start = 0  # buf[start:end] holds received bytes not handed out yet
        self.end = 0
        self.seq = 0  # the header's uint16 at offset 6 of the last frame: a REQUEST's number

    def recv(self):
        """Return the next frame as (type, flags, payload), or None if the channel closed.

        payload is a memoryview into the receive buffer and is valid only until the next call:
        a caller copies what must outlive it.
        """
        if self.end - self.start < 8 and not self._fill(8):
            return None
        length, ftype, flags, self.seq = FRAME.unpack_from(self.buf, self.start)
        if length > MAX_PAYLOAD:
            raise ChannelError("frame of %d bytes is over the 16 MiB limit" % length)
        size = 8 + length
        if self.end - self.start < size:
            self._fill(size)
        start = self.start
        stop = start + size
        if stop == self.end:
            self.start = self.end = 0  # all consumed: the next recv_into starts at offset 0
        else:
            self.start = stop
        return ftype, flags, self.view[start + 8:stop]

    def _fill(self, need):
        """Receive until `need` bytes are buffered; return False at EOF with nothing buffered."""
        if self.start + need > len(self.buf):
            # Too little room after start: move the pending bytes to the front, into a larger
            # buffer if need be. A new bytearray, not a resize: payload views handed out earlier
            # may still point into the old one.
            pending = self.buf[self.start:self.end]
            if need > len(self.buf):
                self.buf = bytearray(max(need, 2 * len(self.buf)))
                self.view = memoryview(self.buf)
            self.buf[:len(pending)] = pending
            self.start, self.end = 0, len(pending)
        while self.end - self.start < need:
            if self.end == 0:
                n = self.ends.readinto(self.buf)
            else:
                n = self.ends.readinto(self.view[self.end:])
            if not n:
                if self.end == self.start:
                    return False
                raise ChannelError("channel closed in the middle of a frame")
            self.end += n
        return True

    def send(self, parts, total):
        """Send the buffers in `parts` (`total` bytes) with one system call.

        Up to SMALL_FRAME bytes the pieces are joined and sent with write(): cheaper than the
        scatter list of writev for tiny buffers (measured here: about 0.4 us of 3). Bigger frames
        go out with writev, so a body chunk is never copied.

        A blocking pipe takes everything in one call unless a signal interrupts a big write
        part way (PEP 475 retries only when nothing was written); then write the rest.
        """
        ends = self.ends
        try:
            if total <= SMALL_FRAME:
                parts = [b"".join(parts)]
                sent = ends.write(parts[0])
            else:
                sent = ends.writev(parts)
            while sent < total:
                parts = _skip(parts, sent)
                total -= sent
                sent = ends.writev(parts)
        except OSError as e:
            raise ChannelError("sending to the gateway: %s" % e)

    def send_frame(self, ftype, flags, payload=b""):
        """Send one frame whose payload is a single buffer."""
        self.send([FRAME.pack(len(payload), ftype, flags, 0), payload], 8 + len(payload))

    def send_start(self, flags, block, body):
        """Send START: the header block and the first body bytes (PROTOCOL.md, "START")."""
        length = 4 + len(block) + len(body)
        self.send([FRAME_U32.pack(length, START, flags, 0, len(block)), block, body], 8 + length)

    def send_data(self, flags, body):
        """Send DATA with response body bytes."""
        self.send([FRAME.pack(len(body), DATA, flags, 0), body], 8 + len(body))

    def read_body(self, n):
        """Ask for up to n more request body bytes (READ); return BODY's (bytes, flags)."""
        self.send([FRAME_U32.pack(4, READ, 0, 0, n)], 12)
        frame = self.recv()
        if frame is None:
            raise ChannelError("channel closed while waiting for BODY")
        ftype, flags, payload = frame
        if ftype != BODY:
            raise ChannelError("frame type %d in answer to READ, want BODY" % ftype)
        if len(payload) > n or (not payload and not flags & EOF):
            raise ChannelError("BODY of %d bytes in answer to READ of %d" % (len(payload), n))
        return bytes(payload), flags


def _skip(parts, n):
    """Return the buffers in `parts` without their first n bytes (after a partial send)."""
    rest = []
    for part in parts:
        size = len(part)
        if n >= size:
            n -= size
            continue
        rest.append(memoryview(part)[n:] if n else part)
        n = 0
    return rest


class Input:
    """wsgi.input: the request body, never read past CONTENT_LENGTH.

    Bytes come first from the REQUEST frame (the inline body), then from READ/BODY exchanges
    made only when the app asks for more than is buffered. A READ asks for max(n, 64 KiB),
    capped at what is left and at 1 MiB; the surplus stays buffered for the next read.

    Each method clears the lane's in_app on entry and restores it on exit: SIGUSR2 never
    interrupts a READ/BODY exchange half-way.
    """

    __slots__ = ("chan", "buf", "pos", "left", "cut", "lane")

    def __init__(self, chan, buf, left, lane=NO_LANE):
        self.chan = chan
        self.buf = buf  # bytes received and not yet read are buf[pos:]
        self.pos = 0
        self.left = left  # bytes still to ask the gateway for; 0 when the body is all here
        self.cut = False  # the gateway said the body was cut short (BODY with EOF|ERROR)
        self.lane = lane

    def _fetch(self, want):
        """Make one READ/BODY exchange for at least `want` bytes (less if less is left)."""
        if self.cut:
            raise self._cut_error()
        n = min(max(want, READ_MIN), self.left, READ_MAX)
        data, flags = self.chan.read_body(n)
        if flags & ERROR:
            # PROTOCOL.md, BODY: the read raises rather than pass a short body off as whole;
            # every later read that needs more raises too.
            self.cut = True
            raise self._cut_error()
        self.left = 0 if flags & EOF else self.left - len(data)
        return data

    def _cut_error(self):
        """The exception for a body cut short: Interrupted if the request was cancelled."""
        exc = self.lane.interruption()
        if exc is None:
            exc = OSError("request body cut short: the client or web server went away")
        return exc

    def read(self, size=-1):
        """Read up to size bytes, or everything that is left when size is negative or None."""
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            buf, pos = self.buf, self.pos
            avail = len(buf) - pos
            if size is not None and 0 <= size <= avail:
                self.pos = pos + size
                return buf[pos:pos + size]
            parts = [buf[pos:]]
            self.buf, self.pos = b"", 0
            if size is None or size < 0:
                while self.left:
                    parts.append(self._fetch(READ_MAX))
            else:
                need = size - avail
                while need > 0 and self.left:
                    data = self._fetch(need)
                    if len(data) > need:
                        # Keep the surplus for the next read.
                        parts.append(data[:need])
                        self.buf, self.pos = data, need
                        break
                    parts.append(data)
                    need -= len(data)
            return b"".join(parts)
        finally:
            lane.in_app = was

    def readline(self, size=-1):
        """Read one line, ending with b"\\n" unless the body ends first or size is reached."""
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            limit = -1 if size is None else size
            parts = []
            while True:
                buf, pos = self.buf, self.pos
                stop = len(buf) if limit < 0 else min(len(buf), pos + limit)
                i = buf.find(b"\n", pos, stop)
                if i >= 0:
                    stop = i + 1
                parts.append(buf[pos:stop])
                self.pos = stop
                if i >= 0 or not self.left:
                    break
                if limit >= 0:
                    limit -= stop - pos
                    if limit == 0:
                        break
                # The buffer is used up and the line goes on: get more of the body.
                self.buf, self.pos = self._fetch(READ_MIN), 0
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            lane.in_app = was

    def readlines(self, hint=-1):
        """Read lines until the body ends, or until they hold at least hint bytes (hint > 0)."""
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            lines = []
            total = 0
            while True:
                line = self.readline()
                if not line:
                    return lines
                lines.append(line)
                total += len(line)
                if hint is not None and 0 < hint <= total:
                    return lines
        finally:
            lane.in_app = was

    def __iter__(self):
        return self

    def __next__(self):
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            line = self.readline()
            if not line:
                raise StopIteration
            return line
        finally:
            lane.in_app = was


# The wsgi.input of every request without a body: it holds nothing and never sends READ, so one
# instance serves them all.
NO_BODY = Input(None, b"", 0)


class ErrorStream:
    """wsgi.errors: a text stream whose text reaches the gateway's log as one record per flush.

    What the app writes is kept until it calls flush(), until its request ends, or until more
    than ERRORS_MAX characters are kept; then it goes out as one hclog-style JSON record on
    stderr (error_record), so that a message written in several parts, or a traceback written
    line by line (traceback.print_exc(file=...)), is one record in the log. Outside a request
    (an app's background thread) a write that ends a line goes out at once. One per lane: its
    methods clear the lane's in_app while they run.
    """

    __slots__ = ("lane", "parts", "size", "lock")

    def __init__(self, lane=NO_LANE):
        self.lane = lane
        self.parts = []
        self.size = 0
        self.lock = threading.Lock()  # the app's other threads may write to it too

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("wsgi.errors.write() takes a str, not %s" % type(s).__name__)
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            with self.lock:
                self.parts.append(s)
                self.size += len(s)
                full = self.size > ERRORS_MAX
            if full or (not getattr(lane, "request_id", "") and s.endswith("\n")):
                self.emit()
            return len(s)
        finally:
            lane.in_app = was

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            self.emit()
        finally:
            lane.in_app = was

    def emit(self):
        """Log what is kept, as one record; nothing when nothing is."""
        with self.lock:
            if not self.parts:
                return
            text, self.parts, self.size = "".join(self.parts), [], 0
        record = error_record(text)
        if record is not None:
            level, message, fields = record
            request_id = getattr(self.lane, "request_id", "")
            if request_id:
                fields["request_id"] = request_id
            log(level, message, stream="wsgi.errors", **fields)


# ErrorStream keeps at most this many characters before it logs them.
ERRORS_MAX = 64 * 1024

TRACEBACK_START = "Traceback (most recent call last):"


def error_record(text):
    """The level, message and fields of the record for text written to wsgi.errors; None when
    it is only white space.

    Text holding a Python traceback is an error: its message is its first line when text comes
    before the traceback (a logging call's message), with the exception line as the field
    "error" and the rest as "traceback"; else the exception line, with the text as
    "traceback". Other text is info: its first line is the message, and the lines after
    it, if any, the field "more".
    """
    lines = text.rstrip().split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    for i, line in enumerate(lines):
        if line.endswith(TRACEBACK_START):
            exception = next((l for l in reversed(lines) if l and not l[0].isspace()), line)
            if i == 0:
                return "error", exception, {"traceback": "\n".join(lines)}
            return "error", lines[0], {"error": exception, "traceback": "\n".join(lines[1:])}
    if len(lines) == 1:
        return "info", lines[0], {}
    return "info", lines[0], {"more": "\n".join(lines[1:])}


class FileWrapper:
    """wsgi.file_wrapper (PEP 3333, "Optional Platform-Specific File Handling").

    Iterating yields filelike.read(blksize) blocks; close() closes the file. When the app
    returns one of these, the runner skips the iteration and reads the file in 1 MiB blocks.
    """

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        read, blksize = self.filelike.read, self.blksize
        while True:
            data = read(blksize)
            if not data:
                return
            yield data

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# The environ keys that are the same for every request (PROTOCOL.md, "The environ encoding");
# each Worker copies it with an ErrorStream of its own.
STATIC = {
    "wsgi.version": (1, 0),
    "wsgi.errors": ErrorStream(),
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
    "wsgi.file_wrapper": FileWrapper,
}


def encode_headers(status, headers):
    """Return (header block, declared Content-Length or -1) for start_response's arguments.

    The block is PROTOCOL.md's "header block". Raises TypeError or ValueError for a status or
    header that is not a native latin-1 str, or that holds a NUL; PEP 3333 wants these errors
    raised inside start_response, while the app still runs.
    """
    fields = [status]
    append = fields.append
    for name, value in headers:  # unpacking rejects items that are not pairs
        append(name)
        append(value)
    try:
        text = "\0".join(fields)
    except TypeError:
        raise TypeError(_describe_non_str(fields)) from None
    # A NUL inside the status or a header would shift every field after it.
    if text.count("\0") != len(fields) - 1:
        raise ValueError("NUL character in the status or a header")
    try:
        block = text.encode("latin-1")
    except UnicodeEncodeError as e:
        raise ValueError("status and headers must be latin-1, got %r" % e.object[e.start:e.end]) from None
    if len(block) > MAX_HEADER_BLOCK:
        raise ValueError("status and headers take %d bytes, over the 1 MiB limit" % len(block))
    return block, declared_length(text)


def declared_length(text):
    """Return the Content-Length in a NUL-joined status and header list, or -1 if none is usable.

    A search in C rather than a Python loop over the headers (it costs the same for 2 headers
    and a third of it for 8). A match is a header name only if an odd number of NULs come before
    its first character: field 0 is the status, then names and values alternate.
    """
    lower = text.lower()  # same indices as text: latin-1 case mappings are one character to one
    i = lower.find(CONTENT_LENGTH_FIELD)
    while i >= 0:
        if text.count("\0", 0, i + 1) % 2:
            start = i + len(CONTENT_LENGTH_FIELD)
            stop = text.find("\0", start)
            value = (text[start:] if stop < 0 else text[start:stop]).strip()
            return int(value) if value.isdigit() and value.isascii() else -1
        i = lower.find(CONTENT_LENGTH_FIELD, i + 1)
    return -1


CONTENT_LENGTH_FIELD = "\0content-length\0"


def _describe_non_str(fields):
    """Name the first status or header field that is not a str (start_response's error)."""
    for i, field in enumerate(fields):
        if not isinstance(field, str):
            if i == 0:
                what = "status"
            elif i % 2:
                what = "header name %r" % (field,)
            else:
                what = "value of header %r" % (fields[i - 1],)
            return "%s must be str, not %s" % (what, type(field).__name__)
    return "status and headers must be str"


class Response:
    """One request's response: the start_response and write() callables and the frames they send.

    Headers go out with the first non-empty body chunk (or at the end if there is none). The
    frame that completes the response carries END: the last item of a list or tuple, the byte
    that reaches a declared Content-Length, or an empty DATA after the iterable is exhausted.

    The frame with END also clears the lane's key: a cancellation after it changes nothing.
    """

    __slots__ = ("chan", "input", "lane", "block", "length", "sent", "started", "done", "dropped")

    def __init__(self, chan, input, lane):
        self.chan = chan
        self.input = input
        self.lane = lane
        self.block = None  # header block from the last start_response, None before it
        self.length = -1  # the Content-Length the app declared, or -1
        self.sent = 0  # body bytes sent
        self.started = False  # START is out: the headers can no longer change
        self.done = False  # the frame with END is out
        self.dropped = 0  # body bytes the app produced past its Content-Length

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's start_response, with its exc_info rules."""
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            if exc_info:
                try:
                    if self.started:
                        # Too late to change the response: let the app's error end it (END|ERROR).
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None  # drop the traceback reference, as PEP 3333 advises
            elif self.block is not None:
                raise RuntimeError("start_response() called a second time without exc_info")
            self.block, self.length = encode_headers(status, headers)
            return self.write
        finally:
            lane.in_app = was

    def write(self, data):
        """PEP 3333's write(): data is sent before write returns.

        If the request is cancelled, write raises Interrupted once the frame is out.
        """
        lane = self.lane
        was = lane.in_app
        lane.in_app = False
        try:
            if self.block is None:
                raise RuntimeError("write() called before start_response()")
            if data:
                self.send(data, False)
            if lane.board[lane.slot] == lane.key:
                raise lane.interruption()
        finally:
            lane.in_app = was

    def send(self, data, last):
        """Send one non-empty body chunk; last says it is the app's final one."""
        if self.done:
            # Only after END at a declared Content-Length: the rest of the iterable is extra.
            self.dropped += len(data)
            return
        if self.block is None:
            raise RuntimeError("the app produced a body before calling start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("response body must be bytes, not %s" % type(data).__name__)
        size = len(data)
        if self.length >= 0:
            room = self.length - self.sent
            if size >= room:
                if size > room:
                    self.dropped += size - room
                    data, size = memoryview(data)[:room], room
                last = True
        self._frame(data, size, last)

    def _frame(self, data, size, last):
        """Send body bytes as START or DATA; over 1 MiB, as 1 MiB slices of one memoryview."""
        if size > MAX_CHUNK:
            view = memoryview(data)
            lane = self.lane
            for offset in range(0, size, MAX_CHUNK):
                if offset and lane.board[lane.slot] == lane.key:
                    raise lane.interruption()  # between two frames of a cancelled response
                piece = view[offset:offset + MAX_CHUNK]
                self._frame(piece, len(piece), last and offset + MAX_CHUNK >= size)
            return
        flags = END if last else 0
        if self.started:
            self.chan.send_data(flags, data)
        else:
            self.chan.send_start(flags, self.block, data)
            self.started = True
        self.sent += size
        if last:
            self.done = True
            self.lane.key = -1
            # A READ after END is a protocol error: whatever the app reads now ends here.
            self.input.left = 0

    def send_result(self, result):
        """Send the iterable the app returned, then END. close() is the caller's job.

        Iterables are advanced with the lane's in_app set, and the board is checked before each
        step: for a cancelled request this raises Interrupted (with no frame half-sent).
        Lists and tuples are in memory already and go out whole.
        """
        lane = self.lane
        board, slot = lane.board, lane.slot
        if type(result) is FileWrapper:
            read = result.filelike.read
            while not self.done:
                if board[slot] == lane.key:
                    raise lane.interruption()
                lane.in_app = True
                data = read(MAX_CHUNK)
                lane.in_app = False
                if not data:
                    break
                self.send(data, False)
        elif type(result) is list or type(result) is tuple:
            # The last non-empty item goes out with END: a one-item response is one frame.
            last = len(result) - 1
            while last >= 0 and not result[last]:
                last -= 1
            for i in range(last + 1):
                chunk = result[i]
                if chunk:
                    self.send(chunk, i == last)
        else:
            if board[slot] == lane.key:
                raise lane.interruption()
            lane.in_app = True
            for chunk in result:  # __iter__ and each next() run with in_app set
                lane.in_app = False
                if chunk:
                    self.send(chunk, False)
                if board[slot] == lane.key:
                    raise lane.interruption()
                lane.in_app = True
            lane.in_app = False
        self.finish()

    def finish(self):
        """End the response after the app's body is all out."""
        if self.done:
            return
        if self.block is None:
            raise RuntimeError("the app returned without calling start_response()")
        if self.started:
            self.chan.send_data(END, b"")
        else:
            self.chan.send_start(END, self.block, b"")
            self.started = True
        self.done = True
        self.lane.key = -1
        self.input.left = 0

    def fail(self, environ, message="app raised an exception"):
        """Log the app's exception; answer 500 if nothing was sent yet, else cut the response."""
        kind, exc, _ = sys.exc_info()
        tb = traceback.format_exc()
        log(
            "error",
            message,
            error=_one_line(kind, exc),
            request_id=environ.get("wsgi_fcgi.request_id", ""),
            method=environ.get("REQUEST_METHOD", ""),
            uri=str(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")),
            headers_sent=self.started,
            traceback=tb,
        )
        if self.done:
            return
        self.done = True
        self.lane.key = -1
        self.input.left = 0
        if self.started:
            self.chan.send_data(END | ERROR, b"")
        else:
            self.chan.send_start(END, *error_response(tb))
            self.started = True


def queue_times(environ, now):
    """Add wsgi_fcgi.queue_wait: the seconds from the gateway's wsgi_fcgi.queue_start to now.

    queue_start is when the request began to wait (its arrival in the gateway, or the web
    server's X-Request-Start), a float of seconds since the epoch; now is when this worker
    starts the request.
    """
    start = environ.get("wsgi_fcgi.queue_start")
    if start is not None:
        wait = now - start
        environ["wsgi_fcgi.queue_wait"] = wait if wait > 0.0 else 0.0


def _one_line(kind, exc):
    """Format an exception as one line: `Type: message`, or `Type` when it has no message."""
    try:
        message = " ".join(str(exc).split())
    except Exception:
        message = "(its message cannot be shown)"
    return "%s: %s" % (kind.__name__, message) if message else kind.__name__


def make_input(chan, environ, flags, body, lane=NO_LANE):
    """Build wsgi.input from CONTENT_LENGTH, the REQUEST flags and the inline body (a memoryview)."""
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit() and length.isascii():
        length = int(length)
    else:
        length = -1
    if flags & EOF:
        left = 0  # the inline body is the whole body: never send READ
    elif length < 0:
        # The gateway always sends a true CONTENT_LENGTH with a body (PROTOCOL.md); should one be
        # missing anyway, read until BODY carries EOF.
        left = sys.maxsize
    else:
        left = max(0, length - len(body))
    if 0 <= length < len(body):
        body = body[:length]
    if not left and not body:
        return NO_BODY
    return Input(chan, bytes(body), left, lane)


class Worker(Lane):
    """The request loop: one REQUEST frame at a time until the channel closes or SIGTERM.

    A Worker is also its channel's Lane: index is the channel's place in WSGI_FCGI_RUNNER_FD,
    board the process's cancel board (PROTOCOL.md, "The cancel board").
    """

    __slots__ = ("chan", "app", "ppid", "idle", "stopping", "n", "static", "errors", "request_id")

    def __init__(self, chan, app, ppid, index=0, board=None):
        Lane.__init__(self, zero_board(index + 1) if board is None else board, index)
        self.chan = chan
        self.app = app
        self.ppid = ppid  # the gateway's pid, taken at start: another parent means it is gone
        self.idle = False  # blocked waiting for a REQUEST: SIGTERM may end the process at once
        self.stopping = False  # SIGTERM arrived: exit after the current request
        self.n = 0  # REQUEST frames received (PROTOCOL.md, "Request numbers")
        self.static = dict(STATIC)
        self.errors = self.static["wsgi.errors"] = ErrorStream(self)
        self.static["wsgi_fcgi.cancelled"] = self.cancelled
        self.request_id = ""  # the running request's, for wsgi.errors records; "" between requests

    def on_term(self, signum, frame):
        """SIGTERM (and SIGINT): finish the current request, or stop now when idle."""
        self.stopping = True
        if self.idle:
            raise Stop()

    def serve(self):
        """Serve requests until told to stop; return the exit status."""
        chan = self.chan
        board = self.board
        self.ident = threading.get_ident()
        try:
            while True:
                # idle is set before the checks, so a SIGTERM that lands after them still
                # interrupts the recv. (One landing after recv returned a REQUEST but before
                # idle is cleared drops that request: the gateway answers it with a 502.)
                self.idle = True
                if self.stopping:
                    log("info", "SIGTERM received: exiting")
                    return EXIT_OK
                # Checked before waiting for the gateway, not between requests read together
                # (send-ahead): one system call less per request when they come back to back.
                if chan.start == chan.end and os.getppid() != self.ppid:
                    log("warn", "parent process changed: exiting", ppid=os.getppid())
                    return EXIT_OK
                frame = chan.recv()
                self.idle = False
                if frame is None:
                    return EXIT_OK  # the gateway closed the channel
                ftype, flags, payload = frame
                if ftype != REQUEST:
                    raise ChannelError("frame type %d while waiting for REQUEST" % ftype)
                n = self.n = self.n + 1
                if chan.seq != n & 0xFFFF:
                    raise ChannelError("REQUEST numbered %d, want %d" % (chan.seq, n & 0xFFFF))
                key = n & U32_MASK or -1  # 0 is every word of a fresh board: never cancelled
                slot = self.base + (key & (BOARD_SLOTS - 1))
                if board[slot] == key:
                    # Cancelled before it started (sent ahead, then aborted): the app never sees it.
                    chan.send_frame(ABORTED, 0)
                    continue
                self.key, self.slot = key, slot  # cleared by the frame with END, or ABORTED
                self.handle(flags, payload)
        except Stop:
            log("info", "SIGTERM received while idle: exiting")
            return EXIT_OK

    def handle(self, flags, payload):
        """Run the app for one REQUEST frame and send its response.

        Errors are answered as PROTOCOL.md's "Behaviour at every break" says; a request the
        gateway cancels ends with ABORTED (PROTOCOL.md, "Interrupting the app").
        """
        now = time.time()
        if len(payload) < 4:
            raise ChannelError("REQUEST of %d bytes" % len(payload))
        environ_end = 4 + U32.unpack_from(payload)[0]
        if environ_end > len(payload):
            raise ChannelError("REQUEST environ_len %d is past the frame's end" % (environ_end - 4))
        try:
            environ = marshal.loads(payload[4:environ_end])
        except (EOFError, ValueError, TypeError) as e:
            raise ChannelError("REQUEST environ does not decode: %s" % e)
        if type(environ) is not dict:
            raise ChannelError("REQUEST environ is a %s, not a dict" % type(environ).__name__)
        environ.update(self.static)
        self.request_id = environ.get("wsgi_fcgi.request_id") or "-"
        queue_times(environ, now)
        if flags & EOF and environ_end == len(payload):
            body = NO_BODY  # the common case, a request without a body
        else:
            body = make_input(self.chan, environ, flags, payload[environ_end:], self)
        environ["wsgi.input"] = body
        response = Response(self.chan, body, self)
        result = None
        stopped = None
        try:
            self.in_app = True
            result = self.app(environ, response.start_response)
            self.in_app = False
            response.send_result(result)
        except Exception:
            self.in_app = False
            response.fail(environ)
        except Interrupted:
            self.in_app = False
            stopped = self.interruption()
            if stopped is None:
                response.fail(environ)  # the app raised it itself: an error like any other
            else:
                response.done = True  # ABORTED ends it: nothing else goes out, nor any READ
                self.key = -1
                body.left = 0
        except ChannelError:
            raise
        except BaseException:
            # SystemExit or KeyboardInterrupt from the app: answer, then let it end the worker.
            self.in_app = False
            response.fail(environ)
            raise
        finally:
            self.in_app = False
            if result is not None:
                self.close_result(result, response, environ)
            if self.errors.parts:
                self.errors.emit()  # what the app wrote to wsgi.errors without a flush
            self.request_id = ""
        if stopped is not None:
            log(
                "debug",  # every client that leaves would be a line at info; the access log has 499
                "request stopped: cancelled",
                reason=REASON_NAMES[type(stopped)],
                request_id=environ.get("wsgi_fcgi.request_id", ""),
                method=environ.get("REQUEST_METHOD", ""),
                uri=str(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")),
            )
            self.chan.send_frame(ABORTED, 0)
        if response.dropped:
            log(
                "warn",
                "app produced more body than its Content-Length; the excess was dropped",
                content_length=response.length,
                dropped=response.dropped,
                request_id=environ.get("wsgi_fcgi.request_id", ""),
                uri=environ.get("REQUEST_URI", ""),
            )

    def close_result(self, result, response, environ):
        """Call the iterable's close(), if it has one, as PEP 3333 requires even after an error.

        in_app is clear: SIGUSR2 does not interrupt close(), which runs to its end.
        """
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        except Exception:
            # END, or the answer to the app's error, went out before close(): this is only logged.
            response.fail(environ, "close() of the app's iterable raised an exception")


def load_app(spec):
    """Import `module:callable` (gunicorn's spelling) and return the callable.

    `module` alone means `module:application`; the callable may be a dotted attribute path.
    Raises AppLoadError with the one-line message that FATAL starts with.
    """
    module_name, _, attr_path = spec.partition(":")
    attr_path = attr_path or "application"
    if not module_name or not all(part.isidentifier() for part in attr_path.split(".")):
        raise AppLoadError('app "%s": expected module:callable' % spec)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:
        # The interpreter is named: a python3 found on PATH that is not the one meant is the
        # most common reason a module is missing.
        raise AppLoadError('cannot import "%s" with %s: %s' % (spec, interpreter(), _one_line(type(e), e))) from e
    app = module
    for part in attr_path.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise AppLoadError('app "%s": module has no attribute "%s"' % (spec, attr_path)) from None
    if not callable(app):
        raise AppLoadError('app "%s": "%s" is not callable (%s)' % (spec, attr_path, type(app).__name__))
    return app


def interpreter():
    """The interpreter as messages name it: "/usr/bin/python3 (3.11.2)", or for PyPy
    "/usr/bin/pypy3 (3.9.16, PyPy 7.3.11)" (as the gateway's pyrunner.Interpreter prints)."""
    version = "%d.%d.%d" % sys.version_info[:3]
    pypy = getattr(sys, "pypy_version_info", None)
    if pypy is not None:
        version += ", PyPy %d.%d.%d" % tuple(pypy[:3])
    return "%s (%s)" % (sys.executable or "python", version)


class AppLoadError(Exception):
    """The app cannot be loaded; the message is the first line FATAL carries.

    When the import raised, that exception is the __cause__.
    """


# FATAL frames are read with a 64 KiB buffer by the gateway: a longer traceback keeps its end.
MAX_FATAL_TRACEBACK = 60 << 10


def import_traceback(exc):
    """Format the exception an import raised, without the runner's and importlib's frames.

    Those frames only say that an import happened; what is left starts in the app's code. An
    exception raised by importlib itself has no frames left: a SyntaxError still shows where,
    a missing module has nothing to add to the first line (""). Very long tracebacks (deep
    recursion) keep their last part.
    """
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_globals is globals() or tb.tb_frame.f_globals.get("__name__", "").startswith("importlib")
    ):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")
    if "\n" not in text:
        return ""
    if len(text) > MAX_FATAL_TRACEBACK:
        text = "...\n" + text[-MAX_FATAL_TRACEBACK:]
    return text


def set_path(chdir, pythonpath):
    """Change directory and put it first on sys.path, then the --pythonpath entries (as gunicorn).

    Without --chdir the current directory goes first, as gunicorn's default chdir does. What
    Python put at sys.path[0] goes: "" (python3 -c, as the gateway starts the runner: the
    directory it started in) or the runner's own directory (python3 runner.py).
    """
    first = sys.path[0] if sys.path else None
    if first == "" or (first is not None and os.path.realpath(first) == RUNNER_DIR):
        del sys.path[0]
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as e:
            raise AppLoadError('cannot chdir to "%s": %s' % (chdir, e.strerror or e))
    entries = [os.getcwd()]
    entries += [os.path.abspath(p) for p in (pythonpath or "").split(os.pathsep) if p]
    sys.path[0:0] = entries


def parse_args(argv):
    """Parse the command line the gateway gives."""
    parser = argparse.ArgumentParser(prog="runner.py", description="wsgi-fcgi's Python worker")
    parser.add_argument("--app", required=True, help="module:callable, or module for module:application")
    parser.add_argument("--chdir", help="change to DIR and import from it first")
    parser.add_argument("--pythonpath", help="more directories for sys.path, separated by " + os.pathsep)
    parser.add_argument("--preload", action="store_true", help="be a preload master: fork a worker per FORK")
    parser.add_argument("--debug", action="store_true", help="put the traceback in the body of a 500 (always logged)")
    parser.add_argument("--run-once", action="store_true", help="serve one request: wsgi.run_once is True (CGI mode)")
    parser.add_argument("--name", help="the name process titles give the app (default: the --app module)")
    return parser.parse_args(argv)


def open_channels():
    """Return the channels named by WSGI_FCGI_RUNNER_FD ("3:4", or "3:4,5:6,7:8" for
    --threads 3; a preload master's control socket alone: "3"), or None with a line on stderr."""
    chans = []
    try:
        for item in os.environ[FD_VAR].split(","):
            rfd, colon, wfd = item.partition(":")
            if colon:
                fds = (int(rfd), int(wfd))
                ends = Pipes(*fds)
            else:
                fds = (int(item),)
                ends = SocketEnd(socket.socket(fileno=fds[0]))
            for fd in fds:
                # Keep the channel out of processes the app spawns: they must not hold it open.
                os.set_inheritable(fd, False)
            chans.append(Channel(ends))
    except (KeyError, ValueError, OSError) as e:
        sys.stderr.write("runner.py: %s does not name the channel: %s\n" % (FD_VAR, e))
        for chan in chans:
            chan.ends.close()
        return None
    return chans


def enable_stack_dumps(fd):
    """Make SIGUSR1 write every thread's Python stack to fd (WSGI_FCGI_RUNNER_STACK_FD).

    The gateway sends SIGUSR1 when a request is slow or has timed out, and logs what it reads
    (PROTOCOL.md, "The stack pipe"). faulthandler writes from its C signal handler, so the
    stack comes even while the app is stuck in C code. Done before the app is imported: an
    import that hangs past the start timeout is dumped too.
    """
    if not fd:
        return
    try:
        fd = int(fd)
        os.set_inheritable(fd, False)  # not for processes the app spawns
        faulthandler.register(signal.SIGUSR1, file=fd, all_threads=True, chain=False)
    except (ValueError, OSError, RuntimeError) as e:
        log("warn", "Python stacks cannot be dumped on SIGUSR1", error=str(e))


# --- Process titles (PROTOCOL.md, "Process titles") ----------------------------------------------


def titles(role, name):
    """The title ps shows for a process of `role` ("worker", "preload master") serving the app
    `name` -- "wsgi-fcgi: worker [mysite]" -- and its command name for top and ps -o comm,
    which the kernel keeps to 15 bytes: "worker mysite", "master mysite"."""
    comm = ("%s %s" % (role.split()[-1], name)).encode("utf-8")[:15].decode("utf-8", "ignore")
    return "wsgi-fcgi: %s [%s]" % (role, name), comm


def set_title(role, name):
    """Retitle the process (titles()): what ps, top and /proc show of it.

    The command line is rewritten in place: the memory the kernel reads /proc/PID/cmdline from
    (arg_start to arg_end in /proc/self/stat) gets the title, then NUL bytes to its end, written
    through /proc/self/mem, so that a wrong address is an OSError, never a crash; and only when
    that memory holds what /proc/self/cmdline says. Python copied its arguments at start-up
    (sys.argv is unchanged). The command name is the main thread's (/proc/self/comm; the
    runner calls this from the main thread, where it is what prctl(PR_SET_NAME) would set),
    and threads started afterwards inherit it. Where either cannot be done (no /proc, a kernel
    or sandbox that refuses), the process keeps the title it has.
    """
    title, comm = titles(role, name)
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        # After the command name in parentheses: field 3 (state) on; arg_start and arg_end are
        # fields 48 and 49 (Linux 3.5 and later).
        fields = stat[stat.rindex(b")") + 2:].split()
        start, end = int(fields[45]), int(fields[46])
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = f.read()
        raw = title.encode("utf-8")[: end - start - 1]
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            if end - start > 1 and os.pread(fd, end - start, start) == cmdline:
                os.pwrite(fd, raw + b"\0" * (end - start - len(raw)), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError) as e:
        log("debug", "the process title cannot be set", error=str(e))
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(comm)
    except OSError as e:
        log("debug", "the process name cannot be set", error=str(e))


def main(argv=None):
    """Check how the runner was started, then run the worker. Returns the exit status."""
    ppid = os.getppid()  # the gateway, before anything can re-parent the process
    if os.environ.get(COOKIE_VAR) != COOKIE:
        sys.stderr.write(
            "runner.py is the Python worker of wsgi-fcgi: the wsgi-fcgi gateway starts it, "
            "it is not run by hand (%s is missing or wrong)\n" % COOKIE_VAR
        )
        return EXIT_USAGE
    args = parse_args(argv)
    chans = open_channels()
    if chans is None:
        return EXIT_USAGE
    try:
        return run(chans, args, ppid)
    finally:
        for chan in chans:
            chan.ends.close()


def run(chans, args, ppid):
    """Load the app, say READY (or FATAL) on each channel, serve. Returns the exit status.

    With --preload, the one channel is the control socket of a preload master instead.
    """
    global DEBUG
    DEBUG = args.debug
    STATIC["wsgi.run_once"] = args.run_once
    stack_fd = os.environ.get(STACK_FD_VAR)
    board_fd = os.environ.get(BOARD_FD_VAR)
    for name in (COOKIE_VAR, FD_VAR, STACK_FD_VAR, BOARD_FD_VAR):
        os.environ.pop(name, None)  # the app and its children have no use for them
    board = None
    if not args.preload:
        enable_stack_dumps(stack_fd)
        if board_fd:
            try:
                board = map_board(int(board_fd), len(chans))
            except (ValueError, OSError) as e:
                log("error", "the cancel board cannot be mapped: exiting", error=str(e))
                return EXIT_CHANNEL
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # each line reaches the gateway's log at once
        except (AttributeError, ValueError):
            pass
    sys.modules["wsgi_fcgi"] = API  # before the app's import, which may import it
    name = args.name or args.app.partition(":")[0]  # what the process titles call the app
    # Before the import: threads the app starts inherit the command name.
    set_title("preload master" if args.preload else "worker", name)
    try:
        set_path(args.chdir, args.pythonpath)
        app = load_app(args.app)
    except AppLoadError as e:
        # PROTOCOL.md, FATAL: the one-line message, then the traceback if Python raised. The
        # gateway logs it (once at start-up, in full when a replacement fails), so not here.
        payload = str(e)
        tb = "" if e.__cause__ is None else import_traceback(e.__cause__)
        if tb:
            payload += "\n" + tb
        for chan in chans:
            try:
                chan.send_frame(FATAL, 0, payload.encode("utf-8", "replace"))
            except ChannelError:
                pass
        return EXIT_APP_LOAD
    if args.preload:
        return Master(chans[0].ends.sock, app, ppid, name).run()
    return serve_app(chans, app, ppid, board)


def serve_app(chans, app, ppid, board=None):
    """Serve requests with app on every channel until they close; return the exit status.

    One channel is served in the main thread. With more (--threads), each of the others gets a
    thread of its own and wsgi.multithread is True; the process exits when all have ended.
    An app that calls sys.exit() in one of those threads ends the whole process after its
    answer (the gateway answers 502 for requests other threads were running).

    board is the mapped cancel board, None without one. SIGUSR2 interrupts cancelled
    requests (on_interrupt); the threads block it, so that it reaches the main thread.
    """
    global ASYNC_EXC
    if board is None:
        board = zero_board(len(chans))
    STATIC["wsgi.multithread"] = len(chans) > 1
    if len(chans) > 1 and sys.implementation.name == "cpython":
        try:
            import ctypes

            ASYNC_EXC = (ctypes.pythonapi.PyThreadState_SetAsyncExc, ctypes)
        except (ImportError, AttributeError):
            ASYNC_EXC = None
    previous = signal.signal(signal.SIGUSR2, on_interrupt)
    if previous not in (signal.SIG_DFL, signal.SIG_IGN, None, on_interrupt):
        log("warn", "the app's SIGUSR2 handler is replaced: wsgi-fcgi interrupts cancelled requests with it")
    workers = [Worker(chan, app, ppid, i, board) for i, chan in enumerate(chans)]
    workers[0].main = True
    LANES[:] = workers
    threads = []
    if len(workers) > 1:
        # The threads start with SIGUSR2 blocked (a new thread inherits the signal mask), so
        # the kernel delivers it to the main thread: only there does Python run its handler,
        # and only there would it interrupt a blocking call.
        mask = _block_sigusr2(signal.SIG_BLOCK)
        try:
            for i, worker in enumerate(workers[1:], 1):
                t = threading.Thread(target=serve_thread, args=(worker,), name="wsgi-fcgi-%d" % i, daemon=True)
                t.start()
                threads.append(t)
        finally:
            if mask:
                _block_sigusr2(signal.SIG_UNBLOCK)
    status = serve_channel(workers[0])
    for t in threads:
        t.join()
    return status


def _block_sigusr2(how):
    """Block or unblock SIGUSR2 in the calling thread; False where that cannot be done."""
    try:
        signal.pthread_sigmask(how, [signal.SIGUSR2])
        return True
    except (AttributeError, OSError, ValueError):
        return False


def serve_thread(worker):
    """A thread's serve_channel: an app's sys.exit() here ends the process."""
    try:
        status = serve_channel(worker)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else EXIT_CHANNEL
    except BaseException:
        traceback.print_exc()
        status = EXIT_CHANNEL
    if status != EXIT_OK:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def serve_channel(worker):
    """Say READY on the worker's channel and serve requests until told to stop; return the exit
    status. The main thread's worker also takes SIGTERM and SIGINT."""
    chan = worker.chan
    if worker.main:
        signal.signal(signal.SIGTERM, worker.on_term)
        signal.signal(signal.SIGINT, worker.on_term)
    try:
        ready = "protocol=%d pid=%d %s" % (PROTOCOL_VERSION, os.getpid(), READY_PYTHON)
        chan.send_frame(READY, 0, ready.encode("ascii"))
        return worker.serve()
    except ChannelError as e:
        log("error", "channel error: exiting", error=str(e))
        return EXIT_CHANNEL


# Control frames of a preload master (PROTOCOL.md, "Preload"), one frame per SOCK_SEQPACKET
# message on the master's control socket.
FORK = 32  # gateway -> master: uint32 token; SCM_RIGHTS: the channels' pipes, the board, the stack pipe
SPAWNED = 33  # master -> gateway: uint32 token, uint32 pid of the forked worker
EXITED = 34  # master -> gateway: uint32 pid, int32 wait status
U32_PAIR = struct.Struct("<II")
U32_I32 = struct.Struct("<Ii")
PR_SET_PDEATHSIG = 1
MAX_FDS = 253  # the kernel's SCM_MAX_FD: stdout, stderr, two per channel (--threads, at most 124), board, stack pipe


class Master:
    """A preload master: the app imported once, gc.freeze()d, and a worker forked per FORK.

    The workers share the master's memory copy-on-write and are ready as soon as they are
    forked: no import. Each serves the channel the gateway passed with FORK exactly as a
    worker started on its own would (same READY, same frames). The master reports each
    child's pid (SPAWNED) and exit (EXITED); it exits when the gateway closes the control
    socket and its children are gone.
    """

    def __init__(self, sock, app, ppid, name):
        self.sock = sock
        self.app = app
        self.ppid = ppid
        self.name = name  # the app's name in the process titles
        self.children = set()
        self.libc = None
        self.pid = os.getpid()
        self.warned = False  # about threads alive at a fork

    def run(self):
        import ctypes  # before any fork: a child must not pay for the import

        try:
            self.libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            self.libc = None
        gc.collect()
        if hasattr(gc, "freeze"):
            gc.freeze()  # the imported objects move out of the collector's sight: no COW churn
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.wake = (wake_r, wake_w)
        ready = "protocol=%d pid=%d %s preload=1" % (PROTOCOL_VERSION, os.getpid(), READY_PYTHON)
        self.send(READY, ready.encode("ascii"))
        open_ = True
        while open_ or self.children:
            try:
                readable, _, _ = select.select([self.sock, wake_r] if open_ else [wake_r], [], [])
            except InterruptedError:
                continue
            if wake_r in readable:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            self.reap()
            if open_ and self.sock in readable:
                open_ = self.receive()
        return EXIT_OK

    def send(self, ftype, payload):
        try:
            self.sock.sendmsg([FRAME.pack(len(payload), ftype, 0, 0) + payload])
        except OSError:
            pass  # the gateway is gone: the children die with it (PR_SET_PDEATHSIG)

    def receive(self):
        """Handle one control message; return False when the gateway closed the socket."""
        fds = []
        try:
            msg, ancdata, _, _ = self.sock.recvmsg(64, socket.CMSG_SPACE(MAX_FDS * 4))
        except OSError as e:
            log("error", "preload master: control socket failed", error=str(e))
            return False
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack("%di" % (len(data) // 4), data[: len(data) - len(data) % 4]))
        if not msg:
            return False
        length, ftype, _, _ = FRAME.unpack_from(msg)
        # stdout, stderr, 2N channel ends, the board and the stack pipe; without the board (an
        # odd count), the worker gets none and nothing is ever cancelled, as without
        # WSGI_FCGI_RUNNER_BOARD_FD.
        if ftype != FORK or length != 4 or len(fds) < 5:
            for fd in fds:
                os.close(fd)
            log("error", "preload master: bad control message", type=ftype, fds=len(fds))
            return True
        token = U32.unpack_from(msg, 8)[0]
        if len(fds) % 2:
            chan_fds, board_fd = fds[2:-1], None
        else:
            chan_fds, board_fd = fds[2:-2], fds[-2]
        if not self.warned:
            self.warn_threads()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # what the app left in a buffer is the master's to write, once
            except (OSError, ValueError, AttributeError):
                pass
        with warnings.catch_warnings():
            if self.warned:
                # Python 3.12 and later would say it again at the fork, without the names.
                warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            self.child(fds[0], fds[1], chan_fds, board_fd, fds[-1])  # never returns
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self.send(SPAWNED, U32_PAIR.pack(token, pid))
        return True

    def reap(self):
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send(EXITED, U32_I32.pack(pid, status))

    def warn_threads(self):
        """Warn, once, when the master is about to fork with threads other than its own alive.

        fork() copies only the thread that calls it: a lock another thread held at that moment
        (the logging module's, an import lock, a connection pool's) stays held forever in the
        worker, which hangs when it takes it. Python 3.12 and later say so too, as a
        DeprecationWarning; 3.8 to 3.11 say nothing. The threads threading knows are named
        with what they run; those started from C (or with _thread) are only counted, from
        /proc/self/task.
        """
        me = threading.current_thread()
        named = []
        for t in threading.enumerate():
            if t is me:
                continue
            # Thread keeps its target in _target (CPython and PyPy) until the thread ends; a
            # subclass that overrides run() is named by its class.
            run = getattr(t, "_target", None) or (type(t) if type(t) is not threading.Thread else None)
            if run is None:
                named.append(t.name)
            else:
                named.append("%s (%s.%s)" % (t.name, getattr(run, "__module__", "?"), getattr(run, "__qualname__", "?")))
        try:
            unnamed = len(os.listdir("/proc/self/task")) - 1 - len(named)
        except OSError:
            unnamed = 0
        if not named and unnamed <= 0:
            return
        self.warned = True
        fields = {"threads": ", ".join(named)}
        if unnamed > 0:
            fields["unnamed_threads"] = unnamed
        log(
            "warn",
            "the app started threads before the preload master forks its workers: a lock one of "
            "them holds at a fork stays held in that worker, which can hang on it; start threads "
            "after the fork (docs/process-management.md, \"Preload\")",
            **fields
        )

    def child(self, out_fd, err_fd, chan_fds, board_fd, stack_fd):
        """The forked worker: serve the channel, then leave without running the master's code."""
        status = EXIT_CHANNEL
        try:
            # Its own stdout and stderr, so that the gateway logs its lines with its own pid.
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.close(out_fd)
            os.close(err_fd)
            set_title("worker", self.name)
            master = self.pid
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in self.wake:
                os.close(fd)
            self.sock.close()
            if self.libc is not None:
                # The worker dies with its master, as the master dies with the gateway.
                self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != master:
                os._exit(EXIT_OK)
            enable_stack_dumps(str(stack_fd))
            chans = []
            for i in range(0, len(chan_fds) - 1, 2):
                for fd in chan_fds[i:i + 2]:
                    os.set_inheritable(fd, False)
                chans.append(Channel(Pipes(chan_fds[i], chan_fds[i + 1])))
            board = None
            if board_fd is not None:
                try:
                    board = map_board(board_fd, len(chans))
                except (ValueError, OSError) as e:
                    log("error", "the cancel board cannot be mapped: exiting", error=str(e))
                    os._exit(EXIT_CHANNEL)
            status = serve_app(chans, self.app, master, board)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else EXIT_CHANNEL
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
