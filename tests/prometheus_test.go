//go:build integration

// deploy/prometheus/: the scrape config and the alert rules pass promtool's checks, and the
// rules' own unit tests pass.

package tests

import (
	"os/exec"
	"path/filepath"
	"testing"
)

func TestPrometheusDeploy(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		missingTool(t, "promtool (Debian package prometheus): %v", err)
	}
	dir := filepath.Join(repoRoot(), "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "wsgi-fcgi.rules.yml"},
		{"test", "rules", "wsgi-fcgi.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
