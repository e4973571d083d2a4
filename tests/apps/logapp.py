"""A WSGI app for the log tests (tests/logs_test.go): what an app writes to its output, and
how it fails, as the gateway's log must show it.

    /                 200 "ok"
    /sleep?s=S        sleeps S seconds, then 200
    /stderr-traceback prints a handled exception's traceback on stderr, then 200
    /errors-traceback writes a handled exception's traceback to wsgi.errors, then 200
    /raise            raises (the runner answers 500 and logs the traceback)
    /long             prints a 2 MiB line on stdout, then a short one, then 200
"""

import sys
import time
import traceback
from urllib.parse import parse_qs


def handled(where):
    """A traceback of a handled ValueError, written to where."""
    try:
        raise ValueError("handled and printed")
    except ValueError:
        traceback.print_exc(file=where)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        time.sleep(float(q.get("s", "1")))
    elif path == "/stderr-traceback":
        handled(sys.stderr)
    elif path == "/errors-traceback":
        handled(environ["wsgi.errors"])
    elif path == "/raise":
        raise RuntimeError("raised by the app")
    elif path == "/long":
        print("x" * (2 << 20))
        print("after the long line")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
