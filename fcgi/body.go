// This file holds Body, the request's FCGI_STDIN stream: a bounded buffer the
// connection's read loop fills and the handler drains, with a temp file for
// the overflow of multiplexed requests.

package fcgi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

const (
	// bodyBlockSize is the unit of body buffering; blocks are pooled.
	bodyBlockSize = 16 << 10

	// bodyMaxBuffered bounds what one request holds unread in memory. When
	// a body is full on a connection that carries one request at a time,
	// the read loop stops reading the connection until the handler has read
	// bodyResume bytes (backpressure to the web server). On a multiplexed
	// connection the overflow goes to a temp file instead, so that no other
	// request waits on this one.
	bodyMaxBuffered = 256 << 10
	bodyResume      = 64 << 10

	// bodyRing is the number of block slots: a partly read first block and
	// a partly written last block can straddle one extra block.
	bodyRing = bodyMaxBuffered/bodyBlockSize + 1
)

type bodyBlock [bodyBlockSize]byte

var bodyBlockPool = sync.Pool{New: func() any { return new(bodyBlock) }}

// errBodyAfterReturn is returned by Body.Read once ServeFCGI has returned.
var errBodyAfterReturn = errors.New("fcgi: body read after handler returned")

// Body is the request's FCGI_STDIN stream. Read returns io.EOF after the
// empty FCGI_STDIN record that ends the stream, ErrRequestAborted after
// FCGI_ABORT_REQUEST, and ErrConnClosed when the connection died before the
// stream was complete.
//
// At most 256 KiB are buffered in memory per request. When that much is
// unread on a connection whose web server sends one request at a time (as
// nginx, Apache and Caddy do), the connection is not read any further until
// the handler reads: the web server is held back, nothing grows. On a
// multiplexed connection (other requests in progress, or a web server that
// has multiplexed on it before or asked FCGI_MPXS_CONNS), the overflow is
// written to an unlinked temp file (Server.SpoolDir), up to Server.MaxSpool
// unread bytes, after which Read fails with ErrBodyTooLarge; the file is
// emptied whenever the reader catches up. Once ServeFCGI returns, the rest
// of the stream is read and discarded.
//
// A Body is safe for use by one reader goroutine at a time.
type Body struct {
	mu       sync.Mutex
	readable sync.Cond // signaled when data, EOF or an error arrives
	writable sync.Cond // signaled when room appears or the handler is done

	ring       [bodyRing]*bodyBlock
	head, cnt  int // ring slots in use: ring[head], ..., ring[head+cnt-1]
	roff, woff int // read offset in the first block, write offset in the last
	n          int // bytes buffered

	eof    bool  // the empty FCGI_STDIN record arrived
	err    error // ErrRequestAborted or ErrConnClosed
	closed bool  // the handler returned: discard input

	readerWaiting, writerWaiting bool

	// The read deadline (SetReadDeadline): timedOut is set when it passes; deadlineGen tells
	// a timer that fired from one that was replaced.
	deadlineTimer *time.Timer
	deadlineGen   uint64
	timedOut      bool

	// The spool file: bytes [fr, fw) of f follow what the ring holds.
	// spooling is set while input goes to f; it ends when f is drained.
	f        *os.File
	fr, fw   int64
	spooling bool
	spoolDir string // set by the read loop before the first write
	spoolMax int64
}

// SetReadDeadline makes a Read that waits for the web server past t fail with an error
// wrapping os.ErrDeadlineExceeded (t zero: no deadline), as net.Conn's does. Data that
// arrived is still returned first; a later SetReadDeadline clears an expired one.
func (b *Body) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deadlineTimer != nil {
		b.deadlineTimer.Stop()
		b.deadlineTimer = nil
	}
	b.deadlineGen++
	b.timedOut = false
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		b.timedOut = true
		b.readable.Broadcast()
		return nil
	}
	gen := b.deadlineGen
	b.deadlineTimer = time.AfterFunc(d, func() {
		b.mu.Lock()
		if b.deadlineGen == gen {
			b.timedOut = true
			b.readable.Broadcast()
		}
		b.mu.Unlock()
	})
	return nil
}

