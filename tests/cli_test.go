//go:build integration

// The binary's configuration: bad settings (exit 2, one line saying why, nothing listening)
// and settings from the environment.

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// startupErrorBy is how soon a startup error must end the process.
const startupErrorBy = 10 * time.Second

func TestStartupErrors(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		missingTool(t, "%s: %v", systemPython, err)
	}
	for _, tc := range []struct {
		name string
		args []string // replacing the defaults of the same flags
		env  []string
		want []string // all in the one stderr line
	}{
		{
			name: "app module not found",
			args: []string{"--app", "nosuchmodule"},
			want: []string{"nosuchmodule", "ModuleNotFoundError"},
		},
		{
			name: "app module not found, from the environment",
			env:  []string{"WSGI_FCGI_APP=nosuchmodule:app"},
			want: []string{"nosuchmodule", "ModuleNotFoundError"},
		},
		{
			name: "app module raises on import",
			args: []string{"--app", "brokenapp:app"},
			want: []string{"brokenapp", "RuntimeError", "brokenapp-import-failure"},
		},
		{
			name: "callable not in the module",
			args: []string{"--app", "flaskapp:nosuchcallable"},
			want: []string{"flaskapp", "nosuchcallable"},
		},
		{
			name: "python not found",
			args: []string{"--python", "/nonexistent/python3"},
			want: []string{"/nonexistent/python3"},
		},
		{
			name: "python not found, from the environment",
			env:  []string{"WSGI_FCGI_PYTHON=/nonexistent/python3"},
			want: []string{"/nonexistent/python3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(shortTempDir(t), "gw.sock")
			checkStartupError(t, sock, startupArgs(sock, tc.args, tc.env), tc.env, tc.want)
		})
	}
}

// checkStartupError runs the gateway with args and env (beside the test's own environment
// without its WSGI_FCGI_* variables) and checks that it ends soon with exit status 2 and one
// line on standard error naming all of want, and that nothing listens on sock.
func checkStartupError(t *testing.T, sock string, args, env, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startupErrorBy)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBin, args...)
	cmd.Env = gatewayEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)

	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("still running after %v (killed); stderr:\n%s", startupErrorBy, &stderr)
	case !errors.As(err, &exit):
		t.Fatalf("run %v: %v", args, err)
	case exit.ExitCode() != 2:
		t.Errorf("exit status %d, want 2; stderr:\n%s", exit.ExitCode(), &stderr)
	}
	t.Logf("exited %v after %v", err, took.Round(time.Millisecond))

	lines := nonEmptyLines(withoutRootWarning(stderr.String()))
	if len(lines) != 1 {
		t.Errorf("stderr has %d lines, want 1; stderr:\n%s", len(lines), &stderr)
	}
	if !containsAll(stderr.String(), want) {
		t.Errorf("stderr does not name all of %q; stderr:\n%s", want, &stderr)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("socket %s was created", sock)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Errorf("something listens on %s", sock)
	}
}

// startupArgs is a complete command line listening on sock, with override's flags in place
// of the defaults and the flags an env entry sets left out (so the environment decides).
func startupArgs(sock string, override, env []string) []string {
	values := map[string]string{
		"--app":     "flaskapp:app",
		"--chdir":   filepath.Join(repoRoot(), "tests", "apps"),
		"--python":  systemPython,
		"--workers": "1",
		"--listen":  "unix:" + sock,
	}
	order := []string{"--app", "--chdir", "--python", "--workers", "--listen"}
	for i := 0; i+1 < len(override); i += 2 {
		values[override[i]] = override[i+1]
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(strings.TrimPrefix(kv, "WSGI_FCGI_"), "=")
		delete(values, "--"+strings.ToLower(strings.ReplaceAll(name, "_", "-")))
	}
	var args []string
	for _, flag := range order {
		if v, ok := values[flag]; ok {
			args = append(args, flag, v)
		}
	}
	return args
}

// withoutRootWarning is s without the gateway's log records below ERROR: the root warning a
// gateway started as root without --user logs before any Python starts, and the INFO line of
// a worker starting. A start-up error is the one line that is left.
func withoutRootWarning(s string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !lowLogRecord.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// lowLogRecord matches a text log record (go-hclog's form) at TRACE, DEBUG, INFO or WARN.
var lowLogRecord = regexp.MustCompile(`^\S+ \[(TRACE|DEBUG|INFO|WARN) *\] `)

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestJSONLogs configures JSON logs from the environment, as a container would, and checks
// that every line the gateway writes, a relayed traceback included, is one JSON object.
func TestJSONLogs(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 1, env: []string{"WSGI_FCGI_LOG_FORMAT=json"}})
	n := startNginx(t, g.upstream)
	n.mustGet(t, "/pid", 200)
	n.mustGet(t, "/boom", 500)
	g.waitLog(t, "integration-test-boom", 5*time.Second)
	if st := g.stop(t); !st.Success() {
		t.Fatalf("gateway exit status %v after SIGTERM, want 0", st)
	}

	lines := nonEmptyLines(g.stderr.String())
	var messages []string
	for i, line := range lines {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("stderr line %d is not JSON (%v): %s", i+1, err, line)
			continue
		}
		for _, key := range []string{"@level", "@message", "@timestamp"} {
			if _, ok := entry[key]; !ok {
				t.Errorf("stderr line %d has no %s: %s", i+1, key, line)
			}
		}
		if msg, ok := entry["@message"].(string); ok {
			messages = append(messages, msg)
		}
	}
	if !slices.ContainsFunc(messages, func(m string) bool { return strings.Contains(m, "listening") }) {
		t.Errorf("no log line says \"listening\"; messages: %q", messages)
	}
}

