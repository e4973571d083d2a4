"""Apps wrapped in wsgiref.validate.validator, the standard library's PEP 3333 checker: any
environ key, stream method or start_response rule the runner gets wrong fails the request.
Its warnings (WSGIWarning) are turned into errors too."""
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def _hello(environ, start_response):
    body = b"hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _echo(environ, start_response):
    """Reads the body every way wsgi.input allows, through the validator's input wrapper."""
    stream = environ["wsgi.input"]
    first = stream.readline()
    second = stream.read(4)
    rest = b"".join(stream.readlines())
    environ["wsgi.errors"].write("echo read %d bytes\n" % (len(first) + len(second) + len(rest)))
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return iter([first, second, rest])


def _generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"part%d;" % i


def _write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    return [b"returned"]


def _file(environ, start_response):
    import io
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"from a file wrapper"), 4)


def _error(environ, start_response):
    try:
        raise ValueError("the app failed")
    except ValueError:
        import sys
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"handled"]


hello = validator(_hello)
echo = validator(_echo)
generator = validator(_generator)
write = validator(_write)
file = validator(_file)
error = validator(_error)


def str_body(environ, start_response):
    """Not validated: returns a str chunk, which PEP 3333 forbids (the runner answers 500)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def raises_midway(environ, start_response):
    """Not validated: the generator fails after its first chunk went out."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first"
        raise RuntimeError("midway")

    return gen()
