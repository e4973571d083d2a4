// Package gateway turns FastCGI requests into WSGI requests: it builds the PEP 3333 environ
// from the web server's CGI params, gives the app a body with a true CONTENT_LENGTH, hands the
// request to the worker pool, and writes the app's response back as CGI output
// ("Status:" line, headers, body). It also answers for the pool when it cannot serve: 503 when
// every worker is busy past the queue's limits, 502 when a worker dies holding the request,
// 500 when the app's headers are invalid.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// Dispatcher runs a request on a worker; *pyrunner.Pool implements it.
type Dispatcher interface {
	Do(ctx context.Context, req *pyrunner.Request, w pyrunner.ResponseWriter) error
}

// Options configure a Gateway. Zero values take the defaults given per field.
type Options struct {
	// Mount is the URL prefix the app lives under ("/app"); "" derives it per front end.
	Mount string
	// MaxBody bounds a request body in bytes: a larger declared CONTENT_LENGTH, or a body
	// without a length that grows past it, gets 413. 0 means no limit.
	MaxBody int64
	// SpoolMemory is how much of a body without a length is kept in memory before the rest
	// goes to a temp file (default 1 MiB).
	SpoolMemory int
	// TempDir holds spool files (default os.TempDir()).
	TempDir string
	// TrustedProxies are the addresses whose X-Forwarded-Proto, -For and -Host are believed
	// (default: none).
	TrustedProxies TrustedProxies
	// PingPath, when set, is answered "pong" by the gateway itself, without a worker (php-fpm's
	// ping.path): a liveness check of the gateway and the web server's link to it.
	PingPath string
	// AccessLog, when set, gets one line per request.
	AccessLog *AccessLog
	// StatusPath, when set with Status, is answered with the status page (php-fpm's
	// pm.status_path): text, ?json or ?openmetrics, ?full for a row per worker.
	StatusPath string
	// Status supplies the pool's numbers for the status page.
	Status StatusSource
	// PoolName names the pool on the status page (default "wsgi-fcgi").
	PoolName string
	// RequestIDHeader adds X-Request-ID, the request's id, to every response (unless the
	// app sets it itself).
	RequestIDHeader bool
	// Logger receives request errors (default: discarded).
	Logger hclog.Logger
}

// Gateway is the fcgi.Handler that serves WSGI apps through a Dispatcher.
type Gateway struct {
	opts  Options
	mount []byte
	pool  Dispatcher
	log   hclog.Logger
	state sync.Pool // *requestState

	started  time.Time
	accepted atomic.Uint64 // requests accepted, for the status page
	track    bool          // the status page is on: requests carry pyrunner.RequestInfo
	ids      *idSource     // generates request ids (requestid.go)
	metrics  *metrics      // with the status page (metrics.go); nil without
	refusals *refusalLog   // the log lines of the gateway's 503s (ratelog.go)
	// serverRefusals: the log lines of the requests the FastCGI server refused (ServerRefused).
	serverRefusals *refusalLog

	// warned holds the path shapes already warned about: one warning per distinct shape of
	// contradicting params, never one per request. Its keys are a fixed set of rule names.
	warned sync.Map
}

