//go:build linux

// cgi.go: CGI mode. Started by a web server as a CGI program (Apache mod_cgi, mod_cgid,
// suexec, a cgi-bin), the gateway serves the one request in its environment with one worker
// and exits: the same app.fcgi then works where a host offers no FastCGI.

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// cgiProbe is what cgiInvoked reads of the process: a seam for tests.
type cgiProbe struct {
	getenv       func(string) string
	getpid       func() int
	fd0Listening func() bool
}

var osCGIProbe = cgiProbe{getenv: os.Getenv, getpid: os.Getpid, fd0Listening: fd0IsListening}

// cgiInvoked reports whether the gateway was started as a CGI program (RFC 3875): the web
// server set GATEWAY_INTERFACE, and no FastCGI socket is there to serve: none on fd 0
// (mod_fcgid, spawn-fcgi), none from systemd (LISTEN_FDS for this process), and no --listen
// (or WSGI_FCGI_LISTEN) naming one.
func cgiInvoked(cfg *Config, p cgiProbe) bool {
	if p.getenv("GATEWAY_INTERFACE") == "" {
		return false
	}
	if cfg.listenSet || p.getenv(envPrefix+"_LISTEN") != "" {
		return false
	}
	if p.getenv("LISTEN_FDS") != "" && p.getenv("LISTEN_PID") == strconv.Itoa(p.getpid()) {
		return false
	}
	return !p.fd0Listening()
}

// fd0IsListening reports whether fd 0 is a listening socket (FCGI_LISTENSOCK_FILENO).
func fd0IsListening() bool {
	v, err := syscall.GetsockoptInt(0, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// useCGISettings makes the settings fit one request: one worker process with one thread and
// no preload master to fork it, and no socket (the default --listen address is neither
// checked nor opened). The info level becomes warn: its lines (the worker started)
// would be in the web server's error log once per request; debug and trace stay.
func useCGISettings(cfg *Config) {
	if strings.EqualFold(cfg.LogLevel, "info") {
		cfg.LogLevel = "warn"
	}
	cfg.Workers, cfg.Threads = 1, 1
	cfg.PM = "static"
	cfg.PMStart, cfg.PMMinSpare, cfg.PMMaxSpare = 0, 0, 0
	cfg.Preload = false
	cfg.MaxRequests, cfg.MaxRequestsJitter = 0, 0
	cfg.Reload = false
	cfg.HTTP = ""
	cfg.Listen = ""
}

// cgiParams returns the request's CGI variables from the process environment: all of it
// (the web server's variables, and whatever the wrapper script exported), except the
// gateway's own settings (WSGI_FCGI_*) and the variables a shell sets for every script it runs
// (PWD, OLDPWD, SHLVL, _), which are not the request's.
func cgiParams(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, envPrefix+"_"):
		case name == "PWD", name == "OLDPWD", name == "SHLVL", name == "_":
		default:
			out = append(out, kv)
		}
	}
	return out
}

// cgiWorkerEnv returns the Python worker's environment in CGI mode: the process environment
// without the request's variables, which reach the app in its environ only (as in FastCGI
// mode). A client's headers (HTTP_*, HTTP_PROXY among them) never reach os.environ, nor the
// processes the app starts.
func cgiWorkerEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !isRequestVar(name) {
			out = append(out, kv)
		}
	}
	return out
}

// isRequestVar reports whether name is one of the request's variables: the CGI
// meta-variables of RFC 3875 section 4.1, those Apache adds for each request
// (ap_add_common_vars, ap_add_cgi_vars), and the HTTP_*, SSL_* and REDIRECT_* families.
func isRequestVar(name string) bool {
	switch name {
	case "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "PATH_INFO",
		"PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT",
		"REMOTE_USER", "REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT",
		"SERVER_PROTOCOL", "SERVER_SOFTWARE",
		"REQUEST_URI", "REQUEST_SCHEME", "SCRIPT_FILENAME", "SCRIPT_URI", "SCRIPT_URL",
		"DOCUMENT_ROOT", "CONTEXT_PREFIX", "CONTEXT_DOCUMENT_ROOT", "SERVER_ADDR", "SERVER_ADMIN",
		"SERVER_SIGNATURE", "REMOTE_PORT", "HTTPS", "UNIQUE_ID":
		return true
	}
	return strings.HasPrefix(name, "HTTP_") || strings.HasPrefix(name, "SSL_") || strings.HasPrefix(name, "REDIRECT_")
}

// serveCGI serves the one request of the CGI invocation through h, then stops the pool's
// worker (as a graceful drain would) and returns the exit status. Cancelling ctx (the web
// server's SIGTERM) ends the request as a web server closing its FastCGI connection would.
func serveCGI(ctx context.Context, cfg *Config, h fcgi.Handler, pool *pyrunner.Pool, stdout, stderr io.Writer, log hclog.Logger) int {
	// A web server that went away makes writes to stdout fail with EPIPE, handled as a FastCGI
	// connection closing, rather than kill the gateway with SIGPIPE and its worker after it.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	srv := &fcgi.Server{Handler: h, MaxParamsSize: int(cfg.MaxParams)}
	if err := srv.ServeCGI(ctx, cgiParams(os.Environ()), os.Stdin, stdout, stderr); err != nil {
		log.Debug("response not delivered: the web server went away", "error", err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.DrainTimeout))
	defer cancel()
	if err := pool.Shutdown(dctx); err != nil {
		log.Warn("worker killed at the drain timeout", "error", err)
	}
	return exitOK
}

// writeCGIError answers the request with a plain error page of the gateway's own, as the
// gateway answers a FastCGI request it cannot serve.
func writeCGIError(w io.Writer, status int, text string) {
	fmt.Fprintf(w, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%d %s\n", status, text, status, text)
}