func (b *Body) init() {
	b.readable.L = &b.mu
	b.writable.L = &b.mu
}

// Read reads the next bytes of the stream.
func (b *Body) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b.mu.Lock()
	for b.n == 0 && b.fw == b.fr && !b.eof && b.err == nil && !b.closed && !b.timedOut {
		b.readerWaiting = true
		b.readable.Wait()
	}
	b.readerWaiting = false
	switch {
	case b.n == 0 && b.fw == b.fr && !b.eof && b.err == nil && !b.closed:
		b.mu.Unlock()
		return 0, fmt.Errorf("fcgi: body read: %w", os.ErrDeadlineExceeded)
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	case b.closed:
		b.mu.Unlock()
		return 0, errBodyAfterReturn
	case b.n == 0 && b.fw > b.fr:
		nr, err := b.readSpoolLocked(p)
		b.mu.Unlock()
		return nr, err
	case b.n == 0:
		b.mu.Unlock()
		return 0, io.EOF
	}
	nr := 0
	for nr < len(p) && b.n > 0 {
		blk := b.ring[b.head]
		end := bodyBlockSize
		if b.cnt == 1 {
			end = b.woff
		}
		m := copy(p[nr:], blk[b.roff:end])
		nr += m
		b.n -= m
		b.roff += m
		if b.roff == end {
			b.popBlock()
		}
	}
	if b.writerWaiting && b.n <= bodyMaxBuffered-bodyResume {
		b.writable.Signal()
	}
	b.mu.Unlock()
	return nr, nil
}

// readSpoolLocked reads from the spool file once the ring is empty. When
// the reader has caught up, the file is emptied and input goes back to the
// ring. Called with b.mu held.
func (b *Body) readSpoolLocked(p []byte) (int, error) {
	p = p[:min(int64(len(p)), b.fw-b.fr)]
	nr, err := b.f.ReadAt(p, b.fr)
	b.fr += int64(nr)
	if err != nil && nr < len(p) {
		err = fmt.Errorf("fcgi: read body spool: %w", err)
		b.err = err
		b.freeLocked()
		return nr, err
	}
	if b.fr == b.fw {
		b.fr, b.fw = 0, 0
		b.spooling = false
		if err := b.f.Truncate(0); err != nil {
			b.err = fmt.Errorf("fcgi: truncate body spool: %w", err)
			b.freeLocked()
		}
	}
	if b.writerWaiting {
		b.writable.Signal()
	}
	return nr, nil
}

// Buffered returns the number of bytes Read can return without blocking.
func (b *Body) Buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil || b.closed {
		return 0
	}
	return b.n + int(b.fw-b.fr)
}

// Complete reports whether the whole stream, up to the empty FCGI_STDIN
// record, has arrived. With Complete true, Read never waits on the network.
func (b *Body) Complete() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// popBlock returns the first block to the pool. Called with b.mu held.
func (b *Body) popBlock() {
	bodyBlockPool.Put(b.ring[b.head])
	b.ring[b.head] = nil
	b.head = (b.head + 1) % bodyRing
	b.cnt--
	b.roff = 0
	if b.cnt == 0 {
		b.head, b.woff = 0, 0
	}
}

// freeLocked drops everything buffered, spool file included. Called with
// b.mu held.
func (b *Body) freeLocked() {
	for b.cnt > 0 {
		b.popBlock()
	}
	b.n = 0
	if b.f != nil {
		b.f.Close()
		b.f = nil
	}
	b.fr, b.fw, b.spooling = 0, 0, false
}

