//go:build linux

// probe.go: "wsgi-fcgi probe ADDR [PATH]", a FastCGI client that sends one request to a running
// gateway and exits 0 on a 2xx, 1 otherwise, with one line saying why — for Docker HEALTHCHECK
// and Kubernetes exec probes, where no web server runs beside the gateway.

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/yookoala/gofast"
)

// probeUsage is what wsgi-fcgi probe --help prints.
const probeUsage = `Usage: wsgi-fcgi probe [--timeout DURATION] [--host HOST] ADDR [PATH]

Sends one GET request over FastCGI to the gateway listening on ADDR (host:port,
[::1]:port, /path/to.sock or unix:PATH) and exits 0 when the app answers 2xx,
1 when it does not or cannot be reached, 2 on a usage error. PATH defaults to /.
For Docker's HEALTHCHECK and Kubernetes' exec probes.

Flags:
`

// runProbe is the probe subcommand; it returns the exit status.
func runProbe(args []string, stdout, stderr io.Writer) int {
	timeout, host := Duration(5*time.Second), "localhost"
	set := []setting{
		{name: "timeout", value: &timeout, arg: argDuration, noEnv: true, usage: "give up after this long"},
		{name: "host", value: &host, arg: "HOST", example: "www.example.com", noEnv: true, usage: "the Host header (and SERVER_NAME) of the request"},
	}
	rest, err := parseArgs(args, set, "wsgi-fcgi probe", nil)
	switch {
	case errors.Is(err, errHelp):
		io.WriteString(stdout, probeUsage)
		for _, s := range set {
			var b strings.Builder
			writeSettingHelp(&b, s)
			io.WriteString(stdout, b.String())
		}
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "wsgi-fcgi probe: %v\n", err)
		return exitConfig
	case len(rest) < 1 || len(rest) > 2:
		fmt.Fprintln(stderr, "wsgi-fcgi probe: Usage: wsgi-fcgi probe [--timeout DURATION] [--host HOST] ADDR [PATH]; e.g. wsgi-fcgi probe 127.0.0.1:9000 /fcgi-ping")
		return exitConfig
	}
	addr, target := rest[0], "/"
	if len(rest) == 2 {
		target = rest[1]
	}
	status, reason, err := probe(addr, target, host, time.Duration(timeout))
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "probe %s %s: %v\n", addr, target, err)
		return exitFailed
	case status < 200 || status > 299:
		fmt.Fprintf(stderr, "probe %s %s: status %d %s\n", addr, target, status, reason)
		return exitFailed
	}
	fmt.Fprintf(stdout, "probe %s %s: status %d %s\n", addr, target, status, reason)
	return exitOK
}

// probe sends GET target to the FastCGI responder at addr and returns the response status.
func probe(addr, target, host string, timeout time.Duration) (int, string, error) {
	if !strings.HasPrefix(target, "/") {
		return 0, "", fmt.Errorf("path %q must start with /", target)
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return 0, "", fmt.Errorf("path %q: %w", target, err)
	}
	network, address := dialAddr(addr)
	deadline := time.Now().Add(timeout)
	connect := func() (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(deadline)
		return c, nil
	}
	client, err := gofast.SimpleClientFactory(connect)()
	if err != nil {
		return 0, "", fmt.Errorf("connect: %w", err)
	}
	defer client.Close()

	req := gofast.NewRequest(nil)
	for k, v := range map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"REQUEST_METHOD":    "GET",
		"REQUEST_URI":       target,
		"SCRIPT_NAME":       "",
		"PATH_INFO":         u.Path,
		"QUERY_STRING":      u.RawQuery,
		"SERVER_NAME":       host,
		"SERVER_PORT":       "80",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_SOFTWARE":   "wsgi-fcgi-probe/" + version,
		"REMOTE_ADDR":       "127.0.0.1",
		"REQUEST_SCHEME":    "http",
		"HTTP_HOST":         host,
		"HTTP_USER_AGENT":   "wsgi-fcgi-probe/" + version,
		"CONTENT_LENGTH":    "",
	} {
		req.Params[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("request: %w", err)
	}
	rec := &statusRecorder{header: make(http.Header)}
	var stderrOut bytes.Buffer
	if err := resp.WriteTo(rec, &stderrOut); err != nil {
		return 0, "", fmt.Errorf("response: %w", err)
	}
	if rec.status == 0 {
		return 0, "", errors.New("no response (connection closed before the headers)")
	}
	reason := http.StatusText(rec.status)
	if s := rec.header.Get("Status"); s != "" {
		if _, r, ok := strings.Cut(s, " "); ok {
			reason = r
		}
	}
	return rec.status, reason, nil
}

// dialAddr maps a listen address (as --listen takes it) to what net.Dial wants.
func dialAddr(addr string) (network, address string) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	case strings.Contains(addr, "/"):
		return "unix", addr
	}
	if _, err := strconv.Atoi(addr); err == nil {
		return "tcp", net.JoinHostPort("127.0.0.1", addr) // a bare port
	}
	return "tcp", addr
}

// statusRecorder is the http.ResponseWriter gofast writes the response into: only the status
// and headers are kept.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(p), nil
}
