//go:build linux

// request.go: a request as the pool takes it (environ and body), and the response side's
// interface and header block.

package pyrunner

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// requestPrefix is the frame header, environ_len and the marshal dict opener.
const requestPrefix = frameHeaderLen + 4 + 1

// Request is one request for a worker: its environ, encoded as it is built, and its body.
// The zero value is ready to use; Reset makes a Request reusable, so callers can pool them.
type Request struct {
	frame   []byte // the REQUEST frame being built: header, environ_len, environ, inline body
	envEnd  int    // end of the environ in frame; 0 while the environ is open
	bodyEOF bool

	// Body supplies the request body after the inline part (see InlineBody). It is read
	// only when the app asks for more (READ frames). Nil means the inline part is all.
	Body io.Reader
	// Info describes the request for a status page (Options.TrackRequests); not sent.
	Info RequestInfo
	// ID names the request in the pool's log lines about it (key "request_id"); not sent.
	// The bytes must stay unchanged until Do returns.
	ID []byte
	// WorkerPID is set by Do: the pid of the worker process the request was handed to (for
	// an access log); 0 when it reached none.
	WorkerPID int
	// Started is set by Do: when a worker started the request (see worker.begin); zero when
	// none did. The time from the caller's arrival to Started is the request's queue wait.
	Started time.Time

	c call // Do's state for it (call.go)
}

// Reset empties r for reuse, keeping its buffer.
func (r *Request) Reset() {
	if cap(r.frame) < requestPrefix {
		r.frame = make([]byte, requestPrefix, 4096)
	}
	r.frame = r.frame[:requestPrefix]
	r.frame[requestPrefix-1] = marshalDict
	r.envEnd = 0
	r.bodyEOF = false
	r.Body = nil
	r.Info = RequestInfo{}
	r.WorkerPID = 0
	r.ID = nil
	r.Started = time.Time{}
}

func (r *Request) open() {
	if len(r.frame) < requestPrefix {
		r.Reset()
	}
	if r.envEnd != 0 {
		panic("pyrunner: environ added after the inline body")
	}
}

// Env adds one environ entry. Values are bytes as the web server sent them; the worker sees
// them as native strings decoded as latin-1 (PEP 3333). A later entry replaces an earlier one
// of the same name.
func (r *Request) Env(name string, value []byte) {
	r.open()
	r.frame = appendMarshalString(r.frame, name, true)
	r.frame = appendMarshalString(r.frame, value, false)
}

// EnvString is Env for a value held as a string.
func (r *Request) EnvString(name, value string) {
	r.open()
	r.frame = appendMarshalString(r.frame, name, true)
	r.frame = appendMarshalString(r.frame, value, false)
}

// EnvFloat adds an environ entry whose value is a float (the worker sees a Python float).
func (r *Request) EnvFloat(name string, value float64) {
	r.open()
	r.frame = appendMarshalString(r.frame, name, true)
	r.frame = appendMarshalFloat(r.frame, value)
}

// EnvBytes is Env for a name held as bytes (a CGI param passed through unchanged).
func (r *Request) EnvBytes(name, value []byte) {
	r.open()
	r.frame = appendMarshalString(r.frame, name, true)
	r.frame = appendMarshalString(r.frame, value, false)
}

// closeEnv ends the environ dict; idempotent.
func (r *Request) closeEnv() {
	r.open()
	r.frame = append(r.frame, marshalNull)
	r.envEnd = len(r.frame)
}

// InlineBody closes the environ and returns a slice of n bytes at the end of the REQUEST frame
// for the caller to fill with the start of the body (n is capped at 64 KiB). Whatever Body
// holds when the request is sent follows it; a nil Body means the inline part is the whole body.
func (r *Request) InlineBody(n int) []byte {
	if r.envEnd == 0 {
		r.closeEnv()
	}
	n = max(min(n, maxInlineBody-(len(r.frame)-r.envEnd)), 0)
	start := len(r.frame)
	r.frame = append(r.frame, make([]byte, n)...)
	return r.frame[start:]
}

// frameSize is the size of the REQUEST frame finish returns.
func (r *Request) frameSize() int {
	if r.envEnd == 0 {
		return len(r.frame) + 1
	}
	return len(r.frame)
}

// finish completes the frame header and returns the frame to write.
func (r *Request) finish() []byte {
	if r.envEnd == 0 {
		r.closeEnv()
	}
	r.bodyEOF = r.Body == nil
	flags := uint8(0)
	if r.bodyEOF {
		flags = flagEOF
	}
	putFrameHeader(r.frame, len(r.frame)-frameHeaderLen, frameRequest, flags)
	binary.LittleEndian.PutUint32(r.frame[frameHeaderLen:], uint32(r.envEnd-frameHeaderLen-4))
	return r.frame
}

