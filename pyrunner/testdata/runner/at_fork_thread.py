"""Fixture for runner_test.py: an app that starts its background thread after the fork, in
each worker, with os.register_at_fork (docs/process-management.md, "Preload")."""

import os
import threading
import time


def reap_loop():
    while True:
        time.sleep(60)


def start_reaper():
    threading.Thread(target=reap_loop, name="pool-reaper", daemon=True).start()


os.register_at_fork(after_in_child=start_reaper)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [",".join(sorted(t.name for t in threading.enumerate())).encode()]
