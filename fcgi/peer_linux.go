// This file holds peerGone for Linux: whether the web server closed a unix socket connection
// both ways, rather than only its sending side.

package fcgi

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the web server has closed rwc both ways, once its input has ended:
// on a unix socket, the peer's close() leaves POLLHUP on this end, which its shutdown(SHUT_WR)
// does not. Over TCP the two look the same (a FIN) until a write meets the peer's reset, so a
// TCP connection is never known to be gone here.
func peerGone(rwc io.ReadWriteCloser) bool {
	uc, ok := rwc.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd)}} // no events asked: POLLHUP is always reported
		if n, err := unix.Poll(fds, 0); err == nil && n == 1 {
			gone = fds[0].Revents&unix.POLLHUP != 0
		}
	})
	return gone
}
