"""The Flask app the integration tests run behind nginx and wsgi-fcgi.

Run by Debian's /usr/bin/python3 with Debian's python3-flask. Every route exists to make one
property of the gateway observable from an HTTP client; tests/*_test.go say which.

The byte pattern of /download (and of the tests' uploads) is 1 MiB chunks: chunk k is k as
8 little-endian bytes followed by bytes 8..1048575 of bytes(range(256)) * 4096. Each chunk is
different, so a lost, repeated or reordered chunk changes the hash; patternReader in
tests/helpers_test.go produces the same bytes.
"""

import hashlib
import os
import time

from flask import Flask, Response, jsonify, redirect, request, url_for

app = Flask(__name__)
# Let exceptions leave the app, so the runner (not Flask) turns them into a 500.
app.config["PROPAGATE_EXCEPTIONS"] = True

CHUNK = 1 << 20
_BASE = bytes(range(256)) * (CHUNK // 256)

# The environ keys /environ reports (absent keys are left out of its answer).
ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "HTTP_HOST",
    "HTTP_PROXY",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_X_FORWARDED_PROTO",
    "wsgi.url_scheme",
    "wsgi.input_terminated",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
)


def pattern_chunk(k):
    """Return chunk k of the test byte pattern (1 MiB)."""
    return k.to_bytes(8, "little") + _BASE[8:]


def hash_stream(stream):
    """Read stream to its end in 1 MiB reads; return (sha256 hex, length)."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = stream.read(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    return h.hexdigest(), n


@app.route("/query")
def query():
    return jsonify({k: request.args.getlist(k) for k in request.args})


@app.route("/form", methods=["POST"])
def form():
    return jsonify({k: request.form.getlist(k) for k in request.form})


@app.route("/cookies/set")
def cookies_set():
    resp = Response("cookies set\n", mimetype="text/plain")
    resp.set_cookie("flavour", "oatmeal")
    resp.set_cookie("session", "s3cr3t", httponly=True)
    return resp


@app.route("/cookies/read")
def cookies_read():
    return jsonify(dict(request.cookies))


@app.route("/redirect")
def redirect_to_target():
    return redirect(url_for("target", _external=True), code=302)


@app.route("/target")
def target():
    return "target\n"


@app.route("/pid")
def pid():
    return str(os.getpid())


@app.route("/boom")
def boom():
    raise RuntimeError("integration-test-boom")


@app.route("/boom-after-start")
def boom_after_start():
    def gen():
        yield b"partial"
        raise RuntimeError("integration-test-boom-after-start")

    return Response(gen(), mimetype="text/plain")


@app.route("/sleep")
def sleep():
    # pidfile tells the test which worker holds this request: written before sleeping,
    # atomically (rename), so the test never reads half a number.
    pidfile = request.args.get("pidfile")
    if pidfile:
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
    time.sleep(float(request.args.get("s", "1")))
    return "slept\n"


@app.route("/stream/chunks")
def chunks():
    def gen():
        yield b"first\n"
        time.sleep(1.5)
        yield b"second\n"

    return Response(gen(), mimetype="text/plain")


@app.route("/upload", methods=["POST"])
@app.route("/stream/upload", methods=["POST"])
def upload():
    digest, n = hash_stream(request.stream)
    return jsonify(
        sha256=digest,
        length=n,
        content_length=request.environ.get("CONTENT_LENGTH"),
        pid=os.getpid(),
    )


@app.route("/download")
@app.route("/stream/download")
def download():
    size = int(request.args["size"])

    def gen():
        left = size
        k = 0
        while left > 0:
            chunk = pattern_chunk(k)
            if left < len(chunk):
                chunk = chunk[:left]
            left -= len(chunk)
            k += 1
            yield chunk

    return Response(
        gen(),
        mimetype="application/octet-stream",
        headers={"Content-Length": str(size)},
    )


@app.route("/environ", methods=["GET", "POST"])
@app.route("/environ/<path:rest>", methods=["GET", "POST"])
@app.route("/stream/environ", methods=["GET", "POST"])
def environ(rest=None):
    env = request.environ
    out = {k: env[k] for k in ENVIRON_KEYS if k in env}
    out["body_length"] = len(request.get_data())
    return jsonify(out)
