// This file holds ResponseWriter, the request's FCGI_STDOUT and FCGI_STDERR
// output: records are built in a pooled buffer and leave in as few write
// syscalls as possible.

package fcgi

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// outBufSize is the per-request output buffer. A response that fits,
	// with its end records, leaves in one write.
	outBufSize = 32 << 10

	// endReserve keeps room in the buffer for the records that end a
	// request: empty FCGI_STDOUT, empty FCGI_STDERR, FCGI_END_REQUEST.
	endReserve = 3*headerLen + endBodyLen

	// maxVecRecords is how many records of a large write go in one writev.
	maxVecRecords = 64
)

// An open record is patched in place, so it must not outgrow one record.
const _ = uint(maxContent + headerLen - outBufSize)

// outBuf is the pooled output state of one request.
type outBuf struct {
	b    [outBufSize]byte
	hdrs [maxVecRecords * headerLen]byte
	iov  [2*maxVecRecords + 1][]byte
	vec  net.Buffers
}

var outBufPool = sync.Pool{New: func() any { return new(outBuf) }}

var (
	errWriteAfterReturn = errors.New("fcgi: write after handler returned")
	errAborted          = errors.New("fcgi: response aborted")
)

// ResponseWriter writes the FCGI_STDOUT and FCGI_STDERR streams of one
// request.
//
// Output is buffered: consecutive writes to one stream share a record, and
// a handler that writes a small response and returns causes one write
// syscall carrying the output records, the empty FCGI_STDOUT record that
// ends the stream and FCGI_END_REQUEST. A write larger than the free buffer
// is sent at once, together with what is buffered, with the caller's bytes
// passed to writev uncopied. Flush sends what is buffered now.
//
// Once the connection is gone, writes fail with an error wrapping
// ErrConnClosed; once the web server has aborted the request, with
// ErrRequestAborted (what was buffered is dropped). Either way the handler
// should stop. A ResponseWriter must not be used
// from several goroutines at once, nor after ServeFCGI returns.
type ResponseWriter struct {
	c  *conn
	id uint16

	ob       *outBuf
	n        int     // bytes used in ob.b
	openType recType // type of the record open at openAt, 0 if none
	openAt   int

	appStatus  uint32
	stderrUsed bool
	deadline   time.Time // for the writes to the connection (SetWriteDeadline)
	err        error     // sticky
	done       bool      // ServeFCGI returned
	aborted    bool

	// webAborted is set by the read loop on FCGI_ABORT_REQUEST: output
	// stops; the read loop has sent FCGI_END_REQUEST.
	webAborted atomic.Bool
	// endClaimed is set by whoever sends FCGI_END_REQUEST: finish, or the
	// read loop on an abort. It is sent once.
	endClaimed atomic.Bool
}

// Write writes p to the FCGI_STDOUT stream: the CGI response, headers first.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	return w.write(typeStdout, p)
}

// WriteStderr writes p to the FCGI_STDERR stream, which web servers log.
func (w *ResponseWriter) WriteStderr(p []byte) (int, error) {
	w.stderrUsed = true
	return w.write(typeStderr, p)
}

// SetWriteDeadline bounds the writes of this response to the connection from now on: a write
// still blocked at t (the web server stopped reading) fails, and the connection is closed,
// since a record may have been cut. Zero means no deadline. As with net/http's
// ResponseController, it applies to the connection, so on a multiplexed connection another
// request's writes in between use their own deadline.
func (w *ResponseWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}

// useWriteDeadline makes t the connection's write deadline, unless it is already.
func (c *conn) useWriteDeadline(t time.Time) {
	c.wmu.Lock()
	if d, ok := c.rwc.(interface{ SetWriteDeadline(time.Time) error }); ok && !c.writeDeadline.Equal(t) {
		d.SetWriteDeadline(t)
		c.writeDeadline = t
	}
	c.wmu.Unlock()
}

// SetAppStatus sets the appStatus of FCGI_END_REQUEST, the application's
// exit status in CGI terms. The default is 0.
func (w *ResponseWriter) SetAppStatus(code int32) { w.appStatus = uint32(code) }

// Flush sends what is buffered.
func (w *ResponseWriter) Flush() error {
	if err := w.check(); err != nil {
		return err
	}
	if w.n == 0 {
		return nil
	}
	w.closeRecord()
	w.c.useWriteDeadline(w.deadline)
	err := w.c.writeReq(&w.webAborted, w.ob.b[:w.n])
	w.n = 0
	if err != nil {
		w.err = err
	}
	return err
}

