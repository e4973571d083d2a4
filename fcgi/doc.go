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
// Not supported: the Filter role and its FCGI_DATA stream (answered with
// FCGI_UNKNOWN_ROLE); FCGI_CANT_MPX_CONN and FCGI_OVERLOADED are never sent;
// bodies are not spooled, so at most 256 KiB of a request's body is buffered
// and a handler that does not read its body holds up its connection.
//
// Connections: without FCGI_KEEP_CONN a connection is closed once its
// request has been answered. The web server closing its end ends the
// connection too: requests still running see their bodies fail and their
// contexts canceled with ErrConnClosed, since that is how web servers
// abandon requests. A record that breaks the protocol (a bad version, a
// truncated record, a record for a request id that was never begun) closes
// that connection only and is reported through Server.ConnError. The
// specification asks that records for inactive ids be ignored; this package
// ignores them only for ids it ended itself (an abort, a refused role, a
// body still arriving after its handler returned), and ignores
// FCGI_ABORT_REQUEST for any id that is not active, since an abort may cross
// the FCGI_END_REQUEST on the wire.
//
// The package knows nothing of HTTP, CGI variables beyond their encoding, or
// what runs behind the Handler, and it never logs: connection errors reach
// the caller through Server.ConnError.
//
// The protocol is specified in "FastCGI Specification", Mark R. Brown, Open
// Market, 1996 (document version 1.0); comments quote it where a rule is
// odd.
package fcgi
