package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestStatusAndReloadConfig(t *testing.T) {
	runConfigCases(t, []configCase{
		{name: "off by default", check: func(c *Config) bool { return c.StatusPath == "" && c.PoolName == "" && !c.Reload }},
		{name: "env", env: map[string]string{"WSGI_FCGI_STATUS_PATH": "/fcgi-status", "WSGI_FCGI_POOL_NAME": "site", "WSGI_FCGI_RELOAD": "true"},
			check: func(c *Config) bool { return c.StatusPath == "/fcgi-status" && c.PoolName == "site" && c.Reload }},
		{name: "flag wins", env: map[string]string{"WSGI_FCGI_STATUS_PATH": "/a", "WSGI_FCGI_RELOAD": "true"},
			args:  []string{"--status-path", "/b", "--reload=false"},
			check: func(c *Config) bool { return c.StatusPath == "/b" && !c.Reload }},
		{name: "relative status path", args: []string{"--status-path", "status"}, wantErr: "--status-path"},
		{name: "status path is the ping path", args: []string{"--status-path", "/x", "--ping-path", "/x"}, wantErr: "both"},
	})
}

func TestWatchRoots(t *testing.T) {
	wd, _ := os.Getwd()
	if got := watchRoots("/srv/site", []string{"/srv/lib", "rel"}); !slices.Equal(got, []string{"/srv/site", "/srv/lib", filepath.Join(wd, "rel")}) {
		t.Errorf("with --chdir: %v", got)
	}
	if got := watchRoots("", nil); !slices.Equal(got, []string{wd}) {
		t.Errorf("without --chdir (the runner imports from the working directory): %v", got)
	}
}
