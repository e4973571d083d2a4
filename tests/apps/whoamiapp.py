"""A standard-library WSGI app that says who its worker runs as, for the privilege tests.

It answers every path with a JSON object: the worker's pid, uid, euid, gid, egid and
supplementary groups, and the HOME, USER and NOTIFY_SOCKET of its environment (null when
unset).
"""

import json
import os


def application(environ, start_response):
    body = json.dumps({
        "pid": os.getpid(),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": sorted(os.getgroups()),
        "home": os.environ.get("HOME"),
        "user": os.environ.get("USER"),
        "notify_socket": os.environ.get("NOTIFY_SOCKET"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
