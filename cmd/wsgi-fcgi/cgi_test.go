//go:build linux

package main

import (
	"slices"
	"testing"
)

func TestCGIInvoked(t *testing.T) {
	cgiVars := map[string]string{"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range cgiVars {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		env       map[string]string
		listenSet bool // --listen given
		fd0       bool // fd 0 is a listening socket
		want      bool
	}{
		{"mod_cgi", cgiVars, false, false, true},
		{"no GATEWAY_INTERFACE", map[string]string{"REQUEST_METHOD": "GET"}, false, false, false},
		{"run by hand", map[string]string{}, false, false, false},
		{"mod_fcgid: socket on fd 0", cgiVars, false, true, false},
		{"--listen", cgiVars, true, false, false},
		{"WSGI_FCGI_LISTEN", with(map[string]string{"WSGI_FCGI_LISTEN": "127.0.0.1:9000"}), false, false, false},
		{"systemd sockets for this process", with(map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242"}), false, false, false},
		{"systemd sockets for another process", with(map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}), false, false, true},
		{"fd 0 and --listen", cgiVars, true, true, false},
		{"FastCGI socket on fd 0, no CGI", map[string]string{}, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := cgiProbe{
				getenv:       func(k string) string { return tc.env[k] },
				getpid:       func() int { return 4242 },
				fd0Listening: func() bool { return tc.fd0 },
			}
			if got := cgiInvoked(&Config{listenSet: tc.listenSet}, p); got != tc.want {
				t.Errorf("cgiInvoked = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCGIEnvironments(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin:/bin", "HOME=/home/user", "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=POST",
		"CONTENT_LENGTH=5", "HTTP_HOST=example.com", "HTTP_PROXY=evil:3128", "QUERY_STRING=a=1",
		"SCRIPT_FILENAME=/home/user/public_html/app.fcgi", "SSL_PROTOCOL=TLSv1.3", "DJANGO_SETTINGS_MODULE=site.settings",
		"WSGI_FCGI_APP=site.wsgi", "WSGI_FCGI_TIMEOUT=30s", "PWD=/home/user/public_html", "SHLVL=1", "_=/bin/sh",
	}
	params := cgiParams(environ)
	if want := environ[:len(environ)-5]; !slices.Equal(params, want) {
		t.Errorf("params %q, want %q (all but the WSGI_FCGI_ settings and the shell's variables)", params, want)
	}
	worker := cgiWorkerEnv(environ)
	want := []string{"PATH=/usr/bin:/bin", "HOME=/home/user", "DJANGO_SETTINGS_MODULE=site.settings",
		"WSGI_FCGI_APP=site.wsgi", "WSGI_FCGI_TIMEOUT=30s", "PWD=/home/user/public_html", "SHLVL=1", "_=/bin/sh"}
	if !slices.Equal(worker, want) {
		t.Errorf("worker environment %q, want %q (no request variables)", worker, want)
	}
}

func TestUseCGISettings(t *testing.T) {
	for _, tc := range []struct{ level, want string }{{"info", "warn"}, {"debug", "debug"}, {"error", "error"}} {
		cfg := &Config{Workers: 8, Threads: 4, PM: "ondemand", Preload: true, Reload: true, HTTP: ":8000", Listen: defaultListen, LogLevel: tc.level}
		useCGISettings(cfg)
		if cfg.Workers != 1 || cfg.Threads != 1 || cfg.PM != "static" || cfg.Preload || cfg.Reload || cfg.HTTP != "" || cfg.Listen != "" || cfg.LogLevel != tc.want {
			t.Errorf("level %s: settings %+v, want one static worker, one thread, no preload, reload, --http or --listen, level %s", tc.level, cfg, tc.want)
		}
	}
}
