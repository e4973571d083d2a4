"""The demo app wsgi-fcgi serves when no --app is given: a page showing the request as the
app sees it (the WSGI environ), a streamed response and a form that posts back."""

import html
import os
import time

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wsgi-fcgi demo</title></head>
<body>
<h1>wsgi-fcgi is serving this page</h1>
<p>Python worker pid {pid}; request {count} served by this worker.</p>
<p>Run your own app with <code>wsgi-fcgi --app mypackage.wsgi:application --chdir /srv/site</code>.</p>
<form method="post" action="{script}/echo"><input name="text" value="hello">
<button>POST it</button></form>
<p><a href="{script}/stream">a streamed response</a></p>
<h2>environ</h2>
<table>{rows}</table>
</body></html>
"""

_count = 0


def application(environ, start_response):
    global _count
    _count += 1
    path = environ.get("PATH_INFO", "")
    script = html.escape(environ.get("SCRIPT_NAME", ""))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return _stream()
    if path == "/echo":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"you posted: " + body + b"\n"]
    rows = "".join(
        "<tr><td>%s</td><td>%s</td></tr>" % (html.escape(k), html.escape(repr(v)))
        for k, v in sorted(environ.items())
    )
    body = PAGE.format(pid=os.getpid(), count=_count, script=script, rows=rows).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _stream():
    for i in range(5):
        yield ("line %d of 5, %.3f\n" % (i + 1, time.time())).encode()
        time.sleep(0.3)
