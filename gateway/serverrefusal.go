// serverrefusal.go: the requests the FastCGI server turns away before they reach the
// gateway's handler (fcgi.Server.Refused): over --max-conns or --max-concurrent-requests
// (FCGI_OVERLOADED), a second request on a connection under --no-multiplex, a role not
// served, params over --max-params (the server's own 431), and a multiplexed body over
// --max-spool. Each is counted in the metrics by cause and logged with its error; those of
// overload (FCGI_OVERLOADED) at most once a second per cause, since under overload every
// request may be one. The 431, an HTTP answer, also gets its access log line.

package gateway

import (
	"errors"
	"net"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// The causes of a refusal by the FastCGI server, in the order of serverRefusalNames.
const (
	serverRefusedConns = iota
	serverRefusedRequests
	serverRefusedMultiplex
	serverRefusedRole
	serverRefusedParams
	serverRefusedSpool
	numServerRefusals
)

// serverRefusalNames are the "cause" of the log lines and the metric's label values.
var serverRefusalNames = []string{"too_many_conns", "too_many_requests", "cant_multiplex", "unknown_role", "params_too_large", "body_too_large"}

// serverRefusalMessages are the log lines' messages, by cause.
var serverRefusalMessages = []string{
	"FastCGI request refused: FCGI_OVERLOADED, over --max-conns connections",
	"FastCGI request refused: FCGI_OVERLOADED, over --max-concurrent-requests requests in progress",
	"FastCGI request refused: FCGI_CANT_MPX_CONN, a second request on a connection under --no-multiplex",
	"FastCGI request refused: FCGI_UNKNOWN_ROLE, a role the gateway does not serve",
	"FastCGI request refused: 431, params over --max-params",
	"FastCGI request body cut: its unread part over --max-spool",
}

// serverRefusalCause maps an error of fcgi.Server.Refused to its cause; false if it is none
// of them.
func serverRefusalCause(err error) (int, bool) {
	for cause, sentinel := range [numServerRefusals]error{
		serverRefusedConns:     fcgi.ErrTooManyConns,
		serverRefusedRequests:  fcgi.ErrTooManyRequests,
		serverRefusedMultiplex: fcgi.ErrCantMultiplex,
		serverRefusedRole:      fcgi.ErrUnknownRole,
		serverRefusedParams:    fcgi.ErrParamsTooLarge,
		serverRefusedSpool:     fcgi.ErrBodyTooLarge,
	} {
		if errors.Is(err, sentinel) {
			return cause, true
		}
	}
	return 0, false
}

// ServerRefused accounts for a request the FastCGI server refused: give it as
// fcgi.Server.Refused. remote is the web server's address.
func (g *Gateway) ServerRefused(remote net.Addr, err error) {
	cause, ok := serverRefusalCause(err)
	if !ok {
		g.log.Warn("FastCGI request refused", "remote", remote, "error", err)
		return
	}
	if g.metrics != nil {
		g.metrics.serverRefused[cause].Inc()
	}
	switch cause {
	case serverRefusedConns, serverRefusedRequests:
		g.serverRefusals.note(cause, "", "", err.Error())
	default:
		g.log.Warn(serverRefusalMessages[cause], "cause", serverRefusalNames[cause], "remote", remote, "error", err)
	}
	if cause == serverRefusedParams && g.opts.AccessLog != nil {
		// The server answered 431 before any param was kept: the line has the status and
		// the time, and "-" for what the params would have told.
		g.opts.AccessLog.log(&accessEntry{start: time.Now(), status: 431})
	}
}
