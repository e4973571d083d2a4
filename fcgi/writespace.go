// writespace.go: keeping a unix socket's write-space wake-ups away from the gateway.

package fcgi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// Write-space wake-ups.
//
// The runtime's poller registers every socket for both directions (EPOLLIN|EPOLLOUT,
// edge-triggered). A unix stream socket wakes the pollers of its sending side with EPOLLOUT
// each time its peer reads from it (the kernel's unix_write_space runs for every buffer the
// reader consumes, however empty the socket is). So the web server reading each response
// woke the gateway's poller thread, with nothing waiting to write. On a kept connection that
// is one wake-up per request. Measured on the 2-core development VM with nginx, one kept
// connection, the hello app, everything on one CPU (perf sched): nginx's read of each
// response woke the gateway (perf's sched_wakeup stacks: recvfrom, unix_write_space,
// ep_poll_callback), and the gateway ran 8 µs for it. Without those wake-ups a request took
// 111-117 µs, against 129-134 µs with them (6 runs of each, alternated).
//
// So once a unix connection is known to be kept (its first FCGI_KEEP_CONN request), and
// while fewer than maxQuietConns connections are open, its registration in the runtime's
// epoll set is changed (EPOLL_CTL_MOD) to leave EPOLLOUT out, with the same data the runtime
// gave it, read from /proc/self/fdinfo. A write that finds the socket buffer full puts
// EPOLLOUT back before it waits (the change re-checks the socket and queues the event at once
// if there is room already), and takes it out again once it is done. Why this is safe:
//   - The changes happen inside the descriptor's RawConn callbacks, which hold it open: its
//     number cannot be closed and reused by another socket meanwhile.
//   - The runtime only adds and deletes registrations, never changes one; the data (its
//     pointer to the descriptor's poll state) is passed back unchanged.
//   - Anything not as expected (no /proc, the descriptor not found, another format) leaves
//     the runtime's registration as it is: the connection only keeps its wake-ups.
//
// TCP sockets do not need it: they signal write space only to a writer that found the
// buffer full.

// maxQuietConns: a connection accepted while this many are open keeps its write-space
// wake-ups. Finding a connection's registration reads a line per descriptor the runtime
// polls, and a gateway that busy seldom sleeps between two events anyway.
const maxQuietConns = 256

// epollOut and epollET are EPOLLOUT and EPOLLET as the kernel's unsigned event mask.
const (
	epollOut = uint32(syscall.EPOLLOUT)
	epollET  = uint32(1) << 31
)

// runtimePoller finds, once per server, the epoll descriptor of the runtime's poller.
type runtimePoller struct {
	mu   sync.Mutex
	epfd int // 0: not looked for yet; -1: not found
}

// registration is a descriptor's entry in the runtime's epoll set, as quietWriteSpace found
// it.
type registration struct {
	epfd   int
	events uint32 // as registered, EPOLLOUT included
	data   uint64 // the runtime's, passed back unchanged
}

// find returns fd's registration in the runtime's epoll set.
func (p *runtimePoller) find(fd int) (registration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epfd > 0 {
		return readRegistration(p.epfd, fd)
	}
	if p.epfd < 0 {
		return registration{}, fmt.Errorf("the runtime's epoll descriptor was not found")
	}
	p.epfd = -1
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return registration{}, err
	}
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		epfd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if reg, err := readRegistration(epfd, fd); err == nil {
			p.epfd = epfd
			return reg, nil
		}
	}
	return registration{}, fmt.Errorf("descriptor %d is in no epoll set", fd)
}

// readRegistration reads fd's entry in epoll set epfd from /proc/self/fdinfo.
func readRegistration(epfd, fd int) (registration, error) {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(epfd))
	if err != nil {
		return registration{}, err
	}
	defer f.Close()
	reg, err := scanRegistration(f, fd)
	reg.epfd = epfd
	return reg, err
}

// scanRegistration finds fd's entry in an epoll descriptor's fdinfo, a line per registered
// descriptor: "tfd: %8d events: %8x data: %16llx ...". It reads a line at a time, so a set
// of many descriptors costs no memory. The runtime's poller registers edge-triggered: an
// entry that is not is someone else's.
func scanRegistration(r io.Reader, fd int) (registration, error) {
	br := bufio.NewReaderSize(r, 4096)
	want := []byte(fmt.Sprintf("tfd: %8d ", fd))
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, want) {
			return parseRegistration(bytes.TrimSpace(line))
		}
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // not a line of an epoll set's: skip it
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil {
			return registration{}, fmt.Errorf("descriptor %d not in the epoll set", fd)
		}
	}
}

// parseRegistration parses one fdinfo line of an epoll set.
func parseRegistration(line []byte) (registration, error) {
	f := bytes.Fields(line)
	if len(f) < 6 || string(f[2]) != "events:" || string(f[4]) != "data:" {
		return registration{}, fmt.Errorf("epoll entry %q: not tfd, events, data", line)
	}
	events, err := strconv.ParseUint(string(f[3]), 16, 32)
	if err != nil {
		return registration{}, fmt.Errorf("epoll entry %q: %w", line, err)
	}
	data, err := strconv.ParseUint(string(f[5]), 16, 64)
	if err != nil {
		return registration{}, fmt.Errorf("epoll entry %q: %w", line, err)
	}
	if uint32(events)&epollET == 0 {
		return registration{}, fmt.Errorf("epoll entry %q is not edge-triggered", line)
	}
	return registration{events: uint32(events), data: data}, nil
}

// set registers fd with reg's events, with or without EPOLLOUT.
func (reg registration) set(fd int, out bool) error {
	ev := syscall.EpollEvent{Events: reg.events &^ epollOut}
	if out {
		ev.Events |= epollOut
	}
	// The kernel's struct packs the 64-bit data right after the mask; syscall.EpollEvent
	// spells it as Fd and Pad.
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = reg.data
	return syscall.EpollCtl(reg.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
}
