"""Test app for gateway tests: answers with what it sees, as JSON."""
import hashlib
import json


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/badheader":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: injected=1")])
        return [b"should not be seen"]
    if path.startswith("/length/"):
        # /length/<declared>/<body>: a response whose Content-Length may not match its body.
        _, _, declared, body = path.split("/", 3)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
        return [body.encode("latin-1")]
    if path.startswith("/location/"):
        # /location/<status>: a response with a local-path Location header.
        start_response(path.split("/")[2] + " X", [("Location", "/elsewhere?a=1")])
        return [b""]
    try:
        body = environ["wsgi.input"].read()
    except OSError as e:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [("short body: %s" % e).encode()]
    seen = {k: v for k, v in environ.items() if isinstance(v, (str, float))}
    seen["body_len"] = len(body)
    seen["body_sha256"] = hashlib.sha256(body).hexdigest()
    out = json.dumps(seen).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
