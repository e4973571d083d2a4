//go:build linux

// interpreter.go: what an interpreter named for the workers is (Probe): its absolute path,
// implementation and version, and whether the runner supports it.

package pyrunner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MinPython is the oldest Python language version the runner supports (major, minor).
var MinPython = [2]int{3, 8}

// ErrNotPython: the interpreter named runs, but is not a Python that answers the probe.
var ErrNotPython = errors.New("not a Python interpreter")

// Interpreter is a Python interpreter as Probe found it.
type Interpreter struct {
	// Path is absolute; a name without a slash is looked up on PATH. Symlinks are kept: a
	// virtualenv's bin/python finds its packages through the path it is started by.
	Path string
	// Implementation is platform.python_implementation(): "CPython", "PyPy", ...
	Implementation string
	// Version is the Python language version, "3.11.2" (sys.version_info).
	Version string
	// ImplVersion is PyPy's own version ("7.3.11"); empty for CPython.
	ImplVersion string

	major, minor int
}

// Describe is the version as a log line or an error message shows it: "3.11.2", or
// "3.9.16, PyPy 7.3.11" for an implementation other than CPython.
func (i Interpreter) Describe() string {
	if i.Implementation == "CPython" || i.Implementation == "" {
		return i.Version
	}
	s := i.Version + ", " + i.Implementation
	if i.ImplVersion != "" {
		s += " " + i.ImplVersion
	}
	return s
}

// String is the path and the version: "/usr/bin/python3 (3.11.2)".
func (i Interpreter) String() string { return i.Path + " (" + i.Describe() + ")" }

// Supported reports whether the runner runs under this interpreter's Python version.
func (i Interpreter) Supported() bool {
	return i.major > MinPython[0] || i.major == MinPython[0] && i.minor >= MinPython[1]
}

// UnsupportedError: the interpreter is a Python older than MinPython.
type UnsupportedError struct {
	Interpreter Interpreter
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("needs Python %d.%d or later; %s is %s",
		MinPython[0], MinPython[1], e.Interpreter.Path, e.Interpreter.Describe())
}

// probeProgram prints what Probe reads. It must run under every Python a user may name,
// Python 2 included, to tell them their interpreter is too old rather than fail to parse.
const probeProgram = "import sys,platform;v=sys.version_info;p=getattr(sys,'pypy_version_info',None);" +
	"sys.stdout.write('wsgi-fcgi-probe %d.%d.%d %s %s\\n'%(v[0],v[1],v[2],platform.python_implementation()," +
	"'%d.%d.%d'%tuple(p[:3]) if p else '-'))"

// probeTimeout bounds one run of the probe: a Python starts in tens of milliseconds, a cold
// one from a network file system in seconds.
const probeTimeout = 30 * time.Second

// Probe finds python (a path, or a name looked up on PATH), runs it once and returns what it
// is. The error wraps ErrNoPython when it does not exist or cannot be run, wraps ErrNotPython
// when it runs but does not answer as a Python, and is an *UnsupportedError for a Python
// older than MinPython.
func Probe(python string) (Interpreter, error) {
	path, err := resolvePython(python)
	if err != nil {
		return Interpreter{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", probeProgram)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return Interpreter{}, fmt.Errorf("%w: %q: %w", ErrNoPython, path, err)
		}
		return Interpreter{}, fmt.Errorf("%q is %w: it failed to print its version (%v)%s",
			path, ErrNotPython, err, lastLine(stderr.String()))
	}
	in, err := parseProbe(string(out))
	if err != nil {
		return Interpreter{}, fmt.Errorf("%q is %w: %w", path, ErrNotPython, err)
	}
	in.Path = path
	if !in.Supported() {
		return in, &UnsupportedError{Interpreter: in}
	}
	return in, nil
}

// resolvePython returns python's absolute path: as exec.LookPath finds it, made absolute
// (a relative path stays relative to the current directory, as exec would run it).
func resolvePython(python string) (string, error) {
	path, err := exec.LookPath(python)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrNoPython, python)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return "", fmt.Errorf("%w: %q is a directory", ErrNoPython, python)
	}
	return path, nil
}

// parseProbe reads probeProgram's line: "wsgi-fcgi-probe 3.11.2 CPython -".
func parseProbe(out string) (Interpreter, error) {
	f := strings.Fields(out)
	if len(f) != 4 || f[0] != "wsgi-fcgi-probe" {
		return Interpreter{}, fmt.Errorf("it printed %q, not its version", firstLine(out))
	}
	in := Interpreter{Version: f[1], Implementation: f[2]}
	if f[3] != "-" {
		in.ImplVersion = f[3]
	}
	parts := strings.Split(f[1], ".")
	var err1, err2 error
	if len(parts) == 3 {
		in.major, err1 = strconv.Atoi(parts[0])
		in.minor, err2 = strconv.Atoi(parts[1])
	}
	if len(parts) != 3 || err1 != nil || err2 != nil {
		return Interpreter{}, fmt.Errorf("it printed the version %q", f[1])
	}
	return in, nil
}

// firstLine is s up to its first newline, at most 200 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// lastLine is ": " and the last non-empty line of a failed run's stderr (the error Python
// ends a traceback with), or "" when there is none.
func lastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return ": " + firstLine(l)
	}
	return ""
}

// pypyLimits is what works differently under PyPy (docs/operations.md, "Python versions").
const pypyLimits = "under PyPy, with --threads, a cancelled or timed-out request in a thread other than " +
	"the first is stopped at its next body read, write() or response chunk, not interrupted inside a " +
	"blocking call (PyPy cannot take back an exception raised in another thread); --preload runs " +
	"without gc.freeze() (PyPy has none)"

// firstReadyLocked logs, once, what differs under the interpreter the first process named in
// READY: the limits of PyPy.
func (p *Pool) firstReadyLocked() {
	if p.python.implementation == "pypy" {
		p.log.Warn(pypyLimits, "python", p.opts.Python, "python_version", p.python.version)
	}
}
