package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "wsgi-fcgi (devel)"},
		{"go run", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "wsgi-fcgi (devel)"},
		{"go install @v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "wsgi-fcgi v1.2.3"},
		{"go build in a clean checkout", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20260101120000-0123456789ab"},
			Settings: settings("vcs", "git", "vcs.revision", "0123456789abcdef", "vcs.modified", "false"),
		}, "wsgi-fcgi v0.0.0-20260101120000-0123456789ab (revision 0123456789abcdef)"},
		{"go build with changes", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"},
			Settings: settings("vcs.revision", "0123456789abcdef", "vcs.modified", "true"),
		}, "wsgi-fcgi v0.0.0-20260101120000-0123456789ab+dirty (revision 0123456789abcdef, modified)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatVersion(moduleVersion(tc.bi), tc.bi); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionFlag: --version prints one line with the version read from the build (a test
// binary's main module is "(devel)" or a pseudo-version, never empty) and exits 0.
func TestVersionFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit status %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "wsgi-fcgi "+version) || strings.Count(out, "\n") != 1 || version == "" {
		t.Errorf("--version printed %q (version %q)", out, version)
	}
}
