package main

import (
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// setAllThreads puts every thread of the test process under policy.
func setAllThreads(t *testing.T, policy int) {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		setSchedPolicy(tid, policy) // a thread may have exited meanwhile
	}
}

// policies counts the threads of the test process by policy.
func policies(t *testing.T) map[int]int { return countThreads(t, schedPolicy) }

// nices counts the threads of the test process by nice value.
func nices(t *testing.T) map[int]int { return countThreads(t, niceOf) }

// countThreads counts the threads of the test process by what get says of each; a thread
// that exits meanwhile is skipped.
func countThreads(t *testing.T, get func(tid int) (int, error)) map[int]int {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	n := map[int]int{}
	for _, tid := range tids {
		if v, err := get(tid); err == nil {
			n[v]++
		}
	}
	return n
}

// TestSetBatchScheduling: from the normal policy, every thread goes under SCHED_BATCH, and so
// do threads started later; a process started under another policy is left as it is.
func TestSetBatchScheduling(t *testing.T) {
	const schedIdle = 5
	cases := []struct {
		name    string
		from    int
		changed bool
		want    int
	}{
		{name: "normal: every thread batch", from: schedNormal, changed: true, want: schedBatch},
		{name: "idle (chrt -i): left alone", from: schedIdle, changed: false, want: schedIdle},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setAllThreads(t, tc.from)
			defer setAllThreads(t, schedNormal)
			changed, err := setBatchScheduling()
			if err != nil || changed != tc.changed {
				t.Fatalf("setBatchScheduling() = %v, %v; want %v, nil", changed, err, tc.changed)
			}
			// Threads the runtime starts now inherit the policy.
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
			got := policies(t)
			if got[tc.want] == 0 || len(got) != 1 {
				t.Errorf("threads by policy: %v, want all %d", got, tc.want)
			}
		})
	}
}

// TestSetGatewayNice: every thread gets the nice value and reports the one it started with;
// asking for the value it already has changes nothing. Raising a nice value needs no
// privilege; the test puts it back when it may (as root), else the test process ends nicer.
func TestSetGatewayNice(t *testing.T) {
	start, err := niceOf(0)
	if err != nil {
		t.Fatal(err)
	}
	if start >= 19 {
		t.Skipf("already at nice %d: no higher value to set", start)
	}
	defer func() {
		for tid := range mustThreadIDs(t) {
			syscall.Setpriority(syscall.PRIO_PROCESS, tid, start) // EACCES unless root: left nicer
		}
	}()
	cases := []struct {
		name    string
		nice    int
		changed bool
	}{
		{name: "one step nicer", nice: start + 1, changed: true},
		{name: "the same again", nice: start + 1, changed: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			started, changed, err := setGatewayNice(tc.nice)
			if err != nil || changed != tc.changed {
				t.Fatalf("setGatewayNice(%d) = %d, %v, %v; want changed %v", tc.nice, started, changed, err, tc.changed)
			}
			if tc.changed && started != start {
				t.Errorf("started = %d, want %d", started, start)
			}
			if got := nices(t); len(got) != 1 || got[tc.nice] == 0 {
				t.Errorf("threads by nice value: %v, want all %d", got, tc.nice)
			}
		})
	}
}

// mustThreadIDs is threadIDs as a set, failing the test on an error.
func mustThreadIDs(t *testing.T) map[int]bool {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[int]bool, len(tids))
	for _, tid := range tids {
		set[tid] = true
	}
	return set
}
