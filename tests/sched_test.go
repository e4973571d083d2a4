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

// schedPolicyOf counts the threads of pid by scheduling policy (field 41 of stat: 0 normal, 3
// batch).
func schedPolicyOf(t *testing.T, pid int) map[int]int { return threadsByStatField(t, pid, 41) }

// nicesOf counts the threads of pid by nice value (field 19 of stat).
func nicesOf(t *testing.T, pid int) map[int]int { return threadsByStatField(t, pid, 19) }

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

// TestSchedBatch: by default the gateway's threads run under SCHED_BATCH and the Python
// processes (a preload master and its workers too) under the normal policy; with
// --sched-batch=false everything stays normal.
func TestSchedBatch(t *testing.T) {
	const normal, batch = 0, 3
	cases := []struct {
		name    string
		args    []string
		gateway int
	}{
		{name: "default", gateway: batch},
		{name: "preload", args: []string{"--preload"}, gateway: batch},
		{name: "off", args: []string{"--sched-batch=false"}, gateway: normal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, gatewayConfig{workers: 2, args: tc.args})
			g.mustFcgiGet(t, "/pid", "")
			if got := schedPolicyOf(t, g.pid()); len(got) != 1 || got[tc.gateway] == 0 {
				t.Errorf("gateway threads by policy: %v, want all %d", got, tc.gateway)
			}
			procs := testkit.Descendants(g.pid())
			if len(procs) < 2 {
				t.Fatalf("want the Python processes, found %v", procs)
			}
			for _, p := range procs {
				if got := schedPolicyOf(t, p.PID); len(got) != 1 || got[normal] == 0 {
					t.Errorf("python pid %d threads by policy: %v, want all normal", p.PID, got)
				}
			}
		})
	}
}

// TestPriority: --priority gives every thread of the gateway that nice value, and every Python
// process (a preload master and its workers too) the one the gateway started with; unset,
// the gateway keeps its own. Lowering a nice value needs root (CAP_SYS_NICE).
func TestPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a nice value below the one started with needs root")
	}
	own := nicesOf(t, os.Getpid())
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
			g := startGateway(t, gatewayConfig{workers: 2, args: tc.args})
			g.mustFcgiGet(t, "/pid", "")
			if got := nicesOf(t, g.pid()); len(got) != 1 || got[tc.gateway] == 0 {
				t.Errorf("gateway threads by nice value: %v, want all %d", got, tc.gateway)
			}
			procs := testkit.Descendants(g.pid())
			if len(procs) < 2 {
				t.Fatalf("want the Python processes, found %v", procs)
			}
			for _, p := range procs {
				if got := nicesOf(t, p.PID); len(got) != 1 || got[start] == 0 {
					t.Errorf("python pid %d threads by nice value: %v, want all %d", p.PID, got, start)
				}
			}
		})
	}
}