// Abort closes the connection without ending the request: the web server sees a broken
// response rather than a complete one. Use it when the response is known to be wrong after
// part of it was sent. What was buffered is dropped. Other requests multiplexed on the
// connection fail too.
//
// FastCGI has no record that says a response failed: web servers ignore the appStatus and
// protocolStatus of FCGI_END_REQUEST, and some take a connection closed before it for the end
// of the response (nginx without FCGI_KEEP_CONN, or with its response buffering off). So
// before the close Abort writes an FCGI_STDERR record saying why, which web servers log, and
// a record header of version 0, which no FastCGI peer can read: nginx, Apache mod_proxy_fcgi
// and Caddy all take it as a failed upstream.
//
// Abort after FCGI_ABORT_REQUEST does nothing: the web server has given the
// request up, and the connection is left to its other requests.
func (w *ResponseWriter) Abort() {
	if w.done || w.aborted || w.webAborted.Load() {
		return
	}
	w.aborted = true
	w.err = errors.Join(ErrConnClosed, errAborted)
	w.release()
	// A web server that stopped reading must not hold the close: the records get at most
	// abortWriteTimeout, or what is left of the response's own deadline.
	d := time.Now().Add(abortWriteTimeout)
	if !w.deadline.IsZero() && w.deadline.Before(d) {
		d = w.deadline
	}
	w.c.useWriteDeadline(d)
	w.c.writeReq(&w.webAborted, appendAbortRecords(nil, w.id))
	w.c.close()
}

// abortWriteTimeout bounds the write of Abort's records.
const abortWriteTimeout = time.Second

// abortNotice is the FCGI_STDERR text of an aborted response.
const abortNotice = "fcgi: response aborted by the application; the connection is closed without FCGI_END_REQUEST"

// appendAbortRecords appends what Abort sends before it closes: abortNotice on FCGI_STDERR,
// then a record header of version 0.
func appendAbortRecords(dst []byte, id uint16) []byte {
	dst = appendHeader(dst, typeStderr, id, len(abortNotice))
	dst = append(dst, abortNotice...)
	return append(dst, make([]byte, headerLen)...) // version 0: not a FastCGI 1.0 record
}

func (w *ResponseWriter) check() error {
	switch {
	case w.err != nil:
		return w.err
	case w.done:
		return errWriteAfterReturn
	case w.webAborted.Load():
		w.err = ErrRequestAborted
		return w.err
	case w.c.dead.Load():
		w.err = ErrConnClosed
		return w.err
	}
	return nil
}

// room returns how many content bytes of type t fit in the buffer.
func (w *ResponseWriter) room(t recType) int {
	r := outBufSize - endReserve - w.n
	if w.openType != t {
		r -= headerLen
	}
	return r
}

func (w *ResponseWriter) write(t recType, p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.ob == nil {
		w.ob = outBufPool.Get().(*outBuf)
	}
	if len(p) <= w.room(t) {
		if w.openType != t {
			w.closeRecord()
			w.openType, w.openAt = t, w.n
			w.n += headerLen
		}
		w.n += copy(w.ob.b[w.n:], p)
		return len(p), nil
	}
	if err := w.writeLarge(t, p); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// closeRecord patches the open record's header with its length.
func (w *ResponseWriter) closeRecord() {
	if w.openType == 0 {
		return
	}
	putHeader(w.ob.b[w.openAt:], w.openType, w.id, w.n-w.openAt-headerLen)
	w.openType = 0
}

// writeLarge sends the buffered records followed by p, cut into records
// whose headers are interleaved with slices of p: one writev per
// maxVecRecords records, and no copy of p.
func (w *ResponseWriter) writeLarge(t recType, p []byte) error {
	w.closeRecord()
	ob := w.ob
	defer clear(ob.iov[:]) // do not keep the caller's memory reachable
	for len(p) > 0 {
		iov := ob.iov[:0]
		if w.n > 0 {
			iov = append(iov, ob.b[:w.n])
			w.n = 0
		}
		for i := 0; i < maxVecRecords && len(p) > 0; i++ {
			m := min(len(p), maxContent)
			h := ob.hdrs[i*headerLen : (i+1)*headerLen]
			putHeader(h, t, w.id, m)
			iov = append(iov, h, p[:m])
			p = p[m:]
		}
		ob.vec = iov
		w.c.useWriteDeadline(w.deadline)
		if err := w.c.writeBuffers(&w.webAborted, &ob.vec); err != nil {
			return err
		}
	}
	return nil
}

// finish ends the request after ServeFCGI returned: the last output, the
// empty FCGI_STDOUT record ("a stream ... followed by an empty record"), the
// empty FCGI_STDERR record if that stream was used, and FCGI_END_REQUEST,
// all in one write.
func (w *ResponseWriter) finish() {
	defer w.release()
	if !w.endClaimed.CompareAndSwap(false, true) {
		// An abort arrived and the read loop sent FCGI_END_REQUEST; unsent
		// output is dropped.
		w.done = true
		return
	}
	if w.check() != nil {
		w.done = true
		return
	}
	w.done = true
	if w.ob == nil {
		w.ob = outBufPool.Get().(*outBuf)
	}
	w.closeRecord()
	b := w.ob.b[:w.n]
	b = appendHeader(b, typeStdout, w.id, 0)
	if w.stderrUsed {
		b = appendHeader(b, typeStderr, w.id, 0)
	}
	b = appendEndRequest(b, w.id, w.appStatus, statusRequestComplete)
	w.c.useWriteDeadline(w.deadline)
	if err := w.c.writeReq(&w.webAborted, b); err != nil {
		w.err = err
	}
}

// release returns the buffer to the pool.
func (w *ResponseWriter) release() {
	if w.ob != nil {
		w.ob.vec = nil
		outBufPool.Put(w.ob)
		w.ob = nil
	}
	w.n, w.openType = 0, 0
}
