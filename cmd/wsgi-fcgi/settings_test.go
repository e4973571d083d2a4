//go:build linux

package main

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// settingRow is every setting's test: values it accepts, each with the value it reads as
// (its String), and values it refuses. anyValue says why a setting refuses nothing.
type settingRow struct {
	name     string
	good     map[string]string // value given → the setting's value as a user writes it
	bad      []string
	anyValue string
}

// Values shared by the settings of one kind.
var (
	goodDurations = map[string]string{"30": "30s", "1.5": "1.5s", "0": "0", "30s": "30s", "1m30s": "1m30s", "500ms": "500ms", " 2 ": "2s", "3600": "1h"}
	badDurations  = []string{"30x", "-1", "-1s", "", "1e3", "1,5", "soon"}
	goodSizes     = map[string]string{"1048576": "1MiB", "10mb": "10MiB", "10MB": "10MiB", "10MiB": "10MiB", "1.5GiB": "1536MiB", "512k": "512KiB", "2 G": "2GiB", "1tb": "1TiB", "4096b": "4KiB"}
	badSizes      = []string{"lots", "-1", "1.5", "10XB", "", "99999999999GiB"}
	goodSwitches  = map[string]string{"true": "true", "TRUE": "true", "1": "true", "yes": "true", "On": "true", "false": "false", "0": "false", "no": "false", "OFF": "false"}
	badSwitches   = []string{"maybe", "", "2", "t"}
)

