//go:build integration

package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// Fields of /proc/PID/task/TID/stat (proc(5)).
const (
	statNice   = 19
	statPolicy = 41 // 0 normal, 3 batch
)

// threadsByStatField counts the threads of pid by the value of a numeric field of their
// /proc stat line (numbered from 1, as in proc(5)).
func threadsByStatField(t *testing.T, pid, field int) map[int]int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := map[int]int{}
	for _, e := range entries {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		if err != nil {
			continue // the thread has exited
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3
		v, err := strconv.Atoi(f[field-3])
		if err != nil {
			t.Fatalf("field %d of %d/%s: %v", field, pid, e.Name(), err)
		}
		n[v]++
	}
	return n
}

// TestSchedBatch: by default the gateway's threads keep the normal policy; with --sched-batch
// (or WSGI_FCGI_SCHED_BATCH) they run under SCHED_BATCH, and the Python processes (a preload
// master and its workers too) under the normal policy.
func TestSchedBatch(t *testing.T) {
	const normal, batch = 0, 3
	cases := []struct {
		name    string
		args    []string
		env     []string
		gateway int
	}{
		{name: "default", gateway: normal},
		{name: "on", args: []string{"--sched-batch"}, gateway: batch},
		{name: "on, preload", args: []string{"--sched-batch", "--preload"}, gateway: batch},
		{name: "on from the environment", env: []string{"WSGI_FCGI_SCHED_BATCH=true"}, gateway: batch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkThreads(t, gatewayConfig{workers: 2, args: tc.args, env: tc.env}, statPolicy, tc.gateway, normal)
		})
	}
}

// checkThreads starts a gateway with cfg and checks a numeric field of every thread's /proc
// stat line (numbered as in proc(5)): gateway in the gateway's threads, python in those of
// every Python process under it (a preload master and its workers too).
func checkThreads(t *testing.T, cfg gatewayConfig, field, gateway, python int) {
	t.Helper()
	g := startGateway(t, cfg)
	g.mustFcgiGet(t, "/pid", "")
	if got := threadsByStatField(t, g.pid(), field); len(got) != 1 || got[gateway] == 0 {
		t.Errorf("gateway threads by field %d: %v, want all %d", field, got, gateway)
	}
	procs := testkit.Descendants(g.pid())
	if len(procs) < 2 {
		t.Fatalf("want the Python processes, found %v", procs)
	}
	for _, p := range procs {
		if got := threadsByStatField(t, p.PID, field); len(got) != 1 || got[python] == 0 {
			t.Errorf("python pid %d threads by field %d: %v, want all %d", p.PID, field, got, python)
		}
	}
}

// TestPriority: --priority gives every thread of the gateway that nice value, and every Python
// process (a preload master and its workers too) the one the gateway started with; unset,
// the gateway keeps its own. Lowering a nice value needs root (CAP_SYS_NICE).
func TestPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a nice value below the one started with needs root")
	}
	own := threadsByStatField(t, os.Getpid(), statNice)
	start := -100
	for v := range own {
		start = v
	}
	if len(own) != 1 || start-5 < -20 {
		t.Skipf("test process threads by nice value: %v; want one value above -15", own)
	}
	cases := []struct {
		name    string
		args    []string
		gateway int
	}{
		{name: "unset", gateway: start},
		{name: "raised", args: []string{fmt.Sprintf("--priority=%d", start-5)}, gateway: start - 5},
		{name: "raised, preload", args: []string{fmt.Sprintf("--priority=%d", start-5), "--preload"}, gateway: start - 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkThreads(t, gatewayConfig{workers: 2, args: tc.args}, statNice, tc.gateway, start)
		})
	}
}
