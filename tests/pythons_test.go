//go:build integration

// Every Python the gateway supports, end to end: the same stdlib app (wrapped in
// wsgiref.validate) served under each CPython 3.8 to 3.13 under ~/.pyenv/versions, Debian's
// python3 and Debian's pypy3, through raw FastCGI, with --threads 2 and with --preload; and
// the Pythons it does not support (2.7, 3.6, 3.7), which must end it with exit 2 and one line
// before it listens. An interpreter the machine lacks is a subtest that says it skipped.

package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// pythonsApp is the app every interpreter serves; standard library only, and every answer
// passes wsgiref.validate's checks of the environ, start_response and the iterable.
const pythonsApp = `import hashlib, os, sys, threading
from wsgiref.validate import validator

BARRIER = threading.Barrier(2, timeout=20)
CHUNK = b"x" * (100 << 10)


def stream():
    for i in range(5):
        yield b"%d:" % i + CHUNK


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream()
    if path == "/upload":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        out = ("%d %s" % (len(body), hashlib.sha256(body).hexdigest())).encode()
    elif path == "/barrier":
        # Answers only when a second request is in the app at the same time: --threads 2.
        BARRIER.wait()
        out = threading.current_thread().name.encode()
    else:
        out = ("%s %d.%d.%d %s" % ((sys.implementation.name,) + tuple(sys.version_info[:3])
                                   + (environ["REQUEST_METHOD"],))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


application = validator(app)
`

// pythonCase is one interpreter of the matrix.
type pythonCase struct {
	name string // the subtest: "cpython-3.8", "debian-python3", "pypy3"
	path string // "" when the machine does not have it
	why  string // how to get it, for the skip line
	// required: a missing one fails the test when integration tests are required
	// (tests/run.sh installs it); pyenv's interpreters are the machine's, not installed here.
	required bool
}

// pyenvPython is the python3 of pyenv's newest CPython v (e.g. "3.8") under
// ~/.pyenv/versions, as tests/run.sh finds them, or "".
func pyenvPython(v string) string {
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", v+".*", "bin", "python3"))
	if len(found) == 0 {
		return ""
	}
	return found[len(found)-1]
}

// supportedPythons is the matrix the serving test runs.
func supportedPythons() []pythonCase {
	var cs []pythonCase
	for _, v := range []string{"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		cs = append(cs, pythonCase{name: "cpython-" + v, path: pyenvPython(v), why: "no CPython " + v + " under ~/.pyenv/versions"})
	}
	debian := pythonCase{name: "debian-python3", why: systemPython + " not found (Debian package python3)", required: true}
	if _, err := os.Stat(systemPython); err == nil {
		debian.path = systemPython
	}
	pypy := pythonCase{name: "pypy3", why: "pypy3 not found (Debian package pypy3)", required: true}
	if p, err := exec.LookPath("pypy3"); err == nil {
		pypy.path = p
	}
	return append(cs, debian, pypy)
}

// need skips the subtest (or fails it, for a required one) when the interpreter is absent.
func (c pythonCase) need(t *testing.T) {
	t.Helper()
	switch {
	case c.path != "":
	case c.required:
		missingTool(t, "%s", c.why)
	default:
		t.Skipf("%s: skipped", c.why)
	}
}

// pythonVersion is what the interpreter says of itself: "3.11.2" and "cpython".
func pythonVersion(t *testing.T, python string) (version, impl string) {
	t.Helper()
	out, err := exec.Command(python, "-c",
		"import sys; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name)").Output()
	if err != nil {
		t.Fatalf("%s: %v", python, err)
	}
	version, impl, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	return version, impl
}

