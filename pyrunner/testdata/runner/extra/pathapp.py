"""Fixture: an app found only through --pythonpath."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"from pythonpath"]
