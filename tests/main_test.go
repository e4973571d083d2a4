//go:build integration

// Package tests runs the wsgi-fcgi binary end to end: real web servers from the distribution
// (nginx so far) in front, real WSGI apps (tests/apps, run by Debian's /usr/bin/python3) behind.
//
// Run with tests/run.sh, or by hand:
//
//	go test -tags integration -count=1 -v ./tests/...
//
// A test skips when a tool it needs (nginx, /usr/bin/python3 with Flask, curl) is absent,
// unless CI=1 or REQUIRE_INTEGRATION=1 is set: then a missing tool is a failure.
// Every process a test starts is stopped by that test's cleanup, by pid.
package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// gatewayBin is the wsgi-fcgi binary TestMain builds once for all tests.
var gatewayBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithGateway(m, repoRoot(), "tests", &gatewayBin))
}

// repoRoot is the repository root: go test runs a package's tests in its directory.
func repoRoot() string {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return root
}
