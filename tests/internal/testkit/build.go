package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithGateway builds ./cmd/wsgi-fcgi of the repository at root into a temporary directory,
// sets *bin to its path, runs the tests and removes the binary: a TestMain's body. name
// prefixes its error messages.
func RunWithGateway(m *testing.M, root, name string, bin *string) int {
	dir, err := os.MkdirTemp("", "wsgi-fcgi-"+name+"-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: create temp dir: %v\n", name, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "wsgi-fcgi")
	build := exec.Command("go", "build", "-o", *bin, "./cmd/wsgi-fcgi")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: go build ./cmd/wsgi-fcgi: %v\n%s", name, err, out)
		return 1
	}
	return m.Run()
}
