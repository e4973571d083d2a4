"""A standard-library WSGI app whose responses break off or lie about themselves, for
tests/truncation_test.go.

/raise-after-first   yields a first chunk of 40 KB (more than the gateway buffers, so it leaves at
                     once), then raises: the response began and cannot end well
/raise-after-first-with-length
                     the same with a Content-Length of 100000
/short-length        declares Content-Length: 100 and sends 6 bytes
/long-length         declares Content-Length: 5 and sends 11 bytes (the gateway sends 5)
/status/NNN          start_response("NNN ...") with an interim status: 100, 101 or 103
/ok                  200 "ok\n"
"""

REASONS = {"100": "Continue", "101": "Switching Protocols", "103": "Early Hints"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if "/raise-after-first" in path:
        def chunks():
            yield b"first chunk\n" * 3400
            raise RuntimeError("cutapp: failed after the first chunk")
        headers = [("Content-Type", "text/plain")]
        if path.endswith("-with-length"):
            headers.append(("Content-Length", "100000"))
        start_response("200 OK", headers)
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
