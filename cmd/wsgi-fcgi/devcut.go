//go:build linux

// devcut.go: how the --http development front end cuts a response the gateway cut. gofast's
// client takes any end of the FastCGI connection for the end of the response, so a response the
// app broke off would reach the HTTP client as a complete one (net/http even gives a short
// body a Content-Length). Each FastCGI connection is watched for FCGI_END_REQUEST; without
// it, the HTTP response is aborted.

package main

import (
	"encoding/binary"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/yookoala/gofast"
)

// devHandler passes each HTTP request to the gateway over a FastCGI connection of its own.
type devHandler struct {
	session          gofast.SessionHandler
	network, address string
	log              hclog.Logger
}

func (h *devHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var watch *endWatch // set by connect, which gofast calls in this goroutine
	connect := func() (net.Conn, error) {
		c, err := net.Dial(h.network, h.address)
		if err != nil {
			return nil, err
		}
		watch = &endWatch{Conn: c}
		return watch, nil
	}
	gofast.NewHandler(h.session, gofast.SimpleClientFactory(connect)).ServeHTTP(w, r)
	if watch != nil && !watch.complete() && r.Context().Err() == nil {
		h.log.Debug("response cut: the gateway ended the FastCGI request without FCGI_END_REQUEST", "uri", r.RequestURI)
		// net/http closes the connection without finishing the response: no final chunk, or
		// fewer bytes than the Content-Length sent; nothing at all if no byte had left yet.
		panic(http.ErrAbortHandler)
	}
}

// endWatch is a FastCGI connection that follows the records read through it, to tell a
// response ended by FCGI_END_REQUEST from one whose connection ended first, or that held a
// record header of another version (the gateway's way to cut a response, fcgi.ResponseWriter.
// Abort). Its record state belongs to the goroutine that reads; the verdict is atomic, since
// gofast may still be reading when the handler looks.
type endWatch struct {
	net.Conn

	hdr  [8]byte // the record header being read
	nhdr int     // bytes of hdr read
	skip int     // content and padding bytes of the current record still to come

	ended  atomic.Bool // FCGI_END_REQUEST arrived
	broken atomic.Bool // a record header that is not FastCGI 1.0 arrived first
}

func (e *endWatch) Read(p []byte) (int, error) {
	n, err := e.Conn.Read(p)
	e.scan(p[:n])
	return n, err
}

// scan follows the record boundaries in the next bytes read.
func (e *endWatch) scan(b []byte) {
	for len(b) > 0 && !e.ended.Load() && !e.broken.Load() {
		if e.skip > 0 {
			k := min(e.skip, len(b))
			e.skip -= k
			b = b[k:]
			continue
		}
		k := copy(e.hdr[e.nhdr:], b)
		e.nhdr += k
		b = b[k:]
		if e.nhdr < len(e.hdr) {
			return
		}
		e.nhdr = 0
		switch {
		case e.hdr[0] != 1: // FCGI_VERSION_1
			e.broken.Store(true)
		case e.hdr[1] == 3: // FCGI_END_REQUEST
			e.ended.Store(true)
		default:
			e.skip = int(binary.BigEndian.Uint16(e.hdr[4:])) + int(e.hdr[6])
		}
	}
}

// complete reports whether the response ended with FCGI_END_REQUEST.
func (e *endWatch) complete() bool { return e.ended.Load() && !e.broken.Load() }
