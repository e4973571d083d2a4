"""A standard-library WSGI app whose responses break off or lie about themselves, for
tests/truncation_test.go.

/raise-after-first   yields a first chunk, then raises: the response began and cannot end well
/short-length        declares Content-Length: 100 and sends 6 bytes
/long-length         declares Content-Length: 5 and sends 11 bytes (the gateway sends 5)
/status/NNN          start_response("NNN ...") with an interim status: 100, 101 or 103
/ok                  200 "ok\n"
"""

REASONS = {"100": "Continue", "101": "Switching Protocols", "103": "Early Hints"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.endswith("/raise-after-first"):
        def chunks():
            yield b"first chunk\n" * 100
            raise RuntimeError("cutapp: failed after the first chunk")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    if path.endswith("/short-length"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return [b"short\n"]
    if path.endswith("/long-length"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"long", b" body\n"]
    if "/status/" in path:
        code = path.rsplit("/", 1)[1]
        start_response("%s %s" % (code, REASONS.get(code, "Interim")), [("Content-Type", "text/plain")])
        return [b"interim status with a body\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
