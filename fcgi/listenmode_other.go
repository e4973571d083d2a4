//go:build !unix

package fcgi

import (
	"os"
	"syscall"
)

// presetMode returns no Control: elsewhere than on Unix a socket file's mode is left as made.
func presetMode(os.FileMode) func(network, address string, c syscall.RawConn) error { return nil }
