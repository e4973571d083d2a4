//go:build linux

package pyrunner

import (
	"os"
	"os/exec"
	"testing"
)

// TestRunnerUnittests runs runner.py's own unittest suites (runner_test.py, and
// compliance_test.py with wsgiref.validate), which drive the real runner over its two pipes.
// RUNNER_PYTHON picks the interpreter; by default Debian's /usr/bin/python3, else python3.
func TestRunnerUnittests(t *testing.T) {
	python := os.Getenv("RUNNER_PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
		if _, err := os.Stat(python); err != nil {
			python = "python3"
		}
	}
	if _, err := exec.LookPath(python); err != nil {
		t.Skipf("%s not found", python)
	}
	cmd := exec.Command(python, "-m", "unittest", "discover", "-s", ".", "-p", "*_test.py")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -m unittest: %v\n%s", python, err, out)
	}
	t.Logf("%s", out)
}