// settingRows is the table: one row per setting.
func settingRows(t *testing.T) []settingRow {
	dir := t.TempDir()
	python := filepath.Join(dir, "python3")
	if err := os.WriteFile(python, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "gw.sock")
	dur := func(name string) settingRow { return settingRow{name: name, good: goodDurations, bad: badDurations} }
	size := func(name string, bad ...string) settingRow {
		return settingRow{name: name, good: goodSizes, bad: append(bad, badSizes...)}
	}
	sw := func(name string) settingRow { return settingRow{name: name, good: goodSwitches, bad: badSwitches} }
	count := func(name string, bad ...string) settingRow {
		return settingRow{name: name, good: map[string]string{"4": "4", "100": "100"}, bad: append(bad, "many", "4.5", "")}
	}
	cpus := strconv.Itoa(availableCPUs())
	me, err := user.Current() // the one user --user may name whoever runs the tests
	if err != nil {
		t.Fatal(err)
	}
	myGroup, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return []settingRow{
		{name: "app", good: map[string]string{"mysite.wsgi:application": "mysite.wsgi:application", "mysite.wsgi": "mysite.wsgi", "pkg.mod:app.wsgi_app": "pkg.mod:app.wsgi_app"},
			bad: []string{"mysite/wsgi.py", ":app", "mysite:", "mysite:1app", "my site"}},
		{name: "chdir", good: map[string]string{dir: dir}, bad: []string{"/nonexistent/dir", python}},
		{name: "pythonpath", good: map[string]string{"/srv/a:/srv/b": "/srv/a:/srv/b"}, anyValue: "a missing directory is a warning, as Python skips it"},
		{name: "python", good: map[string]string{python: python}, bad: []string{"/nonexistent/python3", notExec, "no-such-python-anywhere"}},
		{name: "mount", good: map[string]string{"/app": "/app", "": "", "app/": "app/"}, anyValue: "a missing leading / is added and a trailing one dropped (gateway.NormalizeMount)"},
		{name: "forwarded-allow-ips", good: map[string]string{"10.0.0.0/8,::1": "10.0.0.0/8,::1", "*": "*"}, bad: []string{"10.0.0.0/99", "proxy"}},
		{name: "listen", good: map[string]string{"127.0.0.1:0": "127.0.0.1:0", "unix:" + sock: "unix:" + sock, sock: sock, "[::1]:0": "[::1]:0"},
			bad: []string{"9000", "127.0.0.1:99999", "127.0.0.1", "/nonexistent/dir/gw.sock", "unix:" + python + "/gw.sock", python, ""}},
		{name: "socket-mode", good: map[string]string{"0660": "0660", "600": "600"}, bad: []string{"999", "rw-rw----", "01777"}},
		{name: "socket-owner", good: map[string]string{"root": "root", "0": "0"}, bad: []string{"no-such-user-here"}},
		{name: "socket-group", good: map[string]string{"root": "root", "0": "0"}, bad: []string{"no-such-group-here"}},
		{name: "web-server-addrs", good: map[string]string{"127.0.0.1,10.0.0.0/8": "127.0.0.1,10.0.0.0/8"}, bad: []string{"webserver", "10.0.0.0/99"}},
		sw("no-multiplex"),
		{name: "pm", good: map[string]string{"static": "static", "dynamic": "dynamic", "ondemand": "ondemand"}, bad: []string{"adaptive", "Static", ""}},
		{name: "workers", good: map[string]string{"4": "4", "0": cpus}, bad: []string{"-1", "many", ""}},
		count("pm-start", "-1"),
		count("pm-min-spare", "-1"),
		count("pm-max-spare", "-1"),
		dur("pm-idle-timeout"),
		{name: "threads", good: map[string]string{"1": "1", "256": "256"}, bad: []string{"0", "257", "many"}},
		sw("preload"),
		count("max-requests", "-1"),
		count("max-requests-jitter", "-1"),
		size("max-rss"),
		{name: "send-ahead", good: map[string]string{"true": "2", "yes": "2", "false": "false", "off": "false", "0": "false", "1": "1", "16": "16"}, bad: []string{"17", "-1", "lots", ""}},
		sw("sched-batch"),
		{name: "priority", good: map[string]string{"-20": "-20", "19": "19", "0": "0", "": ""}, bad: []string{"20", "-21", "high"}},
		size("max-body"),
		count("queue-size", "-1"),
		dur("queue-timeout"),
		dur("timeout"),
		dur("soft-timeout"),
		{name: "cancel-grace", good: map[string]string{"5": "5s", "0.5": "500ms", "1m": "1m"}, bad: append([]string{"0"}, badDurations...)},
		dur("start-timeout"),
		dur("drain-timeout"),
		count("max-conns", "0"),
		count("max-concurrent-requests", "0"),
		{name: "max-params", good: map[string]string{"1k": "1KiB", "64KiB": "64KiB", "1mb": "1MiB"}, bad: append([]string{"1023"}, badSizes...)},
		{name: "stall-timeout", good: goodDurations, bad: badDurations},
		{name: "max-spool", good: map[string]string{"1": "1", "1GiB": "1GiB", "10mb": "10MiB"}, bad: append([]string{"0"}, badSizes...)},
		{name: "log-level", good: map[string]string{"trace": "trace", "debug": "debug", "info": "info", "warn": "warn", "error": "error"}, bad: []string{"loud", ""}},
		{name: "log-format", good: map[string]string{"text": "text", "json": "json"}, bad: []string{"xml", ""}},
		{name: "log-file", good: map[string]string{"-": "-", filepath.Join(dir, "error.log"): filepath.Join(dir, "error.log"), "": ""}, bad: []string{"/nonexistent/dir/error.log", dir, python + "/error.log"}},
		{name: "access-log", good: map[string]string{"-": "-", filepath.Join(dir, "access.log"): filepath.Join(dir, "access.log"), "": ""}, bad: []string{"/nonexistent/dir/access.log", dir, python + "/access.log"}},
		{name: "access-log-format", good: map[string]string{"combined": "combined", "json": "json", "json:request_id,status": "json:request_id,status", "{request_id} {status} {queue_wait}": "{request_id} {status} {queue_wait}"},
			bad: []string{"common", "", "json:nosuchfield", "{nosuchfield}"}},
		sw("request-id-header"),
		dur("slowlog-timeout"),
		{name: "status-path", good: map[string]string{"/fcgi-status": "/fcgi-status", "": ""}, bad: []string{"status"}},
		{name: "ping-path", good: map[string]string{"/fcgi-ping": "/fcgi-ping", "": ""}, bad: []string{"ping"}},
		{name: "user", good: map[string]string{me.Username: me.Username, me.Uid: me.Uid, "": ""}, bad: []string{"no-such-user-here", "4294967"}},
		{name: "group", good: map[string]string{myGroup.Name: myGroup.Name, me.Gid: me.Gid}, bad: []string{"no-such-group-here"}},
		{name: "pid-file", good: map[string]string{filepath.Join(dir, "gw.pid"): filepath.Join(dir, "gw.pid"), "": ""}, bad: []string{"/nonexistent/dir/gw.pid", dir, python + "/gw.pid"}},
		{name: "pool-name", good: map[string]string{"mysite": "mysite"}, anyValue: "every text is a name"},
		{name: "touch-reload", good: map[string]string{filepath.Join(dir, "reload.txt"): filepath.Join(dir, "reload.txt"), "": ""}, anyValue: "any path: the file need not exist at start, and may appear later"},
		{name: "http", good: map[string]string{"127.0.0.1:0": "127.0.0.1:0", "": ""}, bad: []string{"8000", "127.0.0.1", "/tmp/http.sock", "127.0.0.1:70000"}},
		sw("reload"),
		sw("debug"),
		sw("version"),
		sw("check-config"),
	}
}

