"""Flask app for the mount tests: reports the URLs it builds and the path it was given."""
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/links")
def links():
    return jsonify(
        external=url_for("links", _external=True),
        static=url_for("static", filename="site.css"),
        script_name=request.environ["SCRIPT_NAME"],
        path_info=request.environ["PATH_INFO"],
        authorization=request.environ.get("HTTP_AUTHORIZATION"),
    )


@app.route("/go")
def go():
    return redirect(url_for("links", _external=True))


@app.route("/p/<path:rest>")
def path_echo(rest):
    # PEP 3333: PATH_INFO is the URL's bytes, decoded as latin-1.
    return jsonify(path_info=request.environ["PATH_INFO"], rest=rest)


@app.route("/echo", methods=["POST"])
def echo():
    # A form posted to the app: the body reaches the framework's parser whole.
    return jsonify(a_length=len(request.form.get("a", "")), content_length=request.content_length)