// ResponseWriter receives a worker's response. The pool calls WriteHeader once, then Write for
// each piece of the body, and Flush where the app's output should reach the client now (a
// streaming response); what is written after the last Flush is sent when Do returns.
type ResponseWriter interface {
	WriteHeader(status []byte, h Header) error
	Write(p []byte) (int, error)
	Flush() error
}

// Header is the validated header block of a response: names and values as latin-1 bytes.
type Header struct {
	block []byte // name NUL value NUL ... (no trailing NUL)
}

// Each calls fn for every header field in the order the app gave them. The slices are valid
// only during the call.
func (h Header) Each(fn func(name, value []byte)) {
	rest := h.block
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		name := rest[:i]
		rest = rest[i+1:]
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			fn(name, rest)
			return
		}
		fn(name, rest[:j])
		rest = rest[j+1:]
	}
}

// parseHeaderBlock checks a START frame's header block (PROTOCOL.md, "The header block") and
// splits off the status line.
func parseHeaderBlock(block []byte) (status []byte, h Header, err error) {
	i := bytes.IndexByte(block, 0)
	if i < 0 {
		status, block = block, nil
	} else {
		status, block = block[:i], block[i+1:]
	}
	if !validStatus(status) {
		return nil, Header{}, fmt.Errorf("invalid status %q", truncate(status))
	}
	if len(block) == 0 {
		if i >= 0 {
			return nil, Header{}, fmt.Errorf("header block ends with NUL")
		}
		return status, Header{}, nil
	}
	fields := bytes.Count(block, []byte{0}) + 1
	if fields%2 != 0 {
		return nil, Header{}, fmt.Errorf("header block has a name without a value")
	}
	rest := block
	for len(rest) > 0 {
		k := bytes.IndexByte(rest, 0)
		name := rest[:k]
		rest = rest[k+1:]
		v := bytes.IndexByte(rest, 0)
		value := rest
		if v >= 0 {
			value, rest = rest[:v], rest[v+1:]
		} else {
			rest = nil
		}
		if !validToken(name) {
			return nil, Header{}, fmt.Errorf("invalid header name %q", truncate(name))
		}
		if len(name) == 6 && bytes.EqualFold(name, []byte("status")) {
			return nil, Header{}, fmt.Errorf("header %q is reserved for the gateway", name)
		}
		if bytes.ContainsAny(value, "\r\n") {
			return nil, Header{}, fmt.Errorf("header %s: value holds CR or LF", name)
		}
	}
	return status, Header{block: block}, nil
}

// validStatus: three digits, optionally a space and a reason phrase without CR or LF. An
// interim status (1xx) is refused: a WSGI app has no way to send one, and a web server would
// pass it on as an interim response followed by the app's headers and body, which a client
// then reads as the next response.
func validStatus(s []byte) bool {
	if len(s) < 3 || s[0] < '2' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
		return false
	}
	if len(s) == 3 {
		return true
	}
	return s[3] == ' ' && !bytes.ContainsAny(s[4:], "\r\n")
}

// validToken reports whether b is an RFC 9110 token (section 5.6.2).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// lookup returns the value of an environ entry already added, as the worker will see it; ""
// when there is none. For log lines on the slow paths only: it walks the encoded environ.
func (r *Request) lookup(name string) string {
	if len(r.frame) < requestPrefix {
		return ""
	}
	b := r.frame[requestPrefix:]
	if r.envEnd != 0 {
		b = r.frame[requestPrefix : r.envEnd-1]
	}
	value := ""
	for len(b) > 0 {
		var k, v []byte
		var ok bool
		if k, b, ok = nextMarshalString(b); !ok {
			return value
		}
		if v, b, ok = nextMarshalString(b); !ok {
			return value
		}
		if string(k) == name {
			value = string(v) // a later entry replaces an earlier one
		}
	}
	return value
}

// nextMarshalString splits the first string appendMarshalString wrote off b.
func nextMarshalString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n, hdr := 0, 0
	switch b[0] {
	case marshalShortASCII, marshalShortASCIIIntn:
		n, hdr = int(b[1]), 2
	case marshalBinaryFloat:
		n, hdr = 8, 1
	case marshalASCII, marshalASCIIIntn, marshalUnicode:
		if len(b) < 5 {
			return nil, nil, false
		}
		n, hdr = int(binary.LittleEndian.Uint32(b[1:])), 5
	default:
		return nil, nil, false
	}
	if len(b) < hdr+n {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
}
