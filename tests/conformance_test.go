//go:build integration

// PEP 3333 conformance through every front end: tests/apps/validapp.py, a stdlib app wrapped in
// wsgiref.validate (the standard library's conformance checker), must answer 200 to a GET and
// to POSTs with and without a body, chunked too, over raw FastCGI and through nginx, Apache
// mod_proxy_fcgi and Caddy as deploy/ configures them. The checker answers 500 to an environ
// or a call that breaks PEP 3333.

package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/tests/internal/testkit"
)

// frontEnd is one web server in front of the gateway, reached at base.
type frontEnd struct {
	name string
	base string // http://127.0.0.1:PORT
}

// startFrontEnds starts nginx (deploy/nginx/wsgi-fcgi.conf: its buffered location / and its
// unbuffered /stream/), Apache mod_proxy_fcgi (deploy/apache/wsgi-fcgi.conf) and Caddy
// (deploy/caddy/Caddyfile's transport) in front of the gateway g listening on a unix socket.
// Apache's children run as www-data and need the socket's directory searchable.
func startFrontEnds(t *testing.T, g *gateway) []frontEnd {
	t.Helper()
	if g.network != "unix" {
		t.Fatalf("startFrontEnds needs the gateway on a unix socket, not %s", g.network)
	}
	os.Chmod(filepath.Dir(g.address), 0o755)
	n := startNginx(t, g.upstream)
	a := startApache(t, []string{"proxy", "proxy_fcgi", "alias"}, func(port int) string {
		return deployFile(t, "apache/wsgi-fcgi.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"unix:/run/wsgi-fcgi/wsgi-fcgi.sock|fcgi://localhost/", "unix:"+g.address+"|fcgi://localhost/")
	})
	caddy := startCaddy(t, "reverse_proxy unix/"+g.address+" {\n\ttransport fastcgi\n}")
	return []frontEnd{
		{"nginx location /", n.base},
		{"nginx location /stream/ (unbuffered)", n.base + "/stream"},
		{"Apache mod_proxy_fcgi", a.base},
		{"Caddy", caddy},
	}
}

// gatewayForFrontEnds starts the gateway serving app on a unix socket the web servers' users
// can reach.
func gatewayForFrontEnds(t *testing.T, app string, args ...string) *gateway {
	t.Helper()
	return startGateway(t, gatewayConfig{app: app, workers: 2,
		args: append([]string{"--socket-group", "www-data", "--socket-mode", "0660"}, args...)})
}

func TestConformanceValidate(t *testing.T) {
	g := gatewayForFrontEnds(t, "validapp:application")
	body := strings.Repeat("conformance ", 3000) // 36 KB: over Apache's 16 KiB for chunked bodies
	requests := []struct {
		name, method string
		body         string
		chunked      bool // sent without a length (over raw FastCGI: as any body)
		want         string
	}{
		{"GET", "GET", "", false, "GET 0\n"},
		{"POST with a body", "POST", body, false, fmt.Sprintf("POST %d\n", len(body))},
		{"POST without a body", "POST", "", false, "POST 0\n"},
		{"POST chunked", "POST", body, true, fmt.Sprintf("POST %d\n", len(body))},
	}
	t.Run("raw FastCGI", func(t *testing.T) {
		for _, rq := range requests {
			t.Run(rq.name, func(t *testing.T) {
				b := []byte(rq.body)
				// As nginx sends them: the client's Content-Type and Content-Length also as
				// HTTP_* params.
				extra := [][2]string{{"CONTENT_TYPE", "text/plain"}, {"HTTP_CONTENT_TYPE", "text/plain"},
					{"HTTP_CONTENT_LENGTH", fmt.Sprint(len(b))}}
				req := fcgiBegin(1, roleResponder, false)
				var p []byte
				for _, kv := range extra {
					p = append(p, testkit.Pair(kv[0], kv[1])...)
				}
				params := fcgiParamsFor(1, rq.method, "/valid?x=1", len(b))
				params = append(params[:len(params)-8], testkit.Record(fcgiParams, 1, p, 0)...) // before the end of the stream
				req = append(req, append(params, testkit.Record(fcgiParams, 1, nil, 0)...)...)
				req = append(req, testkit.Stream(fcgiStdin, 1, b)...)
				c := dialGateway(t, g.network, g.address)
				if _, err := c.Write(req); err != nil {
					t.Fatal(err)
				}
				res := readRawResults(t, c, 1)[1]
				if res.status() != 200 || string(res.body()) != rq.want {
					t.Errorf("%s: status %d, body %q; want 200, %q", rq.name, res.status(), res.body(), rq.want)
				}
			})
		}
	})
	for _, fe := range startFrontEnds(t, g) {
		t.Run(fe.name, func(t *testing.T) {
			for _, rq := range requests {
				t.Run(rq.name, func(t *testing.T) {
					var b io.Reader
					switch {
					case rq.chunked:
						b = opaqueReader{strings.NewReader(rq.body)}
					case rq.method == "POST":
						b = strings.NewReader(rq.body)
					}
					r := httpDo(t, rq.method, fe.base+"/valid?x=1", http.Header{"Content-Type": {"text/plain"}}, b)
					if r.status != 200 || string(r.body) != rq.want {
						t.Errorf("status %d, body %q; want 200, %q", r.status, r.body, rq.want)
					}
				})
			}
		})
	}
	if strings.Contains(g.stderr.String(), "AssertionError") {
		t.Errorf("wsgiref.validate found a violation:\n%s", g.stderr.String())
	}
}
