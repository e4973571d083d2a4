//go:build linux

// sched.go: the gateway's scheduling policy (--sched-batch) and priority (--priority), both
// off unless asked for (sched(7), setpriority(2)).

package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setBatchScheduling puts every thread of the gateway under SCHED_BATCH (--sched-batch, off by
// default), when all of them are under the normal policy; a gateway started under another
// policy (chrt) is left as it is. It reports whether it changed anything: then the workers are
// put back under the normal policy when they start (pyrunner.Options.NormalSched), as
// SCHED_BATCH is inherited.
//
// A SCHED_BATCH thread is scheduled as any other, with the same share of the CPU, but its
// wake-ups do not preempt the task running on the CPU it wakes on: it runs when that task
// blocks or its time slice ends. The gateway is woken by every record a web server or a worker
// writes; preempting the worker that has just written an END costs that worker its warm caches
// for a few microseconds of relaying. Measured on a 2-core VM with Flask, 16 connections, two
// requests sent ahead: 25–30 against 36–44 µs of gateway CPU per request (see
// docs/performance.md). When a CPU is idle the woken thread runs at once: a lone request's
// latency does not change.
//
// Threads the runtime starts later inherit the policy of the thread that starts them
// (forEachThread).
func setBatchScheduling() (bool, error) {
	if policy, err := schedPolicy(0); err != nil {
		return false, fmt.Errorf("scheduling policy: %w", err)
	} else if policy != unix.SCHED_NORMAL && policy != unix.SCHED_BATCH {
		return false, nil // started under a policy of the user's choosing
	}
	return forEachThread(func(tid int) (bool, error) {
		if policy, err := schedPolicy(tid); err != nil || policy != unix.SCHED_NORMAL {
			return false, nil // exited, already batch, or of the user's choosing
		}
		if err := setSchedPolicy(tid, unix.SCHED_BATCH); err != nil {
			return false, fmt.Errorf("SCHED_BATCH for thread %d: %w", tid, err)
		}
		return true, nil
	})
}

// setGatewayNice gives every thread of the gateway the nice value nice (--priority) and
// returns the one the process started with, which the workers are given back
// (pyrunner.Options.WorkerNice), as children inherit it. It reports whether it changed
// anything.
//
// On Linux the nice value is a thread's: setpriority(2) with PRIO_PROCESS and a thread id sets
// that thread alone. A value below the one started with needs CAP_SYS_NICE (root) or room
// under RLIMIT_NICE; without either, the first thread's EACCES/EPERM is returned and nothing
// has changed.
//
// Why a web server's priority is worth giving the gateway: it is the one process every request
// goes through twice (in and out), woken by every record, with a few microseconds of work
// each time. Sharing CPUs with the web server, it waits behind it in the run queue for its
// turn while the workers it would feed have nothing to do.
func setGatewayNice(nice int) (started int, changed bool, err error) {
	started, err = niceOf(0)
	if err != nil {
		return 0, false, err
	}
	changed, err = forEachThread(func(tid int) (bool, error) {
		cur, err := niceOf(tid)
		if err != nil || cur == nice {
			return false, nil // exited, or already set
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			return false, fmt.Errorf("nice %d for thread %d: %w", nice, tid, err)
		}
		return true, nil
	})
	return started, changed, err
}

// niceOf is the nice value of thread tid (0: the calling thread). The getpriority system call
// returns 20 minus it, so that no valid value looks like an error (getpriority(2), NOTES).
func niceOf(tid int) (int, error) {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, fmt.Errorf("nice value of thread %d: %w", tid, err)
	}
	return 20 - prio, nil
}

// forEachThread calls set for every thread of the process, in passes over /proc/self/task,
// until a pass changes none: a thread the runtime starts meanwhile inherits from the thread
// that starts it, which may not have been changed yet. set reports whether it changed the
// thread. It reports whether any thread changed. At most ten passes: the runtime starts a
// handful of threads, not a stream.
func forEachThread(set func(tid int) (bool, error)) (bool, error) {
	changedAny := false
	for pass := 0; pass < 10; pass++ {
		tids, err := threadIDs()
		if err != nil {
			return changedAny, err
		}
		changed := 0
		for _, tid := range tids {
			c, err := set(tid)
			if c {
				changed++
				changedAny = true
			}
			if err != nil {
				return changedAny, err
			}
		}
		if changed == 0 {
			return changedAny, nil
		}
	}
	return changedAny, nil
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

// schedPolicy is the scheduling policy of thread tid (sched_getattr(2)).
func schedPolicy(tid int) (int, error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, err
	}
	return int(attr.Policy), nil
}

// setSchedPolicy puts thread tid under policy, with everything else of its scheduling
// attributes (its nice value above all) as it was (sched_setattr(2)).
func setSchedPolicy(tid, policy int) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return err
	}
	attr.Policy = uint32(policy)
	return unix.SchedSetAttr(tid, attr, 0)
}
