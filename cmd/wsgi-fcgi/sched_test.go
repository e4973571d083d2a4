//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests of this file change the scheduling policy and the nice value of every thread of
// the process, which no later test could undo without privileges. So each case runs in a
// child: the test binary again, running TestSchedHelper with the case in schedHelperEnv.
const schedHelperEnv = "WSGI_FCGI_TEST_SCHED_HELPER"

// inChild runs TestSchedHelper in a new test process with mode and fails t with the child's
// output if the child fails.
func inChild(t *testing.T, mode string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSchedHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), schedHelperEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %q: %v\n%s", mode, err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestSchedHelper")) {
		t.Fatalf("child %q did not run the test:\n%s", mode, out)
	}
}

// TestSchedHelper is the child of the tests below; it does nothing unless started by inChild.
func TestSchedHelper(t *testing.T) {
	mode := os.Getenv(schedHelperEnv)
	switch {
	case mode == "":
		t.Skip("run by inChild")
	case mode == "batch-from-normal":
		checkBatchScheduling(t, unix.SCHED_NORMAL, true, unix.SCHED_BATCH)
	case mode == "batch-from-idle":
		checkBatchScheduling(t, unix.SCHED_IDLE, false, unix.SCHED_IDLE)
	default:
		checkGatewayNice(t, mode)
	}
}

// TestSetBatchScheduling: from the normal policy, every thread goes under SCHED_BATCH, and so
// do threads started later; a process started under another policy is left as it is.
func TestSetBatchScheduling(t *testing.T) {
	for _, mode := range []string{"batch-from-normal", "batch-from-idle"} {
		t.Run(mode, func(t *testing.T) { inChild(t, mode) })
	}
}

func checkBatchScheduling(t *testing.T, from int, wantChanged bool, want int) {
	for _, tid := range mustThreadIDs(t) {
		if err := setSchedPolicy(tid, from); err != nil {
			t.Fatalf("policy %d for thread %d: %v", from, tid, err)
		}
	}
	changed, err := setBatchScheduling()
	if err != nil || changed != wantChanged {
		t.Fatalf("setBatchScheduling() = %v, %v; want %v, nil", changed, err, wantChanged)
	}
	startThreads()
	if got := countThreads(t, schedPolicy); len(got) != 1 || got[want] == 0 {
		t.Errorf("threads by policy: %v, want all %d", got, want)
	}
}

// startThreads makes the runtime start more threads: they inherit the policy of the thread
// that starts them.
func startThreads() {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // keeps this thread busy: others are started
			defer runtime.UnlockOSThread()
			for range 1000 {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
}

// TestSetGatewayNice: every thread gets the nice value, and the one the process started with is
// reported; asking for the value it already has changes nothing. Raising a nice value needs no
// privilege.
func TestSetGatewayNice(t *testing.T) {
	start, err := niceOf(0)
	if err != nil {
		t.Fatal(err)
	}
	if start >= 19 {
		t.Skipf("already at nice %d: no higher value to set", start)
	}
	inChild(t, fmt.Sprintf("nice:%d", start))
}

func checkGatewayNice(t *testing.T, mode string) {
	var start int
	if _, err := fmt.Sscanf(mode, "nice:%d", &start); err != nil {
		t.Fatalf("mode %q: %v", mode, err)
	}
	cases := []struct {
		name    string
		nice    int
		changed bool
	}{
		{name: "one step nicer", nice: start + 1, changed: true},
		{name: "the same again", nice: start + 1, changed: false},
	}
	for _, tc := range cases {
		started, changed, err := setGatewayNice(tc.nice)
		if err != nil || changed != tc.changed {
			t.Fatalf("%s: setGatewayNice(%d) = %d, %v, %v; want changed %v", tc.name, tc.nice, started, changed, err, tc.changed)
		}
		if tc.changed && started != start {
			t.Errorf("%s: started = %d, want %d", tc.name, started, start)
		}
		if got := countThreads(t, niceOf); len(got) != 1 || got[tc.nice] == 0 {
			t.Errorf("%s: threads by nice value: %v, want all %d", tc.name, got, tc.nice)
		}
	}
}

// countThreads counts the threads of the process by what get says of each; a thread that
// exits meanwhile is skipped.
func countThreads(t *testing.T, get func(tid int) (int, error)) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, tid := range mustThreadIDs(t) {
		if v, err := get(tid); err == nil {
			n[v]++
		}
	}
	return n
}

// mustThreadIDs is threadIDs, failing the test on an error.
func mustThreadIDs(t *testing.T) []int {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	return tids
}
