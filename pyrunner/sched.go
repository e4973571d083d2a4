// sched.go: the scheduling policy of the worker processes.

package pyrunner

import (
	"syscall"
	"unsafe"
)

// schedNormal is SCHED_OTHER, Linux's default policy (sched(7)).
const schedNormal = 0

// setNormalSched puts process pid (its only thread, just after it started) under the normal
// policy: with Options.NormalSched the gateway runs under SCHED_BATCH, which its children
// inherit, and the app is to run as it would anywhere else.
func setNormalSched(pid int) error {
	var param struct{ priority int32 }
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(pid), schedNormal, uintptr(unsafe.Pointer(&param)))
	if errno != 0 {
		return errno
	}
	return nil
}