// clearSettingsEnv unsets, for the test, every WSGI_FCGI_* variable of the environment the
// tests run in.
func clearSettingsEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, envPrefix+"_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// configure is what the gateway does with a command line and an environment before it
// imports the app: read the settings, then check them against the machine.
//
// Unless env names one, the listen address is a free port: the check trial-binds --listen, and
// no test may depend on whether something else on the machine holds the default
// 127.0.0.1:9000.
func configure(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	clearSettingsEnv(t)
	t.Setenv(envPrefix+"_LISTEN", "127.0.0.1:0")
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := loadConfig(args)
	if err != nil {
		return c, err
	}
	return c, checkBeforeStart(c, listenEnv{getenv: os.Getenv, getpid: os.Getpid})
}

// settingString is the setting's value in c as a user writes it.
func settingString(t *testing.T, c *Config, name string) string {
	t.Helper()
	for _, s := range settings(c) {
		if s.name == name {
			return asValue(s.value).String()
		}
	}
	t.Fatalf("no setting --%s", name)
	return ""
}

// TestEverySetting: every setting, as a flag (--name=value, --name value) and as its
// environment variable, reads each good value the same, and refuses each bad one with one
// line naming the flag, the variable, the value, what is accepted and an example.
func TestEverySetting(t *testing.T) {
	rows := settingRows(t)
	byName := map[string]settingRow{}
	for _, r := range rows {
		if _, dup := byName[r.name]; dup {
			t.Errorf("two rows for --%s", r.name)
		}
		byName[r.name] = r
	}
	// Every setting has a row, with values it takes and values it refuses.
	for _, s := range settings(&Config{}) {
		r, ok := byName[s.name]
		switch {
		case !ok:
			t.Errorf("--%s has no row in settingRows", s.name)
		case len(r.good) == 0:
			t.Errorf("--%s: no good values", s.name)
		case len(r.bad) == 0 && r.anyValue == "":
			t.Errorf("--%s: no bad values, and no reason it takes any value", s.name)
		}
		delete(byName, s.name)
	}
	for name := range byName {
		t.Errorf("row for --%s, which is not a setting", name)
	}

	isNoEnv := map[string]bool{}
	isSwitch := map[string]bool{}
	for _, s := range settings(&Config{}) {
		isNoEnv[s.name] = s.noEnv
		_, isSwitch[s.name] = asValue(s.value).(switchValue)
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			env := envName(r.name)
			for in, want := range r.good {
				spellings := map[string]func() (*Config, error){
					"--name=value": func() (*Config, error) { return configure(t, []string{"--" + r.name + "=" + in}, nil) },
				}
				if !isSwitch[r.name] {
					spellings["--name value"] = func() (*Config, error) { return configure(t, []string{"--" + r.name, in}, nil) }
				}
				if !isNoEnv[r.name] {
					spellings[env] = func() (*Config, error) { return configure(t, nil, map[string]string{env: in}) }
				}
				for how, load := range spellings {
					c, err := load()
					if err != nil {
						t.Errorf("%s %q: %v", how, in, err)
						continue
					}
					if got := settingString(t, c, r.name); got != want {
						t.Errorf("%s %q: reads as %q, want %q", how, in, got, want)
					}
				}
			}
			for _, in := range r.bad {
				_, err := configure(t, []string{"--" + r.name + "=" + in}, nil)
				checkValueError(t, err, r.name, in, false, isNoEnv[r.name])
				if !isNoEnv[r.name] {
					_, err := configure(t, nil, map[string]string{env: in})
					checkValueError(t, err, r.name, in, true, false)
				}
			}
		})
	}
}

