"""PEP 3333 compliance of the runner, checked by the standard library's own validator.

Each app in testdata/runner/validated.py is wrapped in wsgiref.validate.validator, which asserts
on every environ key and type, the wsgi.input / wsgi.errors methods, start_response's rules and
the iterator protocol; its warnings are errors too. A request that breaks any rule ends in a
500 from the runner, so each test asserts the app's own answer. Run with runner_test.py by
`python3 -m unittest discover -s pyrunner -p '*_test.py'` (pyrunner/runner_py_test.go does).
"""
import unittest

from runner_test import KiB, Runner


class ValidatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.runners = {}

    @classmethod
    def tearDownClass(cls):
        for r in cls.runners.values():
            r.close()

    def runner(self, app):
        if app not in self.runners:
            r = Runner("validated:" + app)
            r.ready()
            self.runners[app] = r
        return self.runners[app]

    def check(self, app, path="/x", body=b"", want_status="200 OK", want_body=None, **kw):
        result = self.runner(app).request(path, body=body, **kw)
        self.assertEqual(result.status, want_status, "stderr: %s" % self.runner(app).stderr)
        if want_body is not None:
            self.assertEqual(result.body, want_body)
        return result

    def test_environ_and_response(self):
        self.check("hello", "/caf\u00e9", want_body=b"hello /caf\xe9")

    def test_input_every_way(self):
        body = b"line one\nABCDrest 1\nrest 2\n" + b"x" * (200 * KiB)
        # Inline part, then READ/BODY exchanges: the validator wraps wsgi.input throughout.
        self.check("echo", body=body, inline=10, want_body=body)

    def test_generator(self):
        self.check("generator", want_body=b"part0;part1;part2;")

    def test_write_callable(self):
        self.check("write", want_body=b"written;returned")

    def test_file_wrapper(self):
        self.check("file", want_body=b"from a file wrapper")

    def test_exc_info_before_headers(self):
        self.check("error", want_status="500 Internal Server Error", want_body=b"handled")

    def test_str_body_is_an_error(self):
        result = self.check("str_body", want_status="500 Internal Server Error")
        self.assertNotIn(b"not bytes", result.body)

    def test_generator_raising_midway_cuts_the_response(self):
        result = self.runner("raises_midway").request("/x")
        self.assertEqual(result.status, "200 OK")
        self.assertEqual(result.body, b"first")
        self.assertTrue(result.error, "the response must end with END|ERROR, not as if complete")
        # The worker goes on serving.
        self.assertEqual(self.runner("raises_midway").request("/x").body, b"first")


if __name__ == "__main__":
    unittest.main()
