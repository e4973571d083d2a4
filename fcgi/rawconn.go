// rawconn.go: reads and writes of a connection's socket without the scheduler's system call
// bookkeeping.

package fcgi

import (
	"io"
	"iter"
	"net"
	"sync"
	"sync/atomic"
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
// monitor, per request (see README.md, "Performance"). A raw system call skips both. Deadlines
// and the poller's readiness work exactly as for the wrapped conn, through its
// syscall.RawConn; reads keep one RawConn.Read open across calls (see pump), and Close
// shuts the socket down while they do.
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	// The pending call's arguments and results, so that the callbacks handed to rc are made
	// once, not a closure allocated per call. A read (the read loop) and a write
	// (a handler) may run at the same time, so each has its own; writes are serialised by
	// the conn's write mutex. Every write is a writev: Write is one of a single buffer.
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	rerr   error // the poller's
	eagain int   // reads that found nothing: for the tests

	// replyDue: the caller reads between records while a request is in progress, which will
	// still write to the socket; set by the connection's read loop around such a read (see
	// pump). waitAllowed: the socket is a unix socket.
	replyDue    bool
	waitAllowed bool

	// The pump (see pump): next and stop from iter.Pull, made by the first Read.
	next func() (struct{}, bool)
	stop func()

	// Between the first Read and endReads the pump may hold the descriptor's read lock, and
	// Close shuts the socket down (shut) and leaves the descriptor's close to endReads. shut
	// changes under mu, and the pump reads it without: once it is set, never wait first.
	mu      sync.Mutex
	pumping bool
	shut    atomic.Bool

	// Write-space wake-ups (writespace.go), under the conn's write lock: quietTried once
	// quietWriteSpace ran, quiet when it took EPOLLOUT out of reg, outArmed while a write
	// that found the buffer full has put it back.
	quietTried, quiet, outArmed bool
	reg                         registration

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
	_, unix := c.(*net.UnixConn)
	r := &rawConn{Conn: c, rc: rc, waitAllowed: unix}
	r.wvfn = r.doWritev
	return r
}

// pump is the sequence behind Read (iter.Pull runs it as a coroutine): one
// syscall.RawConn.Read held open across the caller's reads, so that the poller's readiness
// survives between them.
//
// Why: every RawConn.Read begins by forgetting any readiness the poller recorded (the runtime's
// poller is edge-triggered, and prepareRead resets the descriptor's read state), so it must
// try the read before it may wait. On a keep-alive connection the web server sends the next
// request only after the response, so that first try returned EAGAIN once per request: one
// system call in five of the gateway's on the hello path. Held open, the callback knows what
// the last read did. A read that returned less than it asked for emptied the socket (a stream
// socket's read takes everything queued, up to the buffer's size), and data that arrives later
// raises a new edge, which the poller keeps for the wait: the next read may wait first.
//
// The end of the stream is the exception: it raises no edge of its own when it comes together
// with data, so a read that waits first would miss it. The pump waits first only when the
// end, had it come, cannot stay unseen:
//   - the socket is a unix socket: a peer that only half-closed raises an edge again when it
//     closes for good (a TCP peer does not);
//   - the caller is between records, and a request is in progress (replyDue): its answer is
//     still to be written, and a write to a closed peer fails, which closes the connection
//     from this side and raises an edge (Close);
//   - the connection is not closed from this side already (shut): then no write is left to
//     fail, and the edge of that close may have come together with the last data read;
//   - and the last read emptied the socket.
//
// That is the read after each request on a kept connection, the one that returned EAGAIN.
// Every other read is tried at once: inside a record a web server that sent part of it and
// closed gets "truncated record"; between requests one that closed is seen at once.
//
// The callback holds the descriptor's read lock while it is suspended in yield, between the
// caller's reads, so Close must not wait for it (see Close).
func (r *rawConn) pump(yield func(struct{}) bool) {
	for {
		stopped := false
		err := r.rc.Read(func(fd uintptr) bool {
			for {
				n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
				switch e {
				case syscall.EINTR:
					continue
				case syscall.EAGAIN:
					r.eagain++
					return false // wait in the poller, then try again
				}
				r.rn, r.rerrno = int(n), e
				emptied := e == 0 && n > 0 && int(n) < len(r.rbuf)
				if !yield(struct{}{}) {
					stopped = true
					return true
				}
				if emptied && r.replyDue && r.waitAllowed && !r.shut.Load() {
					return false // wait for the next edge before reading
				}
			}
		})
		if stopped {
			return
		}
		// The poller's error (deadline, closed): the caller gets it, and a later Read starts
		// a new RawConn.Read, which tries the descriptor first.
		r.rerr = err
		if !yield(struct{}{}) {
			return
		}
	}
}

