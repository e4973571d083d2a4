//go:build linux

// devhttp.go: the --http development front end: a plain HTTP server that passes each request
// over FastCGI (gofast's client) to the gateway's own listener, so curl and a browser work
// without installing a web server. Not for production: no TLS, a new FastCGI connection per
// request, no limits beyond the gateway's own.

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/yookoala/gofast"
)

// devHTTP is a running development front end.
type devHTTP struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// startDevHTTP listens on httpAddr and forwards to the FastCGI listener at fcgiAddr.
func startDevHTTP(httpAddr string, fcgiAddr net.Addr, log hclog.Logger) (*devHTTP, error) {
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", httpAddr, err)
	}
	// The app is mounted at the root: the whole path is PATH_INFO, as Caddy sends it.
	rootMount := func(inner gofast.SessionHandler) gofast.SessionHandler {
		return func(client gofast.Client, req *gofast.Request) (*gofast.ResponsePipe, error) {
			req.Params["SCRIPT_NAME"] = ""
			req.Params["PATH_INFO"] = req.Raw.URL.Path
			req.Params["DOCUMENT_URI"] = req.Raw.URL.Path
			if req.Params["REQUEST_SCHEME"] == "" {
				req.Params["REQUEST_SCHEME"] = "http"
			}
			req.Params["SERVER_SOFTWARE"] = "wsgi-fcgi-dev/" + version
			return inner(client, req)
		}
	}
	session := gofast.Chain(gofast.BasicParamsMap, gofast.MapHeader, rootMount)(gofast.BasicSession)
	handler := &devHandler{session: session, network: fcgiAddr.Network(), address: fcgiAddr.String(), log: log}
	d := &devHTTP{
		srv: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { d.done <- d.srv.Serve(ln) }()
	return d, nil
}

// URL is where the front end answers.
func (d *devHTTP) URL() string { return "http://" + d.ln.Addr().String() + "/" }

// shutdown stops accepting and waits for running requests until ctx ends.
func (d *devHTTP) shutdown(ctx context.Context) error {
	err := d.srv.Shutdown(ctx)
	if serr := <-d.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
