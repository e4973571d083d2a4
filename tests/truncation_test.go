//go:build integration

// Responses an app breaks off or that lie about themselves (tests/apps/cutapp.py), through
// every front end: what docs/frontends.md ("A response cut short") promises per front end,
// checked with a real HTTP client. A cut response must not look complete: a chunked body
// without its final chunk, fewer bytes than its Content-Length before the connection closed,
// or no response at all. A body longer than its Content-Length is cut down to it and the
// connection serves the next response intact; an interim status (1xx) is a 500.

package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// cutTimeout bounds one request: Apache closes the client's connection of a cut response only
// after its KeepAliveTimeout (5 s by default).
const cutTimeout = 30 * time.Second

// outcome is what an HTTP client made of one response.
type outcome struct {
	status int
	body   []byte
	err    error // the request or the body failed: the response is not complete
}

// complete reports whether the client took the response for whole.
func (o outcome) complete() bool { return o.err == nil }

// passedOff reports whether the client took the app's broken response (a 200) for a whole one.
// A cut one is incomplete; one cut before any byte left the gateway becomes a whole error
// response of the web server's own (502; 503 from Apache).
func (o outcome) passedOff() bool { return o.complete() && o.status == http.StatusOK }

func (o outcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("status %d, %d body bytes, then %v", o.status, len(o.body), o.err)
	}
	return fmt.Sprintf("status %d, complete body %q", o.status, o.body)
}

// fetch GETs url with client and reads the whole body.
func fetch(client *http.Client, url string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), cutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return outcome{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return outcome{resp.StatusCode, b, err}
}

// truncationFrontEnd is one front end and what it guarantees for a response the gateway cut.
type truncationFrontEnd struct {
	frontEnd
	// cutsUnknownLength: a cut response without a Content-Length reaches the client cut.
	// Caddy 2.6 ends it as if it were whole (docs/frontends.md).
	cutsUnknownLength bool
}