// TestSettingExamples: the example each error gives is a value the setting's kind accepts.
func TestSettingExamples(t *testing.T) {
	for _, s := range settings(&Config{}) {
		example := s.example
		if example == "" {
			_, example = asValue(s.value).accepts()
		}
		fresh := settings(&Config{given: map[string]origin{}})
		for _, f := range fresh {
			if f.name == s.name {
				if err := asValue(f.value).Set(example); err != nil {
					t.Errorf("--%s: its example %q is refused", s.name, example)
				}
			}
		}
	}
}

// checkValueError checks that err refuses value of the setting --name in one line naming the
// flag, its variable, the value, what is accepted and an example.
func checkValueError(t *testing.T, err error, name, value string, fromEnvVar, noEnv bool) {
	t.Helper()
	how := "--" + name + "=" + value
	if fromEnvVar {
		how = envName(name) + "=" + value
	}
	if err == nil {
		t.Errorf("%s: accepted", how)
		return
	}
	msg := err.Error()
	want := []string{"--" + name, strconv.Quote(value), "want ", "; e.g. "}
	if !noEnv {
		want = append(want, envName(name))
	}
	if fromEnvVar {
		want = append(want, envName(name)+"="+strconv.Quote(value))
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not say %q", how, msg, w)
		}
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "envconfig") {
		t.Errorf("%s: error is not one plain line: %q", how, msg)
	}
}

// TestSwitchAlone: a switch alone on the command line is on; followed by a value it says to
// write the value after "=".
func TestSwitchAlone(t *testing.T) {
	for _, s := range settings(&Config{}) {
		if _, ok := asValue(s.value).(switchValue); !ok {
			continue
		}
		c, err := configure(t, []string{"--" + s.name}, nil)
		if err != nil {
			t.Errorf("--%s alone: %v", s.name, err)
			continue
		}
		if got := settingString(t, c, s.name); got == "false" || got == "" {
			t.Errorf("--%s alone: reads as %q, want on", s.name, got)
		}
		_, err = configure(t, []string{"--" + s.name, "no"}, nil)
		if err == nil || !strings.Contains(err.Error(), "--"+s.name+"=no") {
			t.Errorf("--%s no: %v, want a pointer to --%s=no", s.name, err, s.name)
		}
	}
}