// New returns a Gateway serving requests through pool.
func New(pool Dispatcher, opts Options) *Gateway {
	if opts.SpoolMemory <= 0 {
		opts.SpoolMemory = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PoolName == "" {
		opts.PoolName = "wsgi-fcgi"
	}
	g := &Gateway{opts: opts, mount: []byte(NormalizeMount(opts.Mount)), pool: pool, log: opts.Logger, started: time.Now()}
	g.track = opts.StatusPath != "" && opts.Status != nil
	g.ids = newIDSource()
	g.refusals = newRefusalLog(g.log, realClock{}, refusalNames, refusalMessages)
	g.serverRefusals = newRefusalLog(g.log, realClock{}, serverRefusalNames, serverRefusalMessages)
	if g.track {
		g.metrics = newMetrics(g, opts.Status)
	}
	g.state.New = func() any { return &requestState{cgi: make([]byte, 0, 1024)} }
	return g
}

// NormalizeMount returns the mount prefix in the form SCRIPT_NAME takes: a leading "/", no
// trailing "/", and "" for the root.
func NormalizeMount(m string) string {
	m = strings.TrimRight(m, "/")
	if m != "" && !strings.HasPrefix(m, "/") {
		m = "/" + m
	}
	return m
}

// requestState is the per-request scratch, pooled.
type requestState struct {
	req    pyrunner.Request
	c      cgiRequest
	cgi    []byte // CGI header block being written
	w      *fcgi.ResponseWriter
	params *fcgi.Params

	// For the access log: the status sent and the body bytes after the headers.
	status int
	bytes  int64
	// declared is the Content-Length the app's response declared, or -1 when it declared
	// none or its response has no body (HEAD, 204, 304).
	declared int64
	head     bool       // the request is a HEAD
	obs      requestObs // its id and times (requestid.go)
	// idHeader: the response gets an X-Request-ID header (Options.RequestIDHeader).
	idHeader bool
}

// paramValue looks up a CGI param of the request being served.
func (cw *cgiWriter) paramValue(name string) ([]byte, bool) { return cw.params.Get(name) }

// ServeFCGI implements fcgi.Handler.
func (g *Gateway) ServeFCGI(w *fcgi.ResponseWriter, r *fcgi.Request) {
	g.accepted.Add(1)
	st := g.state.Get().(*requestState)
	st.obs = requestObs{arrived: time.Now()}
	defer func() {
		if g.opts.AccessLog != nil || g.metrics != nil {
			g.account(st, time.Now())
		}
		st.w, st.params = nil, nil
		st.status, st.bytes, st.declared = 0, 0, -1
		st.c = cgiRequest{} // drop references to the request's params
		st.req.Reset()
		g.state.Put(st)
	}()
	st.w = w
	st.params = &r.Params
	st.declared = -1
	method, _ := r.Params.Get("REQUEST_METHOD")
	st.head = string(method) == "HEAD"
	st.idHeader = g.opts.RequestIDHeader
	req := &st.req
	req.Reset()

	c := &st.c
	*c = cgiRequest{}
	for i, n := 0, r.Params.Len(); i < n; i++ {
		name, value := r.Params.At(i)
		if c.classify(name, value) == passParam && !st.obs.param(name, value) {
			req.EnvBytes(name, value)
		}
	}
	g.identify(&st.obs, req)
	c.forwarded(g.opts.TrustedProxies)
	if c.hasRemoteAddr {
		req.Env("REMOTE_ADDR", c.remoteAddr)
	}
	if c.host != nil {
		req.Env("HTTP_HOST", c.host)
	}
	split := derivePath(pathInput{mount: g.mount, scriptName: c.scriptName, pathInfo: c.pathInfo,
		requestURI: c.requestURI, scriptFilename: c.scriptFilename})
	if g.opts.StatusPath != "" && g.opts.Status != nil && isPath(split, g.opts.StatusPath) {
		q, _ := r.Params.Get("QUERY_STRING")
		format, full := parseStatusQuery(string(q))
		s := g.opts.Status.Status(full)
		s.Pool, s.StartTime, s.AcceptedConn = g.opts.PoolName, g.started, g.accepted.Load()
		if format == statusOpenMetrics {
			accept, _ := r.Params.Get("HTTP_ACCEPT")
			ctype, body := g.statusMetrics(accept)
			writeStatusBody(w, ctype, body, g.idHeaderLine(st))
		} else {
			writeStatus(w, s, format, full, time.Now(), g.idHeaderLine(st))
		}
		st.status, st.obs.ownPage = 200, true
		return
	}
	if g.opts.PingPath != "" && isPath(split, g.opts.PingPath) {
		st.status, st.obs.ownPage = 200, true
		io.WriteString(w, "Status: 200 OK\r\nContent-Type: text/plain\r\n"+g.idHeaderLine(st)+
			"Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n\r\npong\n")
		return
	}
	if split.conflict != "" {
		g.warnShape(split, c) // not for the gateway's own pages: they need no mount
	}
	if g.track {
		// For the status page's per-worker rows: references into the params, which stay put
		// until ServeFCGI returns; the pool copies them only when the page is asked for.
		req.Info.Method, _ = r.Params.Get("REQUEST_METHOD")
		req.Info.URI, req.Info.ContentLength = c.requestURI, c.contentLength
	}
	req.Env("SCRIPT_NAME", split.script)
	req.Env("PATH_INFO", split.path)
	req.EnvString("wsgi.url_scheme", c.urlScheme())
	roleEnv(req, r)

	cleanup, status := g.prepareBody(st, r)
	if cleanup != nil {
		defer cleanup()
	}
	if status != 0 {
		st.status = g.plainError(st, status, "")
		return
	}
	st.obs.dispatched = true
	if err := g.pool.Do(r.Context(), req, (*cgiWriter)(st)); err != nil {
		st.status = g.fail(st, err)
	} else if st.declared > st.bytes {
		// The app ended its body short of the length it declared: passed on, the web server
		// would wait for the rest, or keep the client's connection and let the next response
		// complete this body. Cut it, as a failure after the response began. (A longer body
		// never gets here: the worker stops it at the declared length.)
		g.log.Error("response cut short: the app's body is shorter than its Content-Length",
			"uri", string(c.requestURI), "content_length", st.declared, "body_bytes", st.bytes,
			"request_id", string(st.obs.id))
		w.Abort()
	}
}

// isPath reports whether the request's path (SCRIPT_NAME + PATH_INFO) is p.
func isPath(split pathResult, p string) bool {
	n := len(split.script)
	return len(p) == n+len(split.path) && p[:n] == string(split.script) && p[n:] == string(split.path)
}

// warnShape logs, once per distinct shape, that the front end's path params contradict each
// other, with the values of the first request that showed it.
func (g *Gateway) warnShape(split pathResult, c *cgiRequest) {
	key := split.rule + "|" + split.conflict
	if _, seen := g.warned.LoadOrStore(key, struct{}{}); seen {
		return
	}
	msg := "SCRIPT_NAME/PATH_INFO from the web server contradict each other; set --mount to say where the app lives"
	switch {
	case split.conflict == conflictMountShape:
		msg = "request outside --mount: the app sees its whole path as PATH_INFO, with SCRIPT_NAME empty"
	case len(g.mount) > 0:
		msg = "SCRIPT_NAME/PATH_INFO from the web server contradict each other; the app sees the path under --mount"
	}
	g.log.Warn(msg,
		"shape", split.conflict, "rule", split.rule, "mount", string(g.mount),
		"SCRIPT_NAME", string(c.scriptName), "PATH_INFO", string(c.pathInfo), "REQUEST_URI", string(c.requestURI),
		"app_sees_SCRIPT_NAME", string(split.script), "app_sees_PATH_INFO", string(split.path))
}

// prepareBody settles CONTENT_LENGTH and the body the worker reads. A body without a usable
// length is spooled first, because most frameworks read CONTENT_LENGTH and ignore
// wsgi.input_terminated. It returns a non-zero HTTP status when the request must be refused.
func (g *Gateway) prepareBody(st *requestState, r *fcgi.Request) (cleanup func(), status int) {
	req, c := &st.req, &st.c
	length, ok := c.declaredLength()
	switch {
	case ok:
		// With a length, a Transfer-Encoding the web server passed on no longer applies
		// (nginx de-chunks a body and still sends the client's header): it is dropped.
		if g.opts.MaxBody > 0 && length > g.opts.MaxBody {
			g.log.Warn("request body over the limit", "request_id", string(req.ID), "uri", string(c.requestURI), "length", length, "max_body", g.opts.MaxBody)
			return nil, 413
		}
		req.Env("CONTENT_LENGTH", c.contentLength)
		st.obs.bytesIn = length
		if !g.inline(req, r.Body, length) {
			return nil, 400
		}
		return nil, 0
	case r.Body.Complete() && r.Body.Buffered() == 0:
		// No body at all: keep what the web server said (often CONTENT_LENGTH "").
		if c.hasContentLength {
			req.Env("CONTENT_LENGTH", c.contentLength)
		}
		if c.transferEncodingValue != nil {
			req.Env("HTTP_TRANSFER_ENCODING", c.transferEncodingValue)
		}
		return nil, 0
	}
	sp, err := spool(r.Body, g.opts.SpoolMemory, g.opts.MaxBody, g.opts.TempDir)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			g.log.Warn("request body over the limit", "request_id", string(req.ID), "uri", string(c.requestURI), "max_body", g.opts.MaxBody)
			return nil, 413
		}
		g.log.Warn("request body not received", "request_id", string(req.ID), "uri", string(c.requestURI), "error", err)
		return nil, 400
	}
	req.EnvString("CONTENT_LENGTH", strconv.FormatInt(sp.size, 10))
	st.obs.bytesIn = sp.size
	if !g.inline(req, sp, sp.size) {
		sp.Close()
		return nil, 400
	}
	return sp.Close, 0
}

