//go:build linux

// channel.go: the gateway's end of a worker's channel: two pipes, in the runtime's poller.

package pyrunner

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for each pipe of a channel (F_SETPIPE_SZ; the default is
// 64 KiB, an unprivileged process may go up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
// A typical response or request then moves in one read. Best effort: a refusal (the user's
// pipe quota) keeps the default.
const pipeSize = 256 << 10

// channel is the gateway's end of one worker channel (PROTOCOL.md, "The channel"): the read
// end of the pipe the worker writes its frames to, and the write end of the pipe it reads
// requests from. Both are non-blocking and wait in the runtime's poller, so that deadlines
// apply to them. Its owner goroutine (owner.go) alone reads and writes it.
//
// Why pipes, not a socketpair: reading from a unix socket frees the sender's buffer space,
// and the kernel then wakes every task sleeping on the sender's socket, including a worker
// blocked waiting for its next request. Every response cost the worker a spurious wake-up,
// and the gateway's poller a spurious EPOLLOUT; a pipe keeps readers and writers on separate
// wait queues. Measured on the 2-core development VM, a Python ping-pong of 500 and 100 bytes
// used 24 µs of CPU per round trip on each side over a socketpair and 13 µs over two pipes.
type channel struct {
	r, w          *os.File  // from the worker, to the worker
	capacity      int       // bytes the pipe to the worker holds (F_GETPIPE_SZ)
	writeDeadline time.Time // the write deadline set on w
}

// newChannel makes a channel's two pipes: the gateway's ends as a *channel, the worker's ends
// (read requests, write frames) as blocking files to pass to it.
func newChannel() (c *channel, childR, childW *os.File, err error) {
	var toWorker, fromWorker [2]int
	if err := unix.Pipe2(toWorker[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, nil, fmt.Errorf("pipe: %w", err)
	}
	if err := unix.Pipe2(fromWorker[:], unix.O_CLOEXEC); err != nil {
		unix.Close(toWorker[0])
		unix.Close(toWorker[1])
		return nil, nil, nil, fmt.Errorf("pipe: %w", err)
	}
	for _, fd := range []int{toWorker[1], fromWorker[0]} {
		unix.SetNonblock(fd, true) // os.NewFile makes a non-blocking descriptor pollable
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
	return c, childR, childW, nil
}

// Read reads what the worker sent: io.EOF once it closed its end, an error wrapping
// os.ErrDeadlineExceeded past the read deadline.
func (c *channel) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("read channel: %w", err)
	}
	return n, err
}

// Write writes all of b to the worker, waiting while the pipe is full.
func (c *channel) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err != nil {
		return n, fmt.Errorf("write channel: %w", err)
	}
	return n, nil
}

// SetReadDeadline bounds the reads from the worker (the owner's deadlines: owner.go).
func (c *channel) SetReadDeadline(t time.Time) error { return c.r.SetReadDeadline(t) }

// SetWriteDeadline bounds the writes to the worker; setting the one already set costs nothing
// (most writes need none: no runtime timer is armed for them).
func (c *channel) SetWriteDeadline(t time.Time) error {
	if t.Equal(c.writeDeadline) {
		return nil
	}
	c.writeDeadline = t
	return c.w.SetWriteDeadline(t)
}

// CloseWrite closes the pipe to the worker: it sees the end of its requests and exits when
// idle, while what it still sends can be read.
func (c *channel) CloseWrite() error { return c.w.Close() }

// Close closes both ends; safe to call more than once.
func (c *channel) Close() error {
	c.w.Close()
	return c.r.Close()
}
