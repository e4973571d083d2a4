//go:build unix

package fcgi

import (
	"os"
	"syscall"
)

// presetMode returns a net.ListenConfig Control that gives a unix socket, before it is bound,
// the permissions mode: Linux makes the socket file with the socket's own mode less the umask's.
func presetMode(mode os.FileMode) func(network, address string, c syscall.RawConn) error {
	return func(network, _ string, c syscall.RawConn) error {
		if network != "unix" {
			return nil
		}
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), uint32(mode)) }); cerr != nil {
			return cerr
		}
		return err
	}
}