// inline puts the start of the body in the REQUEST frame: all of it when it has arrived and is
// small, otherwise what is already buffered; the rest is read when the app asks. It reports
// false when the buffered bytes could not be read (the request was aborted).
func (g *Gateway) inline(req *pyrunner.Request, body io.Reader, length int64) bool {
	avail := int64(0)
	if b, ok := body.(interface{ Buffered() int }); ok {
		avail = int64(b.Buffered())
	}
	n := min(avail, length)
	buf := req.InlineBody(int(n))
	if _, err := io.ReadFull(body, buf); err != nil {
		return false
	}
	if rest := length - int64(len(buf)); rest > 0 {
		req.Body = &exactReader{r: body, left: rest}
	}
	return true
}

// exactReader reads exactly the declared length: never past it (PEP 3333), and a body that
// ends before it (the client went away) is an error, which the app's read raises, not a short
// body passed off as whole.
type exactReader struct {
	r    io.Reader
	left int64
}

// SetReadDeadline bounds the wait for the web server's next body bytes, when the body
// supports it (fcgi.Body does; a spooled body is all here already).
func (e *exactReader) SetReadDeadline(t time.Time) error {
	if d, ok := e.r.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("request body ended %d bytes before its CONTENT_LENGTH: %w", e.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// cgiWriter adapts the fcgi response to the pool's ResponseWriter: the status and headers
// become a CGI header block, written with the body into the same output buffer.
type cgiWriter requestState

func (cw *cgiWriter) WriteHeader(status []byte, h pyrunner.Header) error {
	cw.status = int(status[0]-'0')*100 + int(status[1]-'0')*10 + int(status[2]-'0') // validated by pyrunner
	b := append(cw.cgi[:0], "Status: "...)
	b = append(b, status...)
	b = append(b, '\r', '\n')
	success := status[0] == '2'
	bodyless := cw.head || cw.status == 204 || cw.status == 304
	idHeader := cw.idHeader
	h.Each(func(name, value []byte) {
		if !bodyless && cw.declared < 0 && len(name) == 14 && bytes.EqualFold(name, []byte("Content-Length")) {
			cw.declared = parseLength(value)
		}
		if idHeader && len(name) == len("X-Request-ID") && bytes.EqualFold(name, []byte("X-Request-ID")) {
			idHeader = false // the app's own
		}
		b = append(b, name...)
		b = append(b, ':', ' ')
		if success && len(value) > 0 && value[0] == '/' && len(name) == 8 && bytes.EqualFold(name, []byte("Location")) {
			// CGI (RFC 3875 section 6.2.2) makes a local-path Location a "local redirect" that
			// Apache serves internally: an app's 2xx with a relative Location would be
			// replaced by another page. An absolute URL keeps the app's response.
			b = cw.appendOrigin(b)
		}
		b = append(b, value...)
		b = append(b, '\r', '\n')
	})
	if idHeader {
		b = appendIDHeader(b, cw.obs.id)
	}
	b = append(b, '\r', '\n')
	cw.cgi = b
	_, err := cw.w.Write(b)
	return err
}

// parseLength parses a Content-Length value (RFC 9110 section 8.6: digits, here with the
// spaces around them allowed); -1 when it is not one.
func parseLength(v []byte) int64 {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// appendOrigin appends scheme://host of the request, as the app sees them.
func (cw *cgiWriter) appendOrigin(b []byte) []byte {
	c := &cw.c
	b = append(b, c.urlScheme()...)
	b = append(b, "://"...)
	if len(c.host) > 0 {
		return append(b, c.host...)
	}
	// RFC 3875 section 4.1.14/4.1.15: SERVER_NAME and SERVER_PORT name the server otherwise.
	name, _ := cw.paramValue("SERVER_NAME")
	port, _ := cw.paramValue("SERVER_PORT")
	b = append(b, name...)
	scheme := c.urlScheme()
	if len(port) > 0 && !(scheme == "http" && string(port) == "80") && !(scheme == "https" && string(port) == "443") {
		b = append(append(b, ':'), port...)
	}
	return b
}

func (cw *cgiWriter) Write(p []byte) (int, error) {
	cw.bytes += int64(len(p))
	return cw.w.Write(p)
}
func (cw *cgiWriter) Flush() error { return cw.w.Flush() }

// SetWriteDeadline bounds the writes to the web server (the pool sets the request's
// --timeout/--soft-timeout, so a web server that stops reading does not hold a worker).
func (cw *cgiWriter) SetWriteDeadline(t time.Time) error { return cw.w.SetWriteDeadline(t) }

// fail answers for a request the pool could not serve. It returns the status sent (for the
// access log), or 0 when nothing could be.
func (g *Gateway) fail(st *requestState, err error) int {
	w, uri, id := st.w, string(st.c.requestURI), string(st.obs.id)
	var xe *pyrunner.ExchangeError
	switch {
	case errors.Is(err, pyrunner.ErrQueueFull):
		g.refused(refusedQueueFull, id, uri)
		return g.plainError(st, 503, "Retry-After: 1\r\n")
	case errors.Is(err, pyrunner.ErrQueueTimeout):
		g.refused(refusedQueueTimeout, id, uri)
		return g.plainError(st, 503, "Retry-After: 1\r\n")
	case errors.Is(err, pyrunner.ErrClosed):
		g.refused(refusedClosing, id, uri)
		return g.plainError(st, 503, "Retry-After: 1\r\n")
	case errors.As(err, &xe) && xe.Started:
		// The status went out already: cut the response so the web server does not pass a
		// truncated body off as whole.
		if !errors.Is(err, fcgi.ErrConnClosed) && !errors.Is(err, pyrunner.ErrCanceled) {
			g.log.Error("response cut short", "request_id", id, "uri", uri, "error", err)
		}
		w.Abort()
		return 0
	case errors.As(err, &xe) && errors.Is(err, pyrunner.ErrBadHeader):
		g.log.Error("app sent an invalid response header", "request_id", id, "uri", uri, "error", err)
		return g.plainError(st, 500, "")
	case errors.As(err, &xe) && errors.Is(err, pyrunner.ErrTimeout):
		// Past --timeout the pool logged the worker's Python stack and killed it; past
		// --soft-timeout it interrupted the app and keeps the worker.
		g.log.Error("request timed out", "request_id", id, "uri", uri, "error", err)
		return g.plainError(st, 504, "")
	case errors.Is(err, pyrunner.ErrCanceled):
		// The web server gave up on the request: the worker was told to stop it.
		g.log.Debug("request cancelled by the web server", "request_id", id, "uri", uri, "error", err)
		return 0
	case errors.As(err, &xe):
		g.log.Error("worker failed", "request_id", id, "uri", uri, "error", err)
		return g.plainError(st, 502, "")
	case errors.Is(err, context.Canceled):
		// The web server aborted the request while it waited for a worker.
		g.log.Debug("request cancelled by the web server while it waited for a worker", "request_id", id, "uri", uri)
		return 0
	default:
		// An error writing to the web server: it went away; nothing to answer.
		if !errors.Is(err, fcgi.ErrConnClosed) && !errors.Is(err, fcgi.ErrRequestAborted) {
			g.log.Debug("response not delivered", "request_id", id, "uri", uri, "error", err)
		}
		return 0
	}
}

// idHeaderLine is the X-Request-ID header line of the gateway's own responses, or "" without
// Options.RequestIDHeader.
func (g *Gateway) idHeaderLine(st *requestState) string {
	if !st.idHeader {
		return ""
	}
	return string(appendIDHeader(nil, st.obs.id))
}

// refused counts a 503 by cause, and logs it (at most a line a second per cause).
func (g *Gateway) refused(cause int, id, uri string) {
	if g.metrics != nil {
		g.metrics.refused[cause].Inc()
	}
	g.refusals.note(cause, id, uri, "")
}

// plainError writes a short text/plain response of the gateway's own; it returns status.
func (g *Gateway) plainError(st *requestState, status int, extraHeaders string) int {
	text := statusText(status)
	extraHeaders += g.idHeaderLine(st)
	fmt.Fprintf(st.w, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n%s\r\n%d %s\n", status, text, extraHeaders, status, text)
	return status
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 413:
		return "Content Too Large"
	case 500:
		return "Internal Server Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}

// roleEnv tells the app which FastCGI role it plays, as the FastCGI C library does: FCGI_ROLE
// is RESPONDER or AUTHORIZER (Apache mod_authnz_fcgi sends it itself; other web servers do
// not). An authorizer answers 200 to let the request through, with "Variable-NAME: value"
// headers the web server passes on; any other status is the client's answer.
func roleEnv(req *pyrunner.Request, r *fcgi.Request) {
	if _, ok := r.Params.Get("FCGI_ROLE"); ok {
		return
	}
	if r.Role == fcgi.RoleAuthorizer {
		req.EnvString("FCGI_ROLE", "AUTHORIZER")
	} else {
		req.EnvString("FCGI_ROLE", "RESPONDER")
	}
}
