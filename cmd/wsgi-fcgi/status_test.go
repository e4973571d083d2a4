//go:build linux

package main

import "testing"

func TestStatusAndReloadConfig(t *testing.T) {
	runConfigCases(t, []configCase{
		{name: "off by default", check: func(c *Config) bool { return c.StatusPath == "" && c.PoolName == "" && !bool(c.Reload) }},
		{name: "env", env: map[string]string{"WSGI_FCGI_STATUS_PATH": "/fcgi-status", "WSGI_FCGI_POOL_NAME": "site", "WSGI_FCGI_RELOAD": "true"},
			check: func(c *Config) bool { return c.StatusPath == "/fcgi-status" && c.PoolName == "site" && bool(c.Reload) }},
		{name: "flag wins", env: map[string]string{"WSGI_FCGI_STATUS_PATH": "/a", "WSGI_FCGI_RELOAD": "true"},
			args:  []string{"--status-path", "/b", "--reload=false"},
			check: func(c *Config) bool { return c.StatusPath == "/b" && !bool(c.Reload) }},
		{name: "relative status path", args: []string{"--status-path", "status"}, wantErr: "--status-path"},
		{name: "status path is the ping path", args: []string{"--status-path", "/x", "--ping-path", "/x"}, wantErr: "want a path other than --ping-path's"},
	})
}
