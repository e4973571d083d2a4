"""Fixture: reports how the runner started: sys.path and what the __main__ module holds;
at /spawn, also the exit status of a multiprocessing child started with "spawn"."""

import json
import multiprocessing
import os
import sys


def app(environ, start_response):
    main = sys.modules["__main__"]
    report = {
        "path0": sys.path[0],
        "cwd": os.getcwd(),
        "empty_on_path": "" in sys.path,
        "main_file": getattr(main, "__file__", None),
        "source_kept": hasattr(main, "_runner_source"),
    }
    if environ.get("PATH_INFO") == "/spawn":
        child = multiprocessing.get_context("spawn").Process(target=os.getpid)
        child.start()
        child.join(30)
        report["spawn_exit"] = child.exitcode
    body = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
