//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

func TestLoadConfig(t *testing.T) {
	runConfigCases(t, []configCase{
		{name: "defaults", check: func(c *Config) bool {
			return c.Listen == "127.0.0.1:9000" && c.Python == "python3" && c.Workers == availableCPUs() && c.MaxBody == 1<<30 && c.LogFormat == "text"
		}},
		{name: "env", env: map[string]string{"WSGI_FCGI_APP": "site.wsgi", "WSGI_FCGI_WORKERS": "3", "WSGI_FCGI_LOG_FORMAT": "json", "WSGI_FCGI_MAX_BODY": "10MiB", "WSGI_FCGI_QUEUE_TIMEOUT": "2s"},
			check: func(c *Config) bool {
				return c.App == "site.wsgi" && c.Workers == 3 && c.LogFormat == "json" && c.MaxBody == 10<<20 && c.QueueTimeout == Duration(2*time.Second)
			}},
		{name: "flag wins over env", env: map[string]string{"WSGI_FCGI_WORKERS": "3", "WSGI_FCGI_LISTEN": "/tmp/a.sock"},
			args:  []string{"--workers", "5", "--listen", "[::1]:9001"},
			check: func(c *Config) bool { return c.Workers == 5 && c.Listen == "[::1]:9001" }},
		{name: "bad env value", env: map[string]string{"WSGI_FCGI_WORKERS": "many"}, wantErr: `WSGI_FCGI_WORKERS="many" (--workers): want a whole number; e.g. WSGI_FCGI_WORKERS=4`},
		{name: "bad forwarded-allow-ips", args: []string{"--forwarded-allow-ips", "10.0.0.0/99"}, wantErr: "forwarded-allow-ips"},
		{name: "forwarded-allow-ips from env", env: map[string]string{"WSGI_FCGI_FORWARDED_ALLOW_IPS": "10.0.0.0/8,::1"},
			check: func(c *Config) bool { return c.ForwardedAllowIPs == "10.0.0.0/8,::1" }},
		{name: "bad access log format", args: []string{"--access-log-format", "common"}, wantErr: "--access-log-format"},
		{name: "relative ping path", args: []string{"--ping-path", "ping"}, wantErr: "--ping-path"},
		{name: "bad size", args: []string{"--max-body", "lots"}, wantErr: `--max-body "lots" (WSGI_FCGI_MAX_BODY): want bytes`},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "chdir must exist", args: []string{"--chdir", "/nonexistent/dir"}, wantErr: "want an existing directory"},
		{name: "stray argument", args: []string{"site.wsgi"}, wantErr: "--app"},
		{name: "unknown flag", args: []string{"--bogus"}, wantErr: "unknown flag --bogus (wsgi-fcgi --help lists the flags)"},
	})
}

// TestSendAheadSetting: --send-ahead and WSGI_FCGI_SEND_AHEAD read true, false or a number of
// requests per worker; the flag alone means true; sched-batch is off unless turned on.
func TestSendAheadSetting(t *testing.T) {
	depth := func(n SendAhead) func(c *Config) bool {
		return func(c *Config) bool { return c.SendAhead == n }
	}
	runConfigCases(t, []configCase{
		{name: "default", check: func(c *Config) bool { return c.SendAhead == pyrunner.DefaultSendAheadDepth && !bool(c.SchedBatch) }},
		{name: "flag alone", args: []string{"--send-ahead"}, check: depth(pyrunner.DefaultSendAheadDepth)},
		{name: "false", args: []string{"--send-ahead=false"}, check: depth(0)},
		{name: "a number", args: []string{"--send-ahead=4"}, check: depth(4)},
		{name: "env off", env: map[string]string{"WSGI_FCGI_SEND_AHEAD": "off"}, check: depth(0)},
		{name: "env number", env: map[string]string{"WSGI_FCGI_SEND_AHEAD": "3"}, check: depth(3)},
		{name: "too many", args: []string{"--send-ahead=17"}, wantErr: `--send-ahead "17" (WSGI_FCGI_SEND_AHEAD): want true (2 per worker), false, or 0 to 16`},
		{name: "not a number", env: map[string]string{"WSGI_FCGI_SEND_AHEAD": "lots"}, wantErr: `WSGI_FCGI_SEND_AHEAD="lots" (--send-ahead)`},
		{name: "sched-batch on", args: []string{"--sched-batch"}, check: func(c *Config) bool { return bool(c.SchedBatch) }},
		{name: "sched-batch on from env", env: map[string]string{"WSGI_FCGI_SCHED_BATCH": "true"}, check: func(c *Config) bool { return bool(c.SchedBatch) }},
		{name: "sched-batch flag wins over env", env: map[string]string{"WSGI_FCGI_SCHED_BATCH": "true"}, args: []string{"--sched-batch=false"}, check: func(c *Config) bool { return !bool(c.SchedBatch) }},
	})
}

