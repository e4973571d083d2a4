//go:build linux

package main

import (
	"testing"
	"time"
)

// TestProcessManagementConfig: the process-management settings, from the environment and
// from flags, and the values refused.
func TestProcessManagementConfig(t *testing.T) {
	runConfigCases(t, []configCase{
		{name: "defaults", check: func(c *Config) bool {
			return c.PM == "static" && c.Threads == 1 && !bool(c.Preload) && c.Timeout == 0 && c.SlowlogTimeout == 0 &&
				c.MaxRequests == 0 && c.MaxRSS == 0 && c.PMIdleTimeout == Duration(10*time.Second)
		}},
		{name: "env", env: map[string]string{
			"WSGI_FCGI_PM": "ondemand", "WSGI_FCGI_PM_IDLE_TIMEOUT": "30s", "WSGI_FCGI_THREADS": "4",
			"WSGI_FCGI_PRELOAD": "true", "WSGI_FCGI_TIMEOUT": "20s", "WSGI_FCGI_SLOWLOG_TIMEOUT": "5s",
			"WSGI_FCGI_MAX_REQUESTS": "1000", "WSGI_FCGI_MAX_REQUESTS_JITTER": "50", "WSGI_FCGI_MAX_RSS": "512MiB",
		}, check: func(c *Config) bool {
			return c.PM == "ondemand" && c.PMIdleTimeout == Duration(30*time.Second) && c.Threads == 4 && bool(c.Preload) &&
				c.Timeout == Duration(20*time.Second) && c.SlowlogTimeout == Duration(5*time.Second) && c.MaxRequests == 1000 &&
				c.MaxRequestsJitter == 50 && c.MaxRSS == 512<<20
		}},
		{name: "dynamic flags", env: map[string]string{"WSGI_FCGI_PM": "static"},
			args: []string{"--pm", "dynamic", "--pm-start", "2", "--pm-min-spare", "1", "--pm-max-spare", "3", "--workers", "8"},
			check: func(c *Config) bool {
				return c.PM == "dynamic" && c.PMStart == 2 && c.PMMinSpare == 1 && c.PMMaxSpare == 3 && c.Workers == 8
			}},
		{name: "unknown pm", args: []string{"--pm", "adaptive"}, wantErr: "--pm"},
		{name: "min spare above max spare", args: []string{"--pm-min-spare", "4", "--pm-max-spare", "2"}, wantErr: "--pm-min-spare"},
		{name: "negative max requests", args: []string{"--max-requests", "-1"}, wantErr: "--max-requests"},
		{name: "no threads", args: []string{"--threads", "0"}, wantErr: "--threads"},
		{name: "too many threads", args: []string{"--threads", "1000"}, wantErr: "--threads"},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, wantErr: "--timeout"},
		{name: "bad max rss", args: []string{"--max-rss", "huge"}, wantErr: `--max-rss "huge"`},
	})
}
