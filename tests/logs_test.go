//go:build integration

// logs_test.go: the gateway's log as an operator reads it: JSON lines whose durations and
// enums a log system can use, a traceback as one record, a worker's life at info, and no
// line twice.

package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// durationKey matches the keys that name a duration.
var durationKey = regexp.MustCompile(`(^|_)(timeout|duration|elapsed|wait|waited|lived|startup|running|retry_in|grace|window|interval|time)$`)

// enumKeys are the keys whose values are names from a fixed set.
var enumKeys = map[string]bool{"pm": true, "cause": true, "state": true, "stream": true, "kind": true, "mode": true}

// jsonRecords parses every line of a JSON log, failing the test on any that is not an object.
func jsonRecords(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not a JSON object (%v): %.200q", err, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// checkRecordTypes fails the test for a duration logged as an integer of nanoseconds, or an
// enum logged as a number.
func checkRecordTypes(t *testing.T, recs []map[string]any) {
	t.Helper()
	for _, r := range recs {
		for k, v := range r {
			n, isNum := v.(float64)
			switch {
			case enumKeys[k] && !isString(v):
				t.Errorf("%q: enum %s = %v (%T), want a name", r["@message"], k, v, v)
			case durationKey.MatchString(k) && isNum && n == math.Trunc(n) && math.Abs(n) >= 1000:
				t.Errorf("%q: duration %s = %v: nanoseconds, want seconds or a duration string", r["@message"], k, v)
			case durationKey.MatchString(k) && isString(v):
				if _, err := time.ParseDuration(v.(string)); err != nil {
					t.Errorf("%q: duration %s = %q is not a duration: %v", r["@message"], k, v, err)
				}
			}
		}
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

// withMessage returns the records whose message is msg and whose keys have the values in keys.
func withMessage(recs []map[string]any, msg string, keys map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, r := range recs {
		if r["@message"] != msg {
			continue
		}
		for k, v := range keys {
			if fmt.Sprint(r[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// TestJSONLogFields runs the gateway with --log-format json through its start, requests whose app
// prints a traceback (to stderr and to wsgi.errors), raises, and prints a 2 MiB line, a
// reload, a request past --timeout and its stop, then reads every line of its log.
func TestJSONLogFields(t *testing.T) {
	g := startGateway(t, gatewayConfig{app: "logapp", workers: 1,
		args: []string{"--log-format", "json", "--timeout", "1", "--drain-timeout", "5"}})
	for _, path := range []string{"/", "/stderr-traceback", "/errors-traceback", "/long"} {
		g.mustFcgiGet(t, path, "")
	}
	if r := g.fcgiGet("/raise", ""); r.status != 500 {
		t.Errorf("/raise: %d %v", r.status, r.err)
	}
	first := g.workerPIDs()
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "reloaded", 20*time.Second)
	g.waitWorkers(t, 1, map[int]bool{first[0]: true}, 20*time.Second)
	reloaded := g.workerPIDs()
	if r := g.fcgiGet("/sleep", "s=10"); r.status != 504 {
		t.Errorf("/sleep past --timeout: %d %v", r.status, r.err)
	}
	g.waitWorkers(t, 1, map[int]bool{reloaded[0]: true}, 20*time.Second)
	g.mustFcgiGet(t, "/", "")
	if st := g.stop(t); !st.Success() {
		t.Fatalf("gateway exit: %v", st)
	}

	recs := jsonRecords(t, g.stderr.String())
	checkRecordTypes(t, recs)

	// A worker's life, with its pid.
	for _, want := range []struct {
		msg  string
		keys map[string]any
	}{
		{"worker started: importing the app", map[string]any{"pid": first[0], "@level": "info"}},
		{"worker ready", map[string]any{"pid": first[0], "@level": "info", "python": systemPython}},
		{"workers ready", map[string]any{"pm": "static"}},
		{"worker exited", map[string]any{"pid": first[0], "@level": "info", "cause": "reload"}},
		{"worker exited", map[string]any{"pid": reloaded[0], "@level": "info", "cause": "killed", "reason": "request past --timeout"}},
		{"worker started: importing the app", map[string]any{"replaces": reloaded[0]}},
	} {
		if len(withMessage(recs, want.msg, want.keys)) != 1 {
			t.Errorf("want one %q line with %v", want.msg, want.keys)
		}
	}
	if r := withMessage(recs, "worker ready", map[string]any{"pid": first[0]}); len(r) == 1 && r[0]["python_version"] == "" {
		t.Errorf("the ready line does not name the Python version: %v", r[0])
	}

	// Each traceback is one record at error; none of its lines is a record of its own.
	for _, stream := range []string{"stderr", "wsgi.errors"} {
		tb := withMessage(recs, "ValueError: handled and printed", map[string]any{"stream": stream, "@level": "error"})
		if len(tb) != 1 || !strings.Contains(fmt.Sprint(tb[0]["traceback"]), "in handled") {
			t.Errorf("%s: want one error record with the traceback, got %v", stream, tb)
		}
	}
	if raised := withMessage(recs, "app raised an exception", map[string]any{"@level": "error"}); len(raised) != 1 ||
		!strings.Contains(fmt.Sprint(raised[0]["traceback"]), "raised by the app") {
		t.Errorf("want one record of the app's exception with its traceback, got %v", raised)
	}
	for _, r := range recs {
		if msg := fmt.Sprint(r["@message"]); strings.HasPrefix(msg, "  File ") || strings.HasPrefix(msg, "Traceback") {
			t.Errorf("a traceback line logged alone: %v", r)
		}
	}

	// The 2 MiB line is cut, and the worker's output goes on.
	cut := false
	for _, r := range recs {
		if msg := fmt.Sprint(r["@message"]); strings.HasSuffix(msg, " … (1048576 bytes cut)") && r["stream"] == "stdout" {
			cut = true
		}
	}
	if !cut || len(withMessage(recs, "after the long line", map[string]any{"stream": "stdout"})) != 1 {
		t.Errorf("want the long line cut at 1 MiB and the next line relayed")
	}
	if len(withMessage(recs, "reload failed: the old workers keep serving", nil)) != 0 {
		t.Errorf("a reload that worked logged as failed")
	}
}

// TestFailedReloadLoggedOnce reloads code that does not import: one line says so, with the
// traceback.
func TestFailedReloadLoggedOnce(t *testing.T) {
	dir := shortTempDir(t)
	app := filepath.Join(dir, "reloadapp.py")
	ok := "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n"
	if err := os.WriteFile(app, []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, gatewayConfig{app: "reloadapp", workers: 1, args: []string{"--chdir", dir}})
	if err := os.WriteFile(app, []byte("raise ImportError('half-deployed')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "half-deployed", 20*time.Second)
	g.mustFcgiGet(t, "/", "")
	g.stop(t)
	log := g.stderr.String()
	if n := strings.Count(log, "reload failed"); n != 1 {
		t.Errorf("the failed reload is logged %d times, want once:\n%s", n, log)
	}
}
