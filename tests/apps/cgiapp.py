"""A standard-library WSGI app for the CGI-mode tests (tests/cgi_test.go).

/env answers with the whole environ as JSON (the wsgi.* objects as their type's name, the
flags as booleans), the body's length, the process's uid, and the request variables found in
os.environ (there should be none). /gate?fifo=PATH yields a first chunk, then waits until the test writes to the
named pipe PATH before it yields the last: a client that reads the first chunk before the
test writes saw the response stream. /sleep?s= sleeps; /bad-header answers a header with a
line break in it.
"""

import json
import os
import time
from urllib.parse import parse_qs

FLAGS = ("wsgi.run_once", "wsgi.multiprocess", "wsgi.multithread", "wsgi.input_terminated")
REQUEST_PREFIXES = ("HTTP_", "QUERY_STRING", "REQUEST_", "CONTENT_", "PATH_INFO", "SCRIPT_NAME", "REMOTE_")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/gate":
        def chunks(fifo):
            yield b"first\n"
            with open(fifo, "rb") as f:  # blocks until the test opens it for writing
                f.read()
            yield b"last\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks(query["fifo"][0])
    if path == "/sleep":
        time.sleep(float(query.get("s", ["1"])[0]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept\n"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        return [b"never sent\n"]
    body = environ["wsgi.input"].read()
    out = {}
    for key, value in environ.items():
        if key in FLAGS:
            out[key] = value
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = type(value).__name__
    out["body_length"] = len(body)
    out["uid"] = os.getuid()
    out["os_environ_request_vars"] = sorted(k for k in os.environ if k.startswith(REQUEST_PREFIXES))
    data = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
