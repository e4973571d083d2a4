"""Unit tests of runner.queue_times: the app's wsgi_fcgi.queue_start and queue_wait."""

import unittest

import runner


class QueueTimesTest(unittest.TestCase):
    def test_cases(self):
        cases = [
            # (name, queue_start sent by the gateway, now, want queue_start, want queue_wait)
            ("waited", 1000.25, 1000.5, 1000.25, 0.25),
            ("no wait", 1000.5, 1000.5, 1000.5, 0.0),
            ("clock behind: never negative", 1000.6, 1000.5, 1000.6, 0.0),
            ("absent", None, 1000.5, None, None),
        ]
        for name, sent, now, want_start, want_wait in cases:
            with self.subTest(name):
                environ = {} if sent is None else {"wsgi_fcgi.queue_start": sent}
                runner.queue_times(environ, now)
                self.assertEqual(environ.get("wsgi_fcgi.queue_start"), want_start)
                if want_wait is None:
                    self.assertNotIn("wsgi_fcgi.queue_wait", environ)
                else:
                    self.assertAlmostEqual(environ["wsgi_fcgi.queue_wait"], want_wait, places=9)


if __name__ == "__main__":
    unittest.main()
