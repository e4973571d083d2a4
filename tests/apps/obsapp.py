"""Test app for tests/observability_test.go: what the app sees of the request id and the queue
wait, and requests that block until released, fail, hang or kill their worker on cue.

Routes are matched on the last segment of PATH_INFO, so that any nginx location reaches them.
"""
import json
import os
import signal
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    route = environ["PATH_INFO"].rsplit("/", 1)[-1]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "block":
        # Say it started (a file the test waits for), then wait until the test writes to the
        # FIFO it made: a sync point, no sleeping.
        open(os.path.join(query["dir"], "started-" + query["key"]), "w").close()
        with open(os.path.join(query["dir"], "release-" + query["key"]), "rb") as f:
            f.read(1)
    elif route == "boom":
        raise RuntimeError("boom")
    elif route == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif route == "hang":
        time.sleep(float(query.get("s", "30")))
    seen = {
        "request_id": environ.get("wsgi_fcgi.request_id"),
        "HTTP_X_REQUEST_ID": environ.get("HTTP_X_REQUEST_ID"),
        "queue_start": environ.get("wsgi_fcgi.queue_start"),
        "queue_wait": environ.get("wsgi_fcgi.queue_wait"),
        "pid": os.getpid(),
    }
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
