//go:build linux

// sched.go: the scheduling policy of the worker processes.

package pyrunner

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setNormalSched puts process pid (its only thread, just after it started) under the normal
// policy (SCHED_OTHER, sched(7)), keeping its nice value: with Options.NormalSched the gateway
// runs under SCHED_BATCH, which its children inherit, and the app is to run as it would
// anywhere else.
func setNormalSched(pid int) error {
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr: %w", err)
	}
	attr.Policy = unix.SCHED_NORMAL
	if err := unix.SchedSetAttr(pid, attr, 0); err != nil {
		return fmt.Errorf("sched_setattr: %w", err)
	}
	return nil
}