// write appends as much of p as fits and returns how much it consumed. It
// never blocks: when the body is full it returns less than len(p) and the
// caller either waits with waitRoom or calls startSpool. While spooling,
// all of p goes to the spool file. Input is consumed and dropped once the
// handler has returned or the request has failed. An error means the
// request's body has just failed (spool limit or file error). Called by the
// read loop only.
func (b *Body) write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed || b.err != nil {
		b.mu.Unlock()
		return len(p), nil
	}
	if b.spooling {
		err := b.spoolLocked(p)
		b.mu.Unlock()
		return len(p), err
	}
	total := 0
	for len(p) > 0 && b.n < bodyMaxBuffered {
		if b.cnt == 0 || b.woff == bodyBlockSize {
			b.ring[(b.head+b.cnt)%bodyRing] = bodyBlockPool.Get().(*bodyBlock)
			b.cnt++
			b.woff = 0
		}
		blk := b.ring[(b.head+b.cnt-1)%bodyRing]
		room := min(bodyBlockSize-b.woff, bodyMaxBuffered-b.n)
		m := copy(blk[b.woff:b.woff+room], p)
		b.woff += m
		b.n += m
		total += m
		p = p[m:]
	}
	if b.readerWaiting {
		b.readable.Signal()
	}
	b.mu.Unlock()
	return total, nil
}

// startSpool sends further input to the spool file, until the reader has
// drained it. Called by the read loop only, when the ring is full.
func (b *Body) startSpool() {
	b.mu.Lock()
	b.spooling = true
	b.mu.Unlock()
}

// spoolLocked appends p to the spool file, creating it on first use, or
// fails the body if that would put more than spoolMax bytes unread in it.
// Called with b.mu held.
func (b *Body) spoolLocked(p []byte) error {
	if b.fw-b.fr+int64(len(p)) > b.spoolMax {
		return b.failLocked(fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, b.spoolMax))
	}
	if b.f == nil {
		f, err := os.CreateTemp(b.spoolDir, "fcgi-body-")
		if err != nil {
			return b.failLocked(fmt.Errorf("fcgi: body spool: %w", err))
		}
		// Unlinked at once: the file goes with the descriptor, whatever
		// happens to the process.
		os.Remove(f.Name())
		b.f = f
	}
	m, err := b.f.WriteAt(p, b.fw)
	b.fw += int64(m)
	if err != nil {
		return b.failLocked(fmt.Errorf("fcgi: body spool: %w", err))
	}
	if b.readerWaiting {
		b.readable.Signal()
	}
	return nil
}

// failLocked fails the body with err and returns it. Called with b.mu held.
func (b *Body) failLocked(err error) error {
	b.err = err
	b.freeLocked()
	b.readable.Broadcast()
	b.writable.Broadcast()
	return err
}

// waitRoom blocks the read loop until the handler has made room, returned,
// or the request failed, or until c is closed. It reports whether c is
// still alive.
func (b *Body) waitRoom(c *conn) bool {
	b.mu.Lock()
	// Publish b before testing c.dead, so that close either sees b or is seen.
	c.waiting.Store(b)
	for b.n > bodyMaxBuffered-bodyResume && !b.closed && b.err == nil && !c.dead.Load() {
		b.writerWaiting = true
		b.writable.Wait()
	}
	b.writerWaiting = false
	c.waiting.Store(nil)
	b.mu.Unlock()
	return !c.dead.Load()
}

// wakeWriter wakes the read loop if it waits in waitRoom.
func (b *Body) wakeWriter() {
	b.mu.Lock()
	b.writable.Broadcast()
	b.mu.Unlock()
}

// setEOF records the empty FCGI_STDIN record.
func (b *Body) setEOF() {
	b.mu.Lock()
	b.eof = true
	if b.readerWaiting {
		b.readable.Signal()
	}
	b.mu.Unlock()
}

// fail makes Read return err from now on and drops what is buffered.
// ErrConnClosed does not fail a stream that is already complete.
func (b *Body) fail(err error) {
	b.mu.Lock()
	if b.err == nil && !(err == ErrConnClosed && b.eof) {
		b.err = err
		b.freeLocked()
	}
	b.readable.Broadcast()
	b.writable.Broadcast()
	b.mu.Unlock()
}

// close is called when the handler returns: input is discarded from now on.
func (b *Body) close() {
	b.mu.Lock()
	if b.deadlineTimer != nil {
		b.deadlineTimer.Stop()
		b.deadlineTimer = nil
	}
	b.deadlineGen++
	b.timedOut = false
	b.closed = true
	b.freeLocked()
	b.writable.Broadcast()
	b.mu.Unlock()
}
