"""A standard-library WSGI app wrapped in wsgiref.validate.validator, the standard library's
PEP 3333 conformance checker, for tests/conformance_test.go.

The validator checks the environ the gateway builds (types, required keys, no
HTTP_CONTENT_TYPE or HTTP_CONTENT_LENGTH, wsgi.input and wsgi.errors), and how the gateway calls
the app (start_response, the iterable and its close()). Any violation raises AssertionError,
which the runner answers with a 500; a conforming request gets 200 and a body of
"METHOD LENGTH-READ" so the test can tell the body arrived whole.
"""

from wsgiref.validate import validator


def _app(environ, start_response):
    length = environ.get("CONTENT_LENGTH")
    n = int(length) if length else 0
    body = environ["wsgi.input"].read(n) if n else b""  # the validator wants read(size)
    out = ("%s %d\n" % (environ["REQUEST_METHOD"], len(body))).encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


application = validator(_app)
