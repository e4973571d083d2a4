//go:build integration

// The JSON access log names the worker process that served each request.

package tests

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAccessLogWorkerPID(t *testing.T) {
	logFile := shortTempDir(t) + "/access.log"
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--access-log", logFile, "--access-log-format", "json"}})
	pid, err := strconv.Atoi(strings.TrimSpace(g.mustFcgiGet(t, "/pid", "")))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // the log is flushed every second
	for {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct {
				URI       string `json:"uri"`
				WorkerPID int    `json:"worker_pid"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.URI == "/pid" {
				if e.WorkerPID != pid {
					t.Fatalf("worker_pid %d, the app says its pid is %d: %s", e.WorkerPID, pid, line)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log %s does not show the request:\n%s", logFile, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
