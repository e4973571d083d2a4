"""The smallest WSGI app: 13 bytes of text. Measures the server, not the app."""

BODY = b"Hello, world!"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]