// TestFlagWinsOverEnv: a flag replaces its variable's value, whatever its kind.
func TestFlagWinsOverEnv(t *testing.T) {
	c, err := configure(t, []string{"--timeout", "10", "--preload=no", "--max-body", "2MiB"},
		map[string]string{"WSGI_FCGI_TIMEOUT": "20", "WSGI_FCGI_PRELOAD": "yes", "WSGI_FCGI_MAX_BODY": "1GiB"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout.String() != "10s" || c.Preload || c.MaxBody != 2<<20 {
		t.Errorf("timeout %v preload %v max-body %v: want the flags' 10s, false, 2MiB", &c.Timeout, c.Preload, &c.MaxBody)
	}
	if c.given["timeout"] != fromFlag || c.given["max-rss"] != fromDefault {
		t.Errorf("given: %v", c.given)
	}
}

// TestUnprefixedNotRead: a variable named as a setting without the WSGI_FCGI_ prefix (DEBUG,
// TIMEOUT) is not that setting.
func TestUnprefixedNotRead(t *testing.T) {
	c, err := configure(t, nil, map[string]string{"DEBUG": "true", "TIMEOUT": "not-a-duration", "WORKERS": "x", "PYTHON": "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Debug || c.Timeout != 0 || c.Python != "python3" {
		t.Errorf("debug %v, timeout %v, python %q: read from unprefixed variables", c.Debug, &c.Timeout, c.Python)
	}
}

// TestUnknownFlag: a flag that does not exist is one line with the nearest flag, or the one
// another server's name stands for, and a pointer to --help.
func TestUnknownFlag(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
	}{
		{"--wrokers", "did you mean --workers?"},
		{"--workres=4", "did you mean --workers?"},
		{"-worker", "did you mean --workers?"},
		{"--max-bdy", "did you mean --max-body?"},
		{"--timout", "did you mean --timeout?"},
		{"--bind", "did you mean --listen?"},
		{"-w", "did you mean --workers?"},
		{"--graceful-timeout", "did you mean --drain-timeout?"},
		{"--harakiri", "did you mean --timeout?"},
		{"--access-log-fmt", "did you mean --access-log-format?"},
		{"--frobnicate", "unknown flag --frobnicate (wsgi-fcgi --help lists the flags)"},
	} {
		_, err := configure(t, []string{tc.arg, "4"}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--help") {
			t.Errorf("%s: %v, want %q and a pointer to --help", tc.arg, err, tc.want)
		}
	}
}

// TestUnknownEnv: a WSGI_FCGI_* variable that names no setting is an error with the nearest
// variable; the variables the gateway sets for its workers are not settings, and pass.
func TestUnknownEnv(t *testing.T) {
	for _, tc := range []struct {
		env, want string
	}{
		{"WSGI_FCGI_WORKRES", `WSGI_FCGI_WORKRES="4": no such setting; did you mean WSGI_FCGI_WORKERS?`},
		{"WSGI_FCGI_TIMEOUTS", "did you mean WSGI_FCGI_TIMEOUT?"},
		{"WSGI_FCGI_MAXBODY", "did you mean WSGI_FCGI_MAX_BODY?"},
		{"WSGI_FCGI_VERSION", "no such setting"},
		{"WSGI_FCGI_FROBNICATE", "no such setting"},
	} {
		_, err := configure(t, nil, map[string]string{tc.env: "4"})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=4: %v, want one line with %q", tc.env, err, tc.want)
		}
	}
	if _, err := configure(t, nil, map[string]string{"WSGI_FCGI_RUNNER_FD": "3:4", "WSGI_FCGI_RUNNER_COOKIE": "x"}); err != nil {
		t.Errorf("the workers' variables: %v", err)
	}
}

// TestCheckBeforeStart: what is checked against the machine before the app is imported.
func TestCheckBeforeStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	served := filepath.Join(dir, "served.sock")
	ul, err := net.Listen("unix", served)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()

	for _, tc := range []struct {
		name string
		args []string
		want string // "" for no error
	}{
		{"tcp address in use", []string{"--listen", busy.Addr().String()}, "address already in use"},
		{"first of two in use", []string{"--listen", busy.Addr().String(), "--listen", "127.0.0.1:0"}, `--listen "` + busy.Addr().String() + `" (WSGI_FCGI_LISTEN): want an address the gateway can listen on (address already in use)`},
		{"unix socket served", []string{"--listen", served}, "another process listens on " + served},
		{"stale unix socket", []string{"--listen", stale}, ""},
		{"http address in use", []string{"--http", busy.Addr().String()}, "--http"},
		{"socket dir missing", []string{"--listen", "unix:" + dir + "/no/gw.sock"}, dir + "/no does not exist"},
		{"port alone", []string{"--listen", "9000"}, "127.0.0.1:9000 is this machine only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configure(t, tc.args, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
	t.Run("FCGI_WEB_SERVER_ADDRS", func(t *testing.T) {
		t.Setenv("FCGI_WEB_SERVER_ADDRS", "webserver")
		_, err := configure(t, []string{"--listen", "127.0.0.1:0"}, nil)
		if err == nil || !strings.Contains(err.Error(), `FCGI_WEB_SERVER_ADDRS="webserver"`) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestEditDistance: a swap of two letters is one edit.
func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"workers", "workers", 0}, {"wrokers", "workers", 1}, {"worker", "workers", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