// Read reads like net.Conn's Read: io.EOF at the end, a deadline error past the deadline.
// One goroutine reads (the connection's read loop); it calls endReads when it is done.
func (r *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if r.next == nil {
		r.mu.Lock()
		r.pumping = true
		r.mu.Unlock()
		r.next, r.stop = iter.Pull(r.pump)
	}
	r.rbuf, r.rn, r.rerrno, r.rerr = b, 0, 0, nil
	_, ok := r.next()
	r.rbuf = nil
	switch {
	case !ok:
		return 0, &net.OpError{Op: "read", Net: "raw", Addr: r.RemoteAddr(), Err: net.ErrClosed}
	case r.rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "raw", Addr: r.RemoteAddr(), Err: r.rerr}
	case r.rerrno != 0:
		return 0, &net.OpError{Op: "read", Net: "raw", Addr: r.RemoteAddr(), Err: r.rerrno}
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

// endReads ends the reads: the pump stops and releases the descriptor's read lock, and a
// Close that came while it was held closes the descriptor now. The reading goroutine calls it
// once it reads no more.
func (r *rawConn) endReads() {
	r.mu.Lock()
	closeNow := r.pumping && r.shut.Load()
	r.pumping = false
	r.mu.Unlock()
	if r.stop != nil {
		r.stop()
	}
	if closeNow {
		r.Conn.Close()
	}
}

// Close closes the connection. While reads are running, net.Conn's Close would wait for the
// pump to release the read lock, which only the reading goroutine can make it do, and that
// goroutine may be the caller, or may be waiting for the caller. So Close shuts the socket
// down instead: the web server sees the connection closed now, the pump's next read returns
// end of file, and endReads closes the descriptor.
func (r *rawConn) Close() error {
	r.mu.Lock()
	if !r.pumping {
		r.mu.Unlock()
		return r.Conn.Close()
	}
	if r.shut.Load() {
		r.mu.Unlock()
		return net.ErrClosed
	}
	r.shut.Store(true) // before the shutdown's edge: a pump that saw false waits and gets it
	r.mu.Unlock()
	var err error
	if cerr := r.rc.Control(func(fd uintptr) { err = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) }); cerr != nil {
		return cerr
	}
	if err == syscall.ENOTCONN { // the peer is gone already: reads see the end anyway
		err = nil
	}
	return err
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
			iov := syscall.Iovec{Base: &b[0]}
			iov.SetLen(len(b)) // Len is 32 bits wide on 32-bit ports
			r.iov = append(r.iov, iov)
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
			if r.quiet && !r.outArmed {
				// Wait for room: the runtime's poller must hear of it (writespace.go).
				if err := r.reg.set(int(fd), true); err != nil {
					r.werrno = syscall.EIO
					if errno, ok := err.(syscall.Errno); ok {
						r.werrno = errno
					}
					return true
				}
				r.outArmed = true
			}
			return false
		default:
			r.werrno = e
			return true
		}
	}
	return true
}

// quietWriteSpace takes EPOLLOUT out of a unix connection's registration in the runtime's
// poller, once (writespace.go). The caller holds the conn's write lock.
func (r *rawConn) quietWriteSpace(p *runtimePoller) {
	if r.quietTried || !r.waitAllowed {
		return
	}
	r.quietTried = true
	r.rc.Control(func(fd uintptr) {
		reg, err := p.find(int(fd))
		if err == nil && reg.set(int(fd), false) == nil {
			r.reg, r.quiet = reg, true
		}
	})
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
	if r.outArmed {
		r.outArmed = false
		r.rc.Control(func(fd uintptr) { r.reg.set(int(fd), false) })
	}
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
