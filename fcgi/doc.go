// Package fcgi is a FastCGI 1.0 application library: it serves the
// Responder and Authorizer roles to a web server (nginx, Apache
// mod_proxy_fcgi or mod_fcgid, Caddy) over TCP or unix sockets.
//
// A Server reads records on each connection in one goroutine, which alone
// owns the connection's requests, and calls the Handler in a goroutine per
// request as soon as the request's FCGI_PARAMS stream has ended. The handler
// gets the params as raw bytes (Params), the FCGI_STDIN stream as a bounded,
// streaming reader (Body), and a ResponseWriter whose output leaves in as few
// write syscalls as possible. Requests multiplexed on one connection run
// concurrently; FCGI_KEEP_CONN, FCGI_ABORT_REQUEST and FCGI_GET_VALUES
// (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS) are honoured.
//
// Limits (Server fields, each with a default): MaxConns connections, past
// which a connection's requests are answered FCGI_OVERLOADED and it is
// closed; MaxReqs requests in progress over all connections, past which
// FCGI_BEGIN_REQUEST is answered FCGI_OVERLOADED; NoMultiplex, which
// answers a second concurrent request on a connection FCGI_CANT_MPX_CONN;
// MaxParamsSize, past which a request is answered "Status: 431" by the
// package; StallTimeout, after which a connection left in the middle of a
// record is closed. FCGI_GET_VALUES reports the limits in force. Each limit
// that bites is reported through Server.Refused or Server.ConnError.
//
// Bodies: each request buffers at most 256 KiB of FCGI_STDIN in memory.
// On a connection that carries one request at a time (nginx, Apache and
// Caddy never multiplex), a request whose handler does not read holds the
// connection back, which is backpressure to the web server. On a
// multiplexed connection (two requests in progress at once, now or before,
// or a web server that asked FCGI_MPXS_CONNS), the overflow is spooled to
// an unlinked temp file (at most Server.MaxSpool unread bytes), so that no
// request waits on another and memory stays bounded. A web server that
// multiplexes without asking, and sends its first concurrent request behind
// a body the handler is not reading, waits for that handler.
//
// FCGI_ABORT_REQUEST, or the connection dropping, cancels the request's
// context and fails its body. After an abort FCGI_END_REQUEST is sent at
// once, the handler's writes fail with ErrRequestAborted and its unsent
// output is dropped; it still counts against MaxReqs until it returns.
// An Authorizer request has no FCGI_STDIN: its body is empty.
//
// Not supported: the Filter role and its FCGI_DATA stream (answered with
// FCGI_UNKNOWN_ROLE).
//
// Connections: without FCGI_KEEP_CONN a connection is closed once its
// request has been answered. The web server closing its end ends the
// connection too: requests still running see their bodies fail and their
// contexts canceled with ErrConnClosed, since that is how web servers
// abandon requests. A web server that only shuts down its sending side
// (shutdown(SHUT_WR)) once it has sent its requests is still answered: the
// requests it sent whole (params and body ended) run to their end, then the
// connection is closed, as php-fpm does; one it left unfinished is
// abandoned. On a unix socket the two kinds of end are told apart at once;
// over TCP they look the same until a write fails, so there a request sent
// whole runs on until its output meets the closed connection. A record that breaks the protocol (a bad version, a
// truncated record, a record for a request id that was never begun) closes
// that connection only and is reported through Server.ConnError. The
// specification asks that records for inactive ids be ignored; this package
// ignores them only for ids it ended itself (an abort, a refused role, a
// body still arriving after its handler returned), and ignores
// FCGI_ABORT_REQUEST for any id that is not active, since an abort may cross
// the FCGI_END_REQUEST on the wire.
//
// The package knows nothing of HTTP, CGI variables beyond their encoding
// and the CGI "Status:" line of its own 431 answer, or what runs behind the
// Handler, and it never logs: connection errors and refusals reach the
// caller through Server.ConnError and Server.Refused.
//
// The protocol is specified in "FastCGI Specification", Mark R. Brown, Open
// Market, 1996 (document version 1.0); comments quote it where a rule is
// odd.
package fcgi