// TestPrioritySetting: --priority and WSGI_FCGI_PRIORITY read a nice value from -20 to 19;
// unset by default, and an empty value unsets it.
func TestPrioritySetting(t *testing.T) {
	nice := func(n int) func(c *Config) bool {
		return func(c *Config) bool { return c.Priority == Priority{Nice: n, Given: true} }
	}
	unset := func(c *Config) bool { return c.Priority == Priority{} }
	runConfigCases(t, []configCase{
		{name: "default", check: unset},
		{name: "flag", args: []string{"--priority=-10"}, check: nice(-10)},
		{name: "zero is a value", args: []string{"--priority", "0"}, check: nice(0)},
		{name: "env", env: map[string]string{"WSGI_FCGI_PRIORITY": "5"}, check: nice(5)},
		{name: "flag wins over env", env: map[string]string{"WSGI_FCGI_PRIORITY": "5"}, args: []string{"--priority=-3"}, check: nice(-3)},
		{name: "empty flag unsets env", env: map[string]string{"WSGI_FCGI_PRIORITY": "5"}, args: []string{"--priority="}, check: unset},
		{name: "lowest", args: []string{"--priority=-20"}, check: nice(-20)},
		{name: "highest", args: []string{"--priority=19"}, check: nice(19)},
		{name: "below range", args: []string{"--priority=-21"}, wantErr: "want a nice value from -20 to 19"},
		{name: "above range", args: []string{"--priority=20"}, wantErr: "want a nice value from -20 to 19"},
		{name: "not a number", env: map[string]string{"WSGI_FCGI_PRIORITY": "high"}, wantErr: `WSGI_FCGI_PRIORITY="high" (--priority)`},
	})
}

// configCase is one row of a table of command lines and environments for loadConfig: check
// judges the Config it returns, or wantErr is a piece of its error.
type configCase struct {
	name    string
	env     map[string]string
	args    []string
	check   func(c *Config) bool
	wantErr string
}

// runConfigCases runs each case as a subtest.
func runConfigCases(t *testing.T, cases []configCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearSettingsEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := loadConfig(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

// TestCheckConfigFlag: -t is --check-config, as nginx -t; other commands' -t is not.
func TestCheckConfigFlag(t *testing.T) {
	for _, args := range [][]string{{"-t"}, {"--check-config"}, {"--check-config=yes"}} {
		c, err := configure(t, args, nil)
		if err != nil || !c.checkConfig {
			t.Errorf("%v: check-config %v, error %v", args, c != nil && bool(c.checkConfig), err)
		}
	}
	if _, err := configure(t, nil, map[string]string{"WSGI_FCGI_CHECK_CONFIG": "1"}); err == nil {
		t.Error("WSGI_FCGI_CHECK_CONFIG is read: a container would never start")
	}
	if _, err := parseArgs([]string{"-t"}, []setting{{name: "timeout", value: new(Duration)}}, "wsgi-fcgi probe", nil); err == nil {
		t.Error("-t is read where no --check-config exists")
	}
}
