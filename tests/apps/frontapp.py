"""A standard-library WSGI app serving both FastCGI roles, for the front-end tests.

As a responder it answers /env with a JSON object of the environ keys the tests look at (and
the worker's pid and how many requests it has served), /big with a body of ?n= bytes, /slow
with a response that trickles forever and /trickle with one that trickles for ?n= chunks of
50 ms (for abort tests), and /sleep by sleeping ?s= seconds without reading its body. As an authorizer (environ["FCGI_ROLE"] == "AUTHORIZER", as Apache mod_authnz_fcgi
calls it) it lets a request through with 200 and a Variable-REMOTE_USER header when its
X-Token header is "letmein", and answers 403 otherwise. This is how one app serves both roles.
"""

import json
import os
import time

SERVED = [0]  # requests this worker has run

KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH",
    "REMOTE_ADDR", "REMOTE_USER", "HTTP_HOST", "FCGI_ROLE", "FCGI_APACHE_ROLE",
    "SERVER_SOFTWARE", "wsgi.url_scheme",
)


def authorize(environ, start_response):
    if environ.get("HTTP_X_TOKEN") == "letmein":
        start_response("200 OK", [("Variable-REMOTE_USER", "alice"), ("Content-Type", "text/plain")])
        return [b""]
    start_response("403 Forbidden", [("Content-Type", "text/plain")])
    return [b"no entry\n"]


def application(environ, start_response):
    if environ.get("FCGI_ROLE") == "AUTHORIZER":
        return authorize(environ, start_response)
    SERVED[0] += 1
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path.endswith("/sleep"):
        time.sleep(float(query.partition("=")[2] or 1))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept\n"]
    if path.endswith("/trickle"):
        def chunks(n):
            for _ in range(n):
                yield b"t" * 1024
                time.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks(int(query.partition("=")[2] or 20))
    if path.endswith("/slow"):
        def trickle():
            while True:
                yield b"x" * 1024
                time.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return trickle()
    if path.endswith("/big"):
        n = int(environ.get("QUERY_STRING", "n=0").partition("=")[2] or 0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return [b"b" * n]
    body = environ["wsgi.input"].read()
    out = {k: environ[k] for k in KEYS if k in environ}
    out["body_length"] = len(body)
    out["pid"] = os.getpid()
    out["served"] = SERVED[0]
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
