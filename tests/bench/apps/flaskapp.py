"""A small Flask app: a JSON document built from the path and the query string, and a POST
route that hashes its body."""
import hashlib

from flask import Flask, jsonify, request

application = Flask(__name__)


@application.route("/json/<name>")
def json_doc(name):
    return jsonify(name=name, q=request.args.get("q"), greeting="Hello, %s!" % name, items=list(range(5)))


@application.route("/sha", methods=["POST"])
def sha():
    data = request.get_data(cache=False)
    return jsonify(length=len(data), sha256=hashlib.sha256(data).hexdigest())