// TestCLIErrors: a bad value, flag or variable ends the gateway with exit status 2 and one
// line naming the setting, its variable, the value, what is accepted and an example, before
// the app is imported: the app here (brokenapp) fails its import, and is never reached.
func TestCLIErrors(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		missingTool(t, "%s: %v", systemPython, err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"duration", []string{"--timeout", "30x"}, nil,
			[]string{`--timeout "30x" (WSGI_FCGI_TIMEOUT): want seconds (30, 1.5)`, "e.g. --timeout 30"}},
		{"duration variable", nil, []string{"WSGI_FCGI_TIMEOUT=30x"},
			[]string{`WSGI_FCGI_TIMEOUT="30x" (--timeout): want seconds (30, 1.5)`, "e.g. WSGI_FCGI_TIMEOUT=30"}},
		{"size", []string{"--max-body", "10 zettabytes"}, nil, []string{`--max-body "10 zettabytes" (WSGI_FCGI_MAX_BODY)`, "base 1024"}},
		{"switch variable", nil, []string{"WSGI_FCGI_PRELOAD=maybe"}, []string{`WSGI_FCGI_PRELOAD="maybe" (--preload)`, "yes, no, on or off"}},
		{"unknown flag", []string{"--wrokers", "2"}, nil, []string{"unknown flag --wrokers: did you mean --workers?", "--help"}},
		{"unknown variable", nil, []string{"WSGI_FCGI_WORKRES=4"}, []string{`WSGI_FCGI_WORKRES="4": no such setting; did you mean WSGI_FCGI_WORKERS?`}},
		{"listen address in use", []string{"--listen", busy.Addr().String()}, nil, []string{"--listen", busy.Addr().String(), "address already in use"}},
		{"listen directory missing", []string{"--listen", "/nonexistent/dir/gw.sock"}, nil, []string{"--listen", "/nonexistent/dir does not exist"}},
		{"socket owner", []string{"--socket-owner", "no-such-user-here"}, nil, []string{`--socket-owner "no-such-user-here" (WSGI_FCGI_SOCKET_OWNER)`}},
		{"socket group", []string{"--socket-group", "no-such-group-here"}, nil, []string{`--socket-group "no-such-group-here"`}},
		{"socket mode", []string{"--socket-mode", "rw-rw----"}, nil, []string{`--socket-mode "rw-rw----"`, "octal"}},
		{"access log directory", []string{"--access-log", "/nonexistent/dir/access.log"}, nil, []string{"--access-log", "/nonexistent/dir does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(shortTempDir(t), "gw.sock")
			args := []string{"--app", "brokenapp:app", "--chdir", filepath.Join(repoRoot(), "tests", "apps"),
				"--python", systemPython, "--workers", "1"}
			if !slices.Contains(tc.args, "--listen") {
				args = append(args, "--listen", "unix:"+sock)
			}
			args = append(args, tc.args...)
			checkStartupError(t, sock, args, tc.env, tc.want)
		})
	}
}

// TestCLIValues: what a gunicorn, uWSGI or php-fpm user writes works, as flags and as
// variables (bare seconds, sizes in any case, yes and on); settings that do nothing in the
// chosen mode and risky ones are warned about once, when the gateway starts.
func TestCLIValues(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 1,
		args: []string{"--timeout", "30", "--queue-timeout", "1.5", "--max-body", "10mb", "--debug=on", "--pm-idle-timeout", "5"},
		env:  []string{"WSGI_FCGI_SOFT_TIMEOUT=20", "WSGI_FCGI_MAX_PARAMS=64k", "WSGI_FCGI_NO_MULTIPLEX=no", "WSGI_FCGI_PM_START=2"}})
	if got := g.mustFcgiGet(t, "/pid", ""); got == "" {
		t.Fatal("no answer")
	}
	g.waitLog(t, "listening", startTimeout)
	log := g.stderr.String()
	for _, w := range []string{
		"--pm-idle-timeout does nothing under --pm static",
		"--pm-start does nothing under --pm static",
		"--debug: an app's traceback goes to the client",
	} {
		if n := strings.Count(log, w); n != 1 {
			t.Errorf("the warning %q is logged %d times, want once; log:\n%s", w, n, log)
		}
	}
	if i, j := strings.Index(log, "does nothing"), strings.Index(log, "listening"); i < 0 || j < i {
		t.Errorf("the warnings do not come before \"listening\"; log:\n%s", log)
	}
}
