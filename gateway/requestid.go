// requestid.go: a request's identity and its place in time: the X-Request-ID the web server
// sent (kept when it is short and printable) or one generated here, and when the request
// started waiting (its arrival, or the web server's X-Request-Start).

package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// maxRequestIDLen bounds a request id taken from the request.
const maxRequestIDLen = 128

// requestIDChar is the set a request id taken from the request is made of: [A-Za-z0-9._:-].
var requestIDChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "._:-" {
		t[c] = true
	}
	return t
}()

// validRequestID reports whether id, from the request, may be used as its request id: 1 to
// 128 bytes of [A-Za-z0-9._:-]. Anything else (a newline, a quote, a long value) could forge
// or bloat a log line, and is replaced by a generated id.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		if !requestIDChar[c] {
			return false
		}
	}
	return true
}

// generatedIDLen is the length of a generated request id: 32 hex digits, as nginx's
// $request_id.
const generatedIDLen = 32

// idSource generates request ids: a random prefix drawn once per gateway, then a counter.
// Ids are unique for the gateway's life and, with 64 random bits, across restarts; they are
// not secrets, and cost an atomic add and a few stores each.
type idSource struct {
	prefix [16]byte // 8 random bytes in hex
	n      atomic.Uint64
}

// newIDSource draws the random prefix.
func newIDSource() *idSource {
	var r [8]byte
	rand.Read(r[:]) // never fails on Linux (getrandom)
	s := &idSource{}
	hex.Encode(s.prefix[:], r[:])
	return s
}

// next writes the next id into dst.
func (s *idSource) next(dst *[generatedIDLen]byte) {
	const digits = "0123456789abcdef"
	copy(dst[:16], s.prefix[:])
	n := s.n.Add(1)
	for i := generatedIDLen - 1; i >= 16; i-- {
		dst[i] = digits[n&15]
		n >>= 4
	}
}

// requestObs is what the gateway notes about a request for its logs and metrics, kept in the
// pooled requestState.
type requestObs struct {
	id    []byte // the request id: into the params, or into idBuf
	idBuf [generatedIDLen]byte
	// given and start are HTTP_X_REQUEST_ID and HTTP_X_REQUEST_START as the web server sent
	// them (nil when absent).
	given, start []byte
	hasGiven     bool
	// arrived is when the gateway got the request's params; queueStart is when its wait
	// began: arrived, or the web server's X-Request-Start.
	arrived, queueStart time.Time
	dispatched          bool // it was handed to the pool
	ownPage             bool // the gateway answered it itself (status or ping page)
	bytesIn             int64
}

// param notes the request-identity params among the web server's; it reports true for one
// the gateway sends to the app itself (HTTP_X_REQUEST_ID, which it may replace).
func (o *requestObs) param(name, value []byte) (held bool) {
	switch len(name) {
	case len("HTTP_X_REQUEST_ID"):
		if string(name) == "HTTP_X_REQUEST_ID" {
			o.given, o.hasGiven = value, true
			return true
		}
	case len("HTTP_X_REQUEST_START"):
		if string(name) == "HTTP_X_REQUEST_START" {
			o.start = value
		}
	}
	return false
}

// identify settles the request's id and the start of its wait once the params are read, and
// puts them in the environ: HTTP_X_REQUEST_ID and wsgi_fcgi.request_id, and
// wsgi_fcgi.queue_start (seconds since the epoch, a float, to the microsecond; the runner adds
// wsgi_fcgi.queue_wait as it starts the request).
func (g *Gateway) identify(o *requestObs, req *pyrunner.Request) {
	if o.hasGiven && validRequestID(o.given) {
		o.id = o.given
	} else {
		g.ids.next(&o.idBuf)
		o.id = o.idBuf[:]
		if o.hasGiven {
			g.log.Debug("request id from the request replaced: want 1 to 128 bytes of [A-Za-z0-9._:-]",
				"request_id", string(o.id), "given_length", len(o.given))
		}
	}
	req.ID = o.id
	req.Env("HTTP_X_REQUEST_ID", o.id)
	req.Env("wsgi_fcgi.request_id", o.id)
	o.queueStart = o.arrived
	if o.start != nil {
		o.queueStart = queueStart(o.start, o.arrived)
	}
	req.EnvFloat("wsgi_fcgi.queue_start", float64(o.queueStart.UnixMicro())/1e6)
}

// maxRequestStartAge bounds how far before its arrival an X-Request-Start may be: an older
// one is a wrong clock or a forged header, and the arrival is used instead.
const maxRequestStartAge = time.Hour

// queueStart is when a request's wait began, given the X-Request-Start the web server sent
// and the request's arrival in the gateway: the header's time when it parses and lies within
// maxRequestStartAge before the arrival; the arrival itself when the header is in the future
// (another clock), too old, or unreadable.
func queueStart(header []byte, arrived time.Time) time.Time {
	t, ok := parseRequestStart(header)
	if !ok || t.After(arrived) || arrived.Sub(t) > maxRequestStartAge {
		return arrived
	}
	return t
}

// parseRequestStart reads an X-Request-Start value as APM agents (New Relic, Datadog) do:
// an optional "t=", then the time since the epoch in seconds, milliseconds, microseconds or
// nanoseconds, told apart by magnitude, with an optional fraction (nginx's "t=${msec}" is
// seconds with three decimals).
func parseRequestStart(v []byte) (time.Time, bool) {
	if len(v) > 2 && v[0] == 't' && v[1] == '=' {
		v = v[2:]
	}
	var whole int64
	i := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		if i >= 19 {
			return time.Time{}, false
		}
		whole = whole*10 + int64(v[i]-'0')
	}
	if i == 0 {
		return time.Time{}, false
	}
	var unit int64 // nanoseconds per unit of whole
	switch {
	case whole >= 1e17:
		unit = 1
	case whole >= 1e14:
		unit = 1e3
	case whole >= 1e11:
		unit = 1e6
	default:
		unit = 1e9
	}
	ns := whole * unit
	if i < len(v) && v[i] == '.' {
		i++
		for scale := unit / 10; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			ns += int64(v[i]-'0') * scale
			scale /= 10
		}
	}
	if i != len(v) || ns <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// appendIDHeader appends the X-Request-ID response header line.
func appendIDHeader(b, id []byte) []byte {
	b = append(b, "X-Request-ID: "...)
	b = append(b, id...)
	return append(b, '\r', '\n')
}