func TestPythons(t *testing.T) {
	dir := shortTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "pythonsapp.py"), []byte(pythonsApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range supportedPythons() {
		t.Run(c.name, func(t *testing.T) {
			c.need(t)
			version, impl := pythonVersion(t, c.path)
			t.Logf("%s: %s %s", c.path, impl, version)
			for _, mode := range []struct {
				name string
				args []string
			}{
				{"threads-2", []string{"--workers", "1", "--threads", "2"}},
				{"preload", []string{"--workers", "2", "--preload"}},
			} {
				t.Run(mode.name, func(t *testing.T) {
					g := startGateway(t, gatewayConfig{
						app:  "pythonsapp",
						args: append([]string{"--chdir", dir, "--python", c.path}, mode.args...),
					})
					// The ready line names the interpreter and its version.
					g.waitLog(t, fmt.Sprintf("python=%s python_version=%s implementation=%s", c.path, version, impl), 5*time.Second)
					servePythons(t, g, impl+" "+version, mode.name == "threads-2")
				})
			}
		})
	}
}

// servePythons sends the matrix's requests; want is the app's "impl version" answer.
func servePythons(t *testing.T, g *gateway, want string, threads bool) {
	t.Helper()
	for _, method := range []string{"GET", "POST"} {
		var body []byte
		if method == "POST" {
			body = []byte("a=1&b=2")
		}
		if r := g.fcgiDo(method, "/", body); r.err != nil || r.status != 200 || r.body != want+" "+method {
			t.Errorf("%s /: %d %v %q, want 200 %q", method, r.status, r.err, r.body, want+" "+method)
		}
	}
	upload := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	sum := sha256.Sum256(upload)
	wantUpload := fmt.Sprintf("%d %s", len(upload), hex.EncodeToString(sum[:]))
	if r := g.fcgiDo("POST", "/upload", upload); r.err != nil || r.status != 200 || r.body != wantUpload {
		t.Errorf("POST /upload (%d bytes): %d %v %q, want %q", len(upload), r.status, r.err, r.body, wantUpload)
	}
	var wantStream strings.Builder
	for i := range 5 {
		fmt.Fprintf(&wantStream, "%d:%s", i, strings.Repeat("x", 100<<10))
	}
	if r := g.fcgiDo("GET", "/stream", nil); r.err != nil || r.status != 200 || r.body != wantStream.String() {
		t.Errorf("GET /stream: %d %v, %d bytes, want 200 and %d bytes", r.status, r.err, len(r.body), wantStream.Len())
	}
	if !threads {
		return
	}
	// Two requests in the one worker's two threads at once: each waits for the other.
	var wg sync.WaitGroup
	results := make([]fcgiResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.fcgiDo("GET", "/barrier", nil)
		}()
	}
	wg.Wait()
	if a, b := results[0], results[1]; a.status != 200 || b.status != 200 || a.body == b.body {
		t.Errorf("two requests at once with --threads 2: %d %v %q and %d %v %q, want 200 from two threads",
			a.status, a.err, a.body, b.status, b.err, b.body)
	}
}

// fcgiDo sends one request to the gateway as a web server would, with body as its stdin.
func (g *gateway) fcgiDo(method, path string, body []byte) fcgiResult {
	start := time.Now()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(g.network, g.address))()
	if err != nil {
		return fcgiResult{err: err}
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	for k, v := range map[string]string{
		"REQUEST_METHOD": method, "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
		"SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": "",
		"REQUEST_URI": path, "SCRIPT_NAME": "", "PATH_INFO": path,
	} {
		req.Params[k] = v
	}
	if body != nil {
		req.Params["CONTENT_LENGTH"] = strconv.Itoa(len(body))
		req.Params["CONTENT_TYPE"] = "application/octet-stream"
		req.Stdin = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fcgiResult{err: err}
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		return fcgiResult{err: err}
	}
	return fcgiResult{status: rec.Code, body: rec.Body.String(), header: rec.Header(), elapsed: time.Since(start)}
}