// nginxTruncationConf is an nginx site with the four combinations of fastcgi_buffering and
// fastcgi_keep_conn, to the gateway over the unix socket (/u/...) and over TCP (/t/...).
func nginxTruncationConf(unixUpstream, tcpUpstream string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream gw_unix {\n    server %s;\n    keepalive 4;\n}\n", unixUpstream)
	fmt.Fprintf(&b, "upstream gw_tcp {\n    server %s;\n    keepalive 4;\n}\n", tcpUpstream)
	fmt.Fprintf(&b, "server {\n    listen 127.0.0.1:%d;\n", port)
	for _, up := range []string{"unix", "tcp"} {
		for _, buf := range []string{"on", "off"} {
			for _, keep := range []string{"on", "off"} {
				fmt.Fprintf(&b, "    location /%s/buffering-%s/keep-conn-%s/ {\n        include fastcgi_params;\n"+
					"        fastcgi_pass gw_%s;\n        fastcgi_buffering %s;\n        fastcgi_keep_conn %s;\n    }\n",
					up[:1], buf, keep, up, buf, keep)
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func TestTruncation(t *testing.T) {
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
	g := gatewayForFrontEnds(t, "cutapp:application", "--listen", tcpAddr, "--http", httpAddr)
	if err := waitDial(g.process, "tcp", httpAddr, startTimeout); err != nil {
		t.Fatal(err)
	}
	var fronts []truncationFrontEnd
	port := freePort(t, "tcp4", "127.0.0.1")
	n := startNginxConf(t, nginxTruncationConf(g.upstream, tcpAddr, port), port)
	for _, up := range []string{"unix", "tcp"} {
		for _, buf := range []string{"on", "off"} {
			for _, keep := range []string{"on", "off"} {
				fronts = append(fronts, truncationFrontEnd{frontEnd{
					fmt.Sprintf("nginx over %s, fastcgi_buffering %s, fastcgi_keep_conn %s", up, buf, keep),
					fmt.Sprintf("%s/%s/buffering-%s/keep-conn-%s", n.base, up[:1], buf, keep)}, true})
			}
		}
	}
	for _, fe := range startFrontEnds(t, g) {
		if strings.HasPrefix(fe.name, "nginx") {
			continue // above, in every configuration
		}
		fronts = append(fronts, truncationFrontEnd{fe, !strings.HasPrefix(fe.name, "Caddy")})
	}
	a := startApache(t, []string{"proxy", "proxy_fcgi", "alias"}, func(port int) string {
		return deployFile(t, "apache/wsgi-fcgi.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"unix:/run/wsgi-fcgi/wsgi-fcgi.sock|fcgi://localhost/", "fcgi://"+tcpAddr+"/")
	})
	fronts = append(fronts, truncationFrontEnd{frontEnd{"Apache mod_proxy_fcgi over TCP", a.base}, true})
	fronts = append(fronts, truncationFrontEnd{frontEnd{"--http", "http://" + httpAddr}, true})

	for _, fe := range fronts {
		t.Run(fe.name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			t.Run("exception after the first chunk", func(t *testing.T) {
				o := fetch(client, fe.base+"/raise-after-first")
				switch {
				case !o.passedOff():
					t.Logf("cut: %v", o)
				case fe.cutsUnknownLength:
					t.Errorf("the client took a broken-off response for complete: %v", o)
				default:
					t.Logf("not guaranteed here, and passed off as complete: %v", o)
				}
			})
			t.Run("exception after the first chunk, with a Content-Length", func(t *testing.T) {
				if o := fetch(client, fe.base+"/raise-after-first-with-length"); o.passedOff() {
					t.Errorf("the client took a broken-off response for complete: %v", o)
				} else {
					t.Logf("cut: %v", o)
				}
			})
			t.Run("body shorter than its Content-Length", func(t *testing.T) {
				if o := fetch(client, fe.base+"/short-length"); o.passedOff() {
					t.Errorf("the client took a short body for complete: %v", o)
				} else {
					t.Logf("cut: %v", o)
				}
			})
			t.Run("body longer than its Content-Length, then the next response", func(t *testing.T) {
				// On one connection: the extra bytes must not become the next response's start.
				var reused []bool
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
				for _, step := range []struct{ path, want string }{{"/long-length", "long "}, {"/ok", "ok\n"}} {
					ctx := httptrace.WithClientTrace(context.Background(), trace)
					req, _ := http.NewRequestWithContext(ctx, "GET", fe.base+step.path, nil)
					resp, err := client.Do(req)
					if err != nil {
						t.Fatalf("GET %s: %v", step.path, err)
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || string(b) != step.want {
						t.Errorf("GET %s: status %d, body %q, %v; want 200, %q", step.path, resp.StatusCode, b, err, step.want)
					}
				}
				t.Logf("connections reused: %v", reused)
			})
			for _, code := range []string{"100", "101", "103"} {
				t.Run("status "+code, func(t *testing.T) {
					if o := fetch(client, fe.base+"/status/"+code); o.status != 500 || !o.complete() || strings.Contains(string(o.body), "interim") {
						t.Errorf("want a complete 500 of the gateway's own: %v", o)
					}
				})
			}
		})
	}

	t.Run("raw FastCGI", func(t *testing.T) {
		// What every front end above is given: the response's start, an FCGI_STDERR record
		// saying why, a record header of version 0, and the end of the connection; never
		// FCGI_END_REQUEST.
		for _, path := range []string{"/raise-after-first", "/short-length"} {
			for _, network := range []struct{ network, address string }{{g.network, g.address}, {"tcp", tcpAddr}} {
				c := dialGateway(t, network.network, network.address)
				c.Write(fcgiRequest(1, "GET", path, nil, true))
				c.SetReadDeadline(time.Now().Add(cutTimeout))
				var types []byte
				var err error
				for {
					var rc fcgiRec
					if rc, err = readFcgiRec(c); err != nil {
						break
					}
					types = append(types, rc.typ)
				}
				if len(types) == 0 || types[len(types)-1] != fcgiStderr || !strings.Contains(err.Error(), "record version 0") {
					t.Errorf("%s over %s: record types %v, then %v; want FCGI_STDERR last, then a header of version 0", path, network.network, types, err)
				}
				for _, typ := range types {
					if typ == fcgiEndRequest {
						t.Errorf("%s over %s: FCGI_END_REQUEST sent for a cut response", path, network.network)
					}
				}
			}
		}
	})

	for _, want := range []string{
		"cutapp: failed after the first chunk",
		"the app's body is shorter than its Content-Length",
		"more body than its Content-Length",
		`invalid status \"100 Continue\"`,
		`invalid status \"101 Switching Protocols\"`,
		`invalid status \"103 Early Hints\"`,
	} {
		if !strings.Contains(g.stderr.String(), want) {
			t.Errorf("gateway log has no %q", want)
		}
	}
}
