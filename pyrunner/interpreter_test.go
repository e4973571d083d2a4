//go:build linux

package pyrunner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePython writes an executable shell script named name into dir that prints out.
func fakePython(t *testing.T, dir, name, script string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tc := range []struct {
		name, python string
		script       string // the fake interpreter's body; none: python is used as given
		want         string // Interpreter.String() on success
		wantErr      error  // errors.Is; nil with unsupported set means *UnsupportedError
		unsupported  string // the *UnsupportedError's message
	}{
		{name: "cpython", python: "py311", script: "echo 'wsgi-fcgi-probe 3.11.2 CPython -'",
			want: filepath.Join(dir, "py311") + " (3.11.2)"},
		{name: "oldest supported", python: "py38", script: "echo 'wsgi-fcgi-probe 3.8.0 CPython -'",
			want: filepath.Join(dir, "py38") + " (3.8.0)"},
		{name: "pypy", python: "pypy3", script: "echo 'wsgi-fcgi-probe 3.9.16 PyPy 7.3.11'",
			want: filepath.Join(dir, "pypy3") + " (3.9.16, PyPy 7.3.11)"},
		{name: "3.7", python: "py37", script: "echo 'wsgi-fcgi-probe 3.7.16 CPython -'",
			unsupported: "needs Python 3.8 or later; " + filepath.Join(dir, "py37") + " is 3.7.16"},
		{name: "2.7", python: "py27", script: "echo 'wsgi-fcgi-probe 2.7.18 CPython -'",
			unsupported: "needs Python 3.8 or later; " + filepath.Join(dir, "py27") + " is 2.7.18"},
		{name: "missing", python: "/nonexistent/python3", wantErr: ErrNoPython},
		{name: "missing on PATH", python: "no-such-python-here", wantErr: ErrNoPython},
		{name: "a directory", python: dir, wantErr: ErrNoPython},
		{name: "prints nothing", python: "silent", script: "exit 0", wantErr: ErrNotPython},
		{name: "prints something else", python: "chatty", script: "echo hello", wantErr: ErrNotPython},
		{name: "fails", python: "failing", script: "echo 'SyntaxError: invalid syntax' >&2; exit 1", wantErr: ErrNotPython},
		{name: "bad version", python: "odd", script: "echo 'wsgi-fcgi-probe 3.x.1 CPython -'", wantErr: ErrNotPython},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.script != "" {
				fakePython(t, dir, tc.python, tc.script)
			}
			in, err := Probe(tc.python)
			var ue *UnsupportedError
			switch {
			case tc.unsupported != "":
				if !errors.As(err, &ue) || err.Error() != tc.unsupported {
					t.Fatalf("Probe(%q) = %v, want *UnsupportedError %q", tc.python, err, tc.unsupported)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || errors.As(err, &ue) {
					t.Fatalf("Probe(%q) = %v, want %v", tc.python, err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("Probe(%q): %v", tc.python, err)
			case in.String() != tc.want || !filepath.IsAbs(in.Path):
				t.Fatalf("Probe(%q) = %q (path %q), want %q", tc.python, in.String(), in.Path, tc.want)
			}
		})
	}
}

// TestProbeRealPythons runs the probe under the interpreters this machine has: its program
// must work under Python 2 too, so that a too old Python is named rather than failing.
func TestProbeRealPythons(t *testing.T) {
	home, _ := os.UserHomeDir()
	pythons, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", "*", "bin", "python"))
	pythons = append(pythons, "/usr/bin/python3", "/usr/bin/pypy3")
	ran := 0
	for _, python := range pythons {
		if _, err := os.Stat(python); err != nil {
			continue
		}
		ran++
		t.Run(python, func(t *testing.T) {
			in, err := Probe(python)
			var ue *UnsupportedError
			if err != nil && !errors.As(err, &ue) {
				t.Fatalf("Probe: %v", err)
			}
			if ue != nil {
				in = ue.Interpreter
			}
			if in.Path != python || (strings.Contains(python, "pypy") != (in.Implementation == "PyPy")) {
				t.Fatalf("Probe(%q) = %+v", python, in)
			}
			if strings.Contains(python, "/versions/") && !strings.Contains(python, "/versions/"+in.Version+"/") {
				t.Errorf("Probe(%q) says version %s", python, in.Version)
			}
			if old := strings.HasPrefix(in.Version, "2.") || strings.HasPrefix(in.Version, "3.6.") || strings.HasPrefix(in.Version, "3.7."); old != (ue != nil) {
				t.Errorf("Probe(%q) = %s, error %v", python, in, err)
			}
			t.Logf("%s: error %v", in, err)
		})
	}
	if ran == 0 {
		t.Skip("no Python found under ~/.pyenv/versions or /usr/bin")
	}
}
