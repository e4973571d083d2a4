//go:build !linux

// unsupported.go: the command built for a system other than Linux, where the worker pool
// cannot run (doc.go): it says so and exits.

package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "wsgi-fcgi: runs on Linux only, not on %s: its worker pool needs Linux (pipes, PR_SET_PDEATHSIG, per-thread scheduling)\n", runtime.GOOS)
	os.Exit(1)
}
