// sched.go: the gateway's scheduling policy (sched(7)).

package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Scheduling policies (sched(7)).
const (
	schedNormal = 0
	schedBatch  = 3
)

// setBatchScheduling puts every thread of the gateway under SCHED_BATCH, when all of them are
// under the normal policy; a gateway started under another policy (chrt) is left as it is. It
// reports whether it changed anything: then the workers are put back under the normal policy
// when they start (pyrunner.Options.NormalSched), as SCHED_BATCH is inherited.
//
// A SCHED_BATCH thread is scheduled as any other, with the same share of the CPU, but its
// wake-ups do not preempt the task running on the CPU it wakes on: it runs when that task
// blocks or its time slice ends. The gateway is woken by every record a web server or a worker
// writes; preempting the worker that has just written an END (and is going on with the next
// request, sent ahead) costs that worker its warm caches for a few microseconds of relaying.
// Waiting a little, the gateway relays several records at each wake-up. Measured on the 2-core
// development VM with Flask, 16 connections, two requests sent ahead: 25–30 against 36–44 µs
// of gateway CPU per request, and 12,100 against 9,500 requests a second (medians of three
// runs; see README, "Performance"). When a CPU is idle the woken
// thread runs at once, as before: a lone request's latency does not change.
//
// Threads the runtime starts later inherit the policy of the thread that starts them; passes
// over /proc/self/task repeat until one finds no thread left to change.
func setBatchScheduling() (bool, error) {
	for pass := 0; pass < 10; pass++ {
		tids, err := threadIDs()
		if err != nil {
			return pass > 0, err
		}
		changed := 0
		for _, tid := range tids {
			policy, err := schedPolicy(tid)
			if err != nil {
				continue // the thread has exited
			}
			switch policy {
			case schedBatch:
				continue
			case schedNormal:
			default:
				if pass == 0 {
					return false, nil // started under a policy of the user's choosing
				}
				continue
			}
			if err := setSchedPolicy(tid, schedBatch); err != nil {
				return pass > 0 || changed > 0, fmt.Errorf("SCHED_BATCH for thread %d: %w", tid, err)
			}
			changed++
		}
		if changed == 0 {
			return true, nil
		}
	}
	return true, nil
}

// threadIDs lists the threads of the process.
func threadIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// schedPolicy is sched_getscheduler(2) of thread tid.
func schedPolicy(tid int) (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// setSchedPolicy is sched_setscheduler(2) of thread tid, with priority 0 (the only one of the
// normal and batch policies).
func setSchedPolicy(tid, policy int) error {
	var param struct{ priority int32 }
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&param)))
	if errno != 0 {
		return errno
	}
	return nil
}
