"""Fixture for runner_test.py: an app that starts threads at import, as a metrics exporter or
a connection-pool reaper does: one with a target, one a Thread subclass, one started with
_thread (which threading does not know by name)."""

import _thread
import threading
import time


def export_loop():
    while True:
        time.sleep(60)


class Reaper(threading.Thread):
    def run(self):
        while True:
            time.sleep(60)


threading.Thread(target=export_loop, name="metrics-exporter", daemon=True).start()
Reaper(name="Reaper", daemon=True).start()
_started = threading.Event()
_thread.start_new_thread(lambda: (_started.set(), time.sleep(3600)), ())
_started.wait()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