// TestUnsupportedPythons: a Python older than 3.8, or a --python that is no Python, ends the
// gateway with exit 2 and one line, before anything listens.
func TestUnsupportedPythons(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		missingTool(t, "%s: %v", systemPython, err)
	}
	type row struct {
		name, python, want string
	}
	var rows []row
	for _, v := range []string{"2.7", "3.6", "3.7"} {
		home, _ := os.UserHomeDir()
		found, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", v+".*", "bin", "python"))
		if len(found) == 0 {
			rows = append(rows, row{name: "cpython-" + v})
			continue
		}
		py := found[len(found)-1]
		full := strings.TrimSuffix(strings.TrimPrefix(py, filepath.Join(home, ".pyenv", "versions")+"/"), "/bin/python")
		rows = append(rows, row{"cpython-" + v, py, fmt.Sprintf("wsgi-fcgi needs Python 3.8 or later; %s is %s", py, full)})
	}
	rows = append(rows,
		row{"not a python", "/bin/true", `wsgi-fcgi: --python "/bin/true" (WSGI_FCGI_PYTHON): want a Python 3.8 or later interpreter ("/bin/true" is not a Python interpreter: it printed "", not its version); e.g. --python /srv/venv/bin/python`},
		row{"missing", "/nonexistent/python3", `wsgi-fcgi: --python "/nonexistent/python3" (WSGI_FCGI_PYTHON): want a Python interpreter: a path to one, or a name found on PATH (no such file or directory); e.g. --python /srv/venv/bin/python`},
	)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			if r.python == "" {
				t.Skipf("no CPython %s under ~/.pyenv/versions: skipped", strings.TrimPrefix(r.name, "cpython-"))
			}
			line, code, sock := runUntilExit(t, []string{"--python", r.python})
			if code != 2 || line != r.want {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, line, r.want)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("socket %s was created", sock)
			}
		})
	}
}

// TestImportErrorNamesPython: the line for an app that cannot be imported names the
// interpreter that tried, and its version.
func TestImportErrorNamesPython(t *testing.T) {
	for _, c := range supportedPythons() {
		if c.name != "debian-python3" && c.name != "pypy3" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			c.need(t)
			version, impl := pythonVersion(t, c.path)
			label := version
			if impl == "pypy" {
				out, err := exec.Command(c.path, "-c", "import sys; print('%d.%d.%d' % sys.pypy_version_info[:3])").Output()
				if err != nil {
					t.Fatal(err)
				}
				label += ", PyPy " + strings.TrimSpace(string(out))
			}
			want := fmt.Sprintf(`wsgi-fcgi: cannot import "nosuchmodule" with %s (%s): ModuleNotFoundError: No module named 'nosuchmodule'`, c.path, label)
			line, code, _ := runUntilExit(t, []string{"--python", c.path, "--app", "nosuchmodule"})
			if code != 2 || line != want {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, line, want)
			}
		})
	}
}

// runUntilExit runs the gateway with args replacing the defaults of startupArgs and returns
// its stderr (which must be one line), its exit status and the socket it was to listen on.
func runUntilExit(t *testing.T, args []string) (line string, code int, sock string) {
	t.Helper()
	sock = filepath.Join(shortTempDir(t), "gw.sock")
	ctx, cancel := context.WithTimeout(context.Background(), startupErrorBy)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBin, startupArgs(sock, args, nil)...)
	cmd.Env = gatewayEnv(nil)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("still running after %v (killed); stderr:\n%s", startupErrorBy, &stderr)
	case err == nil:
		return strings.TrimSpace(withoutRootWarning(stderr.String())), 0, sock
	case !errors.As(err, &exit):
		t.Fatalf("run: %v", err)
	}
	if lines := nonEmptyLines(withoutRootWarning(stderr.String())); len(lines) != 1 {
		t.Errorf("stderr has %d lines, want 1:\n%s", len(lines), &stderr)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Errorf("something listens on %s", sock)
	}
	return strings.TrimSpace(withoutRootWarning(stderr.String())), exit.ExitCode(), sock
}
