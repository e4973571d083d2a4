//go:build linux

// board.go: the cancel board, a page of memory shared with one worker process, where the
// gateway marks the requests it has cancelled (PROTOCOL.md, "The cancel board").

package pyrunner

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Board layout: each channel of a process owns boardWords uint32 words; the first
// boardSlots hold the numbers of cancelled requests (request n in slot n % boardSlots), the
// next boardSlots their reasons. A channel never has more than 1+MaxSendAheadDepth requests
// outstanding, fewer than boardSlots, so a slot is never needed by two live requests.
const (
	boardSlots = 32
	boardWords = 2 * boardSlots
)

// Why a request was cancelled, as the board says it (the runner raises a matching exception).
const (
	reasonAborted     uint32 = 1 // the web server gave up on it, or its client was answered already
	reasonSoftTimeout uint32 = 2 // it ran past Options.SoftTimeout
)

// The board's size must allow for every request a channel may have outstanding.
const _ = uint(boardSlots - 1 - MaxSendAheadDepth - 1)

// board is the gateway's view of one process's cancel board: a shared mapping of a memfd the
// process inherited. Only the channel owners write it, each its own words.
type board struct {
	mem []byte
}

// newBoard makes a board for a process of threads channels. The file is what the process
// inherits (the caller closes it once passed on); the mapping stays until release.
func newBoard(threads int) (*board, *os.File, error) {
	size := max(threads*boardWords*4, os.Getpagesize())
	fd, err := unix.MemfdCreate("wsgi-fcgi-board", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("cancel board: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "wsgi-fcgi-board")
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cancel board: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cancel board: mmap: %w", err)
	}
	return &board{mem: mem}, f, nil
}

// word returns the i-th uint32 of the mapping.
func (b *board) word(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b.mem[4*i]))
}

// cancel marks request n of channel ch cancelled for reason: the reason first, then the
// number, which is what the runner reads first.
func (b *board) cancel(ch int, n uint32, reason uint32) {
	base := ch*boardWords + int(n%boardSlots)
	atomic.StoreUint32(b.word(base+boardSlots), reason)
	atomic.StoreUint32(b.word(base), n)
}

// cancelled reports whether request n of channel ch is marked, and why.
func (b *board) cancelled(ch int, n uint32) (bool, uint32) {
	base := ch*boardWords + int(n%boardSlots)
	if atomic.LoadUint32(b.word(base)) != n {
		return false, 0
	}
	return true, atomic.LoadUint32(b.word(base + boardSlots))
}

// release unmaps the board; the process is gone.
func (b *board) release() {
	if b.mem != nil {
		unix.Munmap(b.mem)
		b.mem = nil
	}
}
