//go:build linux

// writespace_linux.go: the runtime's epoll registration of a connection, read and changed
// (writespace.go).

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
	// The kernel's 64-bit data follows the mask (packed on amd64, aligned to 8 bytes on most
	// other ports); syscall.EpollEvent spells it as Fd and Pad on every Linux port, with the
	// padding before Fd where there is some.
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = reg.data
	return syscall.EpollCtl(reg.epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
}
