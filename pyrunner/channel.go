// channel.go: the gateway's end of a worker's channel: two pipes, read and written with raw
// system calls.

package pyrunner

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for each pipe of a channel (F_SETPIPE_SZ; the default is
// 64 KiB, an unprivileged process may go up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
// A typical response or request then moves in one read. Best effort: a refusal (the user's
// pipe quota) keeps the default.
const pipeSize = 256 << 10

// channel is the gateway's end of one worker channel (PROTOCOL.md, "The channel"): the read
// end of the pipe the worker writes its frames to, and the write end of the pipe it reads
// requests from. Both are non-blocking and wait in the runtime's poller.
//
// Why pipes, not a socketpair: reading from a unix socket frees the sender's buffer space,
// and the kernel then wakes every task sleeping on the sender's socket, including a worker
// blocked waiting for its next request. Every response cost the worker a spurious wake-up,
// and the gateway's poller a spurious EPOLLOUT; a pipe keeps readers and writers on separate
// wait queues. Measured on the 2-core development VM, a Python ping-pong of 500 and 100 bytes
// used 24 µs of CPU per round trip on each side over a socketpair and 13 µs over two pipes.
//
// Why raw system calls: see fcgi/rawconn.go. A read or write of a non-blocking pipe never
// blocks, so it skips the scheduler's system call bookkeeping, which would wake the runtime's
// monitor thread after every idle moment.
type channel struct {
	r, w     *os.File // from the worker, to the worker
	rr, wr   syscall.RawConn
	capacity int // bytes the pipe to the worker holds (F_GETPIPE_SZ)

	// The pending call's arguments and results: the callbacks given to rr and wr are method
	// values made once, not closures allocated per call. One goroutine at a time reads and
	// writes a channel (the one running its request).
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	rfn    func(fd uintptr) bool
	wbuf   []byte
	wn     int
	werrno syscall.Errno
	wfn    func(fd uintptr) bool
}

// newChannel makes a channel's two pipes: the gateway's ends as a *channel, the worker's ends
// (read requests, write frames) as blocking files to pass to it.
func newChannel() (c *channel, childR, childW *os.File, err error) {
	var toWorker, fromWorker [2]int
	if err := syscall.Pipe2(toWorker[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, nil, fmt.Errorf("pipe: %w", err)
	}
	if err := syscall.Pipe2(fromWorker[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(toWorker[0])
		syscall.Close(toWorker[1])
		return nil, nil, nil, fmt.Errorf("pipe: %w", err)
	}
	for _, fd := range []int{toWorker[1], fromWorker[0]} {
		syscall.SetNonblock(fd, true) // os.NewFile makes a non-blocking descriptor pollable
		unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, pipeSize)
	}
	capacity, err := unix.FcntlInt(uintptr(toWorker[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		capacity = 64 << 10 // the kernel's default
	}
	c = &channel{
		r:        os.NewFile(uintptr(fromWorker[0]), "wsgi-fcgi-channel-from-worker"),
		w:        os.NewFile(uintptr(toWorker[1]), "wsgi-fcgi-channel-to-worker"),
		capacity: capacity,
	}
	childR = os.NewFile(uintptr(toWorker[0]), "wsgi-fcgi-channel-worker-reads")
	childW = os.NewFile(uintptr(fromWorker[1]), "wsgi-fcgi-channel-worker-writes")
	if c.rr, err = c.r.SyscallConn(); err == nil {
		c.wr, err = c.w.SyscallConn()
	}
	if err != nil {
		c.Close()
		childR.Close()
		childW.Close()
		return nil, nil, nil, fmt.Errorf("channel: %w", err)
	}
	c.rfn, c.wfn = c.doRead, c.doWrite
	return c, childR, childW, nil
}

func (c *channel) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller, then try again
		}
		c.rn, c.rerrno = int(n), e
		return true
	}
}

// Read reads what the worker sent: io.EOF once it closed its end, os.ErrDeadlineExceeded (wrapped)
// past the read deadline.
func (c *channel) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerrno = b, 0, 0
	err := c.rr.Read(c.rfn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, fmt.Errorf("read channel: %w", err)
	case c.rerrno != 0:
		return 0, fmt.Errorf("read channel: %w", c.rerrno)
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *channel) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the pipe is full: wait until the worker reads
		default:
			c.werrno = e // EPIPE: the worker is gone
			return true
		}
	}
	return true
}

// Write writes all of b to the worker, waiting while the pipe is full.
func (c *channel) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werrno = b, 0, 0
	err := c.wr.Write(c.wfn)
	n := c.wn
	c.wbuf = nil
	if err == nil && c.werrno != 0 {
		err = c.werrno
	}
	if err != nil {
		return n, fmt.Errorf("write channel: %w", err)
	}
	return n, nil
}

// SetReadDeadline bounds the reads from the worker (the owner's deadlines: owner.go).
func (c *channel) SetReadDeadline(t time.Time) error { return c.r.SetReadDeadline(t) }

// SetWriteDeadline bounds the writes to the worker.
func (c *channel) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// CloseWrite closes the pipe to the worker: it sees the end of its requests and exits when
// idle, while what it still sends can be read.
func (c *channel) CloseWrite() error { return c.w.Close() }

// Close closes both ends; safe to call more than once.
func (c *channel) Close() error {
	c.w.Close()
	return c.r.Close()
}
