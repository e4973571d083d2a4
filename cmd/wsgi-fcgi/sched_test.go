package main

import (
	"runtime"
	"sync"
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
func policies(t *testing.T) map[int]int {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	n := map[int]int{}
	for _, tid := range tids {
		if p, err := schedPolicy(tid); err == nil {
			n[p]++
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
