//go:build integration

// --preload and the log: what a forked worker writes carries its own pid, and a master whose
// app started threads before the fork says so, naming them.

package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonLog is the gateway's log (--log-format json), an entry per line.
func (g *gateway) jsonLog(t *testing.T) []map[string]any {
	t.Helper()
	var entries []map[string]any
	for _, line := range strings.Split(g.stderr.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

// waitEntry polls the gateway's JSON log for an entry whose message contains msg.
func (g *gateway) waitEntry(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range g.jsonLog(t) {
			if m, _ := e["@message"].(string); strings.Contains(m, msg) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log entry with %q in:\n%s", msg, g.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// printApp prints at import (in the master, with --preload) and in each request (in a
// worker), on stdout and stderr; it answers its pid.
const printApp = `import os, sys
print("imported by", os.getpid())
def application(environ, start_response):
    print("request served by", os.getpid())
    sys.stderr.write("stderr of %d\n" % os.getpid())
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

func TestPreloadWorkerLinesCarryTheirPid(t *testing.T) {
	dir := shortTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "printapp.py"), []byte(printApp), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, gatewayConfig{app: "printapp", workers: 2,
		args: []string{"--chdir", dir, "--preload", "--log-format", "json"}})
	g.waitPythonWorkers(t, 2, nil, startTimeout)
	master, _ := g.pythonProcs()
	imported := g.waitEntry(t, "imported by")
	if fmt.Sprint(imported["pid"]) != strconv.Itoa(master) || imported["@message"] != "imported by "+strconv.Itoa(master) {
		t.Errorf("the import line: %v; want it printed by and logged with the master's pid %d", imported, master)
	}
	pid := g.mustFcgiGet(t, "/", "")
	if pid == strconv.Itoa(master) {
		t.Fatalf("the master %d answered", master)
	}
	for _, msg := range []string{"request served by " + pid, "stderr of " + pid} {
		e := g.waitEntry(t, msg)
		if fmt.Sprint(e["pid"]) != pid || e["preload"] != true {
			t.Errorf("%q logged as %v; want pid %s, the worker that wrote it", msg, e, pid)
		}
	}
}

// threadApp starts a named thread at import, as a metrics exporter does.
const threadApp = `import threading, time
def export_metrics():
    while True:
        time.sleep(60)
threading.Thread(target=export_metrics, name="metrics-exporter", daemon=True).start()
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

func TestPreloadWarnsOfThreads(t *testing.T) {
	const warning = "the app started threads before the preload master forks"
	for _, tc := range []struct {
		name, app string
		want      string // in the warning's threads field; "" for no warning
	}{
		{"thread at import", threadApp, "metrics-exporter (threadapp.export_metrics)"},
		{"no thread", printApp, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			if err := os.WriteFile(filepath.Join(dir, "threadapp.py"), []byte(tc.app), 0o644); err != nil {
				t.Fatal(err)
			}
			g := startGateway(t, gatewayConfig{app: "threadapp", workers: 2,
				args: []string{"--chdir", dir, "--preload", "--log-format", "json"}})
			g.waitPythonWorkers(t, 2, nil, startTimeout)
			g.mustFcgiGet(t, "/", "")
			if tc.want == "" {
				if strings.Contains(g.stderr.String(), warning) {
					t.Errorf("warned of threads without any:\n%s", g.stderr.String())
				}
				return
			}
			e := g.waitEntry(t, warning)
			if threads, _ := e["threads"].(string); e["@level"] != "warn" || !strings.Contains(threads, tc.want) {
				t.Errorf("warning %v; want it at warn, naming %q", e, tc.want)
			}
			if n := strings.Count(g.stderr.String(), warning); n != 1 {
				t.Errorf("warned %d times for 2 forks, want once", n)
			}
		})
	}
}
