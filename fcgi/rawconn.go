// rawconn.go: reads and writes of a connection's socket without the scheduler's system call
// bookkeeping.

package fcgi

import (
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// rawConn is a net.Conn whose Read, Write and writev go to its non-blocking socket with
// syscall.RawSyscall, waiting for readiness in the runtime's poller as the net package does.
//
// Why: a read or write of a non-blocking socket never blocks, but the ordinary path
// (syscall.Read) still enters and leaves the scheduler's "in system call" state, and on the
// way in it wakes the runtime's monitor thread whenever that thread is parked, which it is
// whenever the process went idle between requests. On a virtual machine where waking a thread
// costs several microseconds, that was one futex wake, and a burst of 20 µs sleeps by the
// monitor, per request (see README.md, "Performance"). A raw system call skips both. Deadlines,
// Close and the poller's readiness work exactly as for the wrapped conn, through its
// syscall.RawConn.
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	// The pending call's arguments and results, so that the callbacks handed to rc are method
	// values made once, not a closure allocated per call. A read (the read loop) and a write
	// (a handler) may run at the same time, so each has its own; writes are serialised by
	// the conn's write mutex. Every write is a writev: Write is one of a single buffer.
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	rfn    func(fd uintptr) bool

	wn     int
	werrno syscall.Errno
	iov    []syscall.Iovec
	wvfn   func(fd uintptr) bool
	wvbuf  [][]byte
	one    [1][]byte // Write's buffer list
}

// newRawConn wraps c when it exposes its descriptor (TCP and unix sockets do); otherwise c
// itself is returned.
func newRawConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{Conn: c, rc: rc}
	r.rfn, r.wvfn = r.doRead, r.doWritev
	return r
}

func (r *rawConn) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller, then try again
		}
		r.rn, r.rerrno = int(n), e
		return true
	}
}

// Read reads like net.Conn's Read: io.EOF at the end, a deadline error past the deadline.
func (r *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerrno = b, 0, 0
	err := r.rc.Read(r.rfn)
	r.rbuf = nil
	switch {
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "raw", Addr: r.RemoteAddr(), Err: err}
	case r.rerrno != 0:
		return 0, &net.OpError{Op: "read", Net: "raw", Addr: r.RemoteAddr(), Err: r.rerrno}
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

// Write writes all of b, waiting in the poller while the socket buffer is full.
func (r *rawConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.one[0] = b
	n, err := r.writev(r.one[:], "write")
	r.one[0] = nil
	return int(n), err
}

// maxIovecs bounds one writev; the kernel's limit (UIO_MAXIOV) is 1024.
const maxIovecs = 1024

func (r *rawConn) doWritev(fd uintptr) bool {
	for len(r.wvbuf) > 0 {
		r.iov = r.iov[:0]
		for _, b := range r.wvbuf {
			if len(b) == 0 {
				continue
			}
			if len(r.iov) == maxIovecs {
				break
			}
			r.iov = append(r.iov, syscall.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
		if len(r.iov) == 0 {
			r.wvbuf = r.wvbuf[:0]
			return true
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
		switch e {
		case 0:
			r.wn += int(n)
			consume(&r.wvbuf, int(n))
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werrno = e
			return true
		}
	}
	return true
}

// consume drops the first n bytes of *v.
func consume(v *[][]byte, n int) {
	for len(*v) > 0 && n >= len((*v)[0]) {
		n -= len((*v)[0])
		*v = (*v)[1:]
	}
	if len(*v) > 0 {
		(*v)[0] = (*v)[0][n:]
	}
}

// writeBuffers writes every buffer of v with writev; conn.writeBuffers calls it in place of
// net.Buffers' WriteTo. The slices of v are consumed as they are written.
func (r *rawConn) writeBuffers(v [][]byte) (int64, error) { return r.writev(v, "writev") }

// writev writes every buffer of v, consuming them, waiting in the poller while the socket
// buffer is full; op names the call in an error.
func (r *rawConn) writev(v [][]byte, op string) (int64, error) {
	r.wvbuf, r.wn, r.werrno = v, 0, 0
	err := r.rc.Write(r.wvfn)
	n := r.wn
	r.wvbuf = nil
	for i := range r.iov {
		r.iov[i] = syscall.Iovec{} // keep no buffer alive
	}
	if err == nil && r.werrno != 0 {
		err = r.werrno
	}
	if err != nil {
		return int64(n), &net.OpError{Op: op, Net: "raw", Addr: r.RemoteAddr(), Err: err}
	}
	return int64(n), nil
}

// CloseWrite half-closes the wrapped conn when it can.
func (r *rawConn) CloseWrite() error {
	if hc, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return r.Conn.Close()
}

// SetReadDeadline is the wrapped conn's (named so that the half-close path finds it).
func (r *rawConn) SetReadDeadline(t time.Time) error { return r.Conn.SetReadDeadline(t) }
