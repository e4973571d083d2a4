//go:build !linux

package pyrunner

// The worker pool needs Linux: pipes sized with F_SETPIPE_SZ, a memfd for each worker's
// cancel board, Pdeathsig so that no worker outlives the gateway, /proc for memory limits.
// Built for another system, this undefined name is the error the compiler reports.
var _ = pyrunner_runs_on_linux_only
