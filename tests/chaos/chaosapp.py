"""The chaos suite's WSGI app: standard library only, so a worker starts in milliseconds.

Every answer of / is "VERSION PID", VERSION coming from chaos_version.py, which the tests
rewrite (new code for a reload) or break (code that does not import). Other routes:

  /sleep?S      sleep S seconds, then answer as /
  /hang         never answer (the gateway's --timeout must end it)
  /leak?K       keep K KiB more of memory for the worker's whole life, then answer as /
  /big?N        N bytes, in 64 KiB chunks from a generator
  /echo         read the body; answer its length and its sum of bytes mod 2**32
  /env          the keys of the environ that start with HTTP_, one a line
  /error        raise before start_response
  /bad?KIND     a response header the gateway must refuse (CR/LF/NUL, a bad name, a bad status)
  /drip?ID      a 30 s event stream, 2 KiB every 50 ms, from an iterable whose close() appends
                "ID TIME" (time.time()) to the file CHAOS_CLOSED names
"""

import os
import time

from chaos_version import VERSION

LEAKED = []

BAD = {
    "crlf-value": ("200 OK", [("X-Ok", "a\r\nX-Injected: 1")]),
    "lf-value": ("200 OK", [("X-Ok", "a\nX-Injected: 1")]),
    "cr-value": ("200 OK", [("X-Ok", "a\rX-Injected: 1")]),
    "nul-value": ("200 OK", [("X-Ok", "a\x00X-Injected: 1")]),
    "crlf-name": ("200 OK", [("X-Ok\r\nX-Injected", "1")]),
    "colon-name": ("200 OK", [("X-Injected: 1\r\nX-Ok", "1")]),
    "space-name": ("200 OK", [("X Injected", "1")]),
    "nul-name": ("200 OK", [("X-Injected\x00", "1")]),
    "empty-name": ("200 OK", [("", "X-Injected")]),
    "status-crlf": ("200 OK\r\nX-Injected: 1", []),
    "status-word": ("OK X-Injected", []),
    "status-short": ("20 X-Injected", []),
    "status-big": ("1000 X-Injected", []),
    "status-empty": ("", [("X-Injected", "1")]),
}


class Drip:
    """A slow stream with close(), as a server-sent events endpoint."""

    def __init__(self, rid):
        self.rid = rid

    def __iter__(self):
        for _ in range(600):
            yield b"data: " + b"x" * 2040 + b"\n\n"
            time.sleep(0.05)

    def close(self):
        with open(os.environ["CHAOS_CLOSED"], "a") as f:
            f.write("%s %.6f\n" % (self.rid, time.time()))


def hello():
    return ("%s %d" % (VERSION, os.getpid())).encode()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/stream/"):  # nginx's unbuffered location (deploy/nginx)
        path = path[len("/stream"):]
    query = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        time.sleep(float(query or "0.1"))
    elif path == "/hang":
        time.sleep(3600)
    elif path == "/leak":
        chunk = bytearray(int(query or "512") * 1024)
        for i in range(0, len(chunk), 4096):  # touch every page: resident, not just reserved
            chunk[i] = 1
        LEAKED.append(chunk)
    elif path == "/big":
        n = int(query or "0")

        def chunks():
            left = n
            block = b"b" * 65536
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)

        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return chunks()
    elif path == "/drip":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return Drip(query)
    elif path == "/echo":
        body = environ["wsgi.input"].read()
        out = ("%d %d" % (len(body), sum(body) & 0xFFFFFFFF)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
        return [out]
    elif path == "/env":
        out = "".join(k + "\n" for k in sorted(environ) if k.startswith("HTTP_")).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
        return [out]
    elif path == "/error":
        raise RuntimeError("chaos: /error raises")
    elif path == "/bad":
        status, headers = BAD[query]
        start_response(status, headers)
        return [b"the app's body\n"]
    body = hello()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
