//go:build linux

package main

import (
	"net"
	"strings"
	"testing"
)

// TestStartWarnings: the warnings at start, for settings that do nothing in the chosen mode,
// settings changed to fit, and risky ones; and none for a plain setup.
func TestStartWarnings(t *testing.T) {
	local := []net.Addr{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000}}
	unixSock := []net.Addr{&net.UnixAddr{Name: "/run/gw.sock", Net: "unix"}}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		st   startState
		want []string // each in one warning; nil: no warning at all
	}{
		{name: "plain", args: []string{"--workers", "4"}, st: startState{listeners: local, euid: 1000}},
		{name: "pm flags under static", args: []string{"--pm-start", "2", "--pm-idle-timeout", "5"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-start does nothing under --pm static: it is for --pm dynamic", "--pm-idle-timeout does nothing under --pm static: it is for --pm ondemand"}},
		{name: "pm variable under static", env: map[string]string{"WSGI_FCGI_PM_MAX_SPARE": "3"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-max-spare does nothing under --pm static"}},
		{name: "idle timeout under dynamic", args: []string{"--pm", "dynamic", "--workers", "4", "--pm-idle-timeout", "5"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-idle-timeout does nothing under --pm dynamic"}},
		{name: "spare settings under ondemand", args: []string{"--pm", "ondemand", "--pm-min-spare", "1"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-min-spare does nothing under --pm ondemand"}},
		{name: "send-ahead under ondemand", args: []string{"--pm", "ondemand", "--send-ahead", "--workers", "2"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--send-ahead does nothing under --pm ondemand"}},
		{name: "send-ahead off under ondemand", args: []string{"--pm", "ondemand", "--send-ahead=false", "--workers", "2"}, st: startState{listeners: local, euid: 1000}},
		{name: "pm-start above workers", args: []string{"--pm", "dynamic", "--workers", "4", "--pm-start", "10"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-start 10 is outside 1 (the spare minimum) to 4 (--workers): 4 workers start"}},
		{name: "pm-start below min spare", args: []string{"--pm", "dynamic", "--workers", "8", "--pm-min-spare", "3", "--pm-max-spare", "4", "--pm-start", "1"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-start 1 is outside 3 (the spare minimum) to 8 (--workers): 3 workers start"}},
		{name: "max spare above workers", args: []string{"--pm", "dynamic", "--workers", "2", "--pm-max-spare", "6"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pm-max-spare 6 is above --workers 2: the pool keeps at most 2 idle"}},
		{name: "dynamic within bounds", args: []string{"--pm", "dynamic", "--workers", "8", "--pm-start", "3", "--pm-min-spare", "2", "--pm-max-spare", "4"}, st: startState{listeners: local, euid: 1000}},
		{name: "every interface", st: startState{listeners: []net.Addr{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}}, euid: 1000},
			want: []string{"FastCGI on every interface (0.0.0.0:9000)"}},
		{name: "every interface, v6", st: startState{listeners: []net.Addr{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}}, euid: 1000},
			want: []string{"FastCGI on every interface ([::]:9000)"}},
		{name: "every interface with an allow-list", args: []string{"--web-server-addrs", "10.0.0.2"}, st: startState{listeners: []net.Addr{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}}, euid: 1000}},
		{name: "every interface with FCGI_WEB_SERVER_ADDRS", st: startState{listeners: []net.Addr{&net.TCPAddr{IP: net.IPv4zero, Port: 9000}}, euid: 1000, specAddrs: "10.0.0.2"}},
		{name: "dev HTTP on every interface", args: []string{"--http", "0.0.0.0:0"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--http 0.0.0.0:0: the development HTTP front end is on every interface"}},
		{name: "any proxy", args: []string{"--forwarded-allow-ips", "10.0.0.1,*"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--forwarded-allow-ips '*'"}},
		{name: "debug", env: map[string]string{"WSGI_FCGI_DEBUG": "yes"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--debug: an app's traceback goes to the client"}},
		{name: "root: warned before the workers start (rootWarning)", st: startState{listeners: local, euid: 0}},
		{name: "group without user", args: []string{"--group", "www-data"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--group does nothing without --user"}},
		{name: "socket mode without a unix socket", args: []string{"--socket-mode", "0660"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--socket-mode, --socket-owner and --socket-group do nothing"}},
		{name: "socket mode with a unix socket", args: []string{"--socket-mode", "0660"}, st: startState{listeners: unixSock, euid: 1000}},
		{name: "missing pythonpath entry", args: []string{"--pythonpath", "/nonexistent/lib"}, st: startState{listeners: local, euid: 1000},
			want: []string{"--pythonpath: /nonexistent/lib: no such file or directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSettingsEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := loadConfig(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got := startWarnings(c, tc.st)
			if len(got) != len(tc.want) {
				t.Errorf("%d warnings, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no warning says %q:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for _, g := range got {
				if strings.Contains(g, "\n") {
					t.Errorf("warning of more than one line: %q", g)
				}
			}
		})
	}
}

// TestRootWarning: workers that would run as root get one warning naming --user, unless
// --user chose root.
func TestRootWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		euid int
		want string // "": no warning
	}{
		{name: "root", euid: 0, want: "run as root: name an unprivileged user with --user"},
		{name: "not root", euid: 1000},
		{name: "root by --user", args: []string{"--user", "root"}, euid: 0},
		{name: "root by --user 0", args: []string{"--user=0"}, euid: 0},
		{name: "after --user www-data", args: []string{"--user", "www-data"}, euid: 33},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSettingsEnv(t)
			c, err := loadConfig(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			got := rootWarning(c, tc.euid)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) || strings.Contains(got, "\n") {
				t.Errorf("warning %q, want one line with %q", got, tc.want)
			}
		})
	}
}
