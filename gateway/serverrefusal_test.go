package gateway

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/common/expfmt"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// TestServerRefused: each refusal of the FastCGI server is counted under its cause and
// logged with its error, once a second for overload (a second refusal in the same second
// only counted) and every time for the others; a 431 gets its access log line.
func TestServerRefused(t *testing.T) {
	for _, tc := range []struct {
		err       error
		cause     string
		lines     int // log lines for two refusals
		accessLog bool
	}{
		{fmt.Errorf("%w: over 2 (request 1 refused)", fcgi.ErrTooManyConns), "too_many_conns", 1, false},
		{fmt.Errorf("%w: over 2 (request 1 refused)", fcgi.ErrTooManyRequests), "too_many_requests", 1, false},
		{fmt.Errorf("%w: request 2 while another is in progress", fcgi.ErrCantMultiplex), "cant_multiplex", 2, false},
		{fmt.Errorf("%w: FILTER (request 1)", fcgi.ErrUnknownRole), "unknown_role", 2, false},
		{fmt.Errorf("%w: request 1 sent more than 1024 bytes", fcgi.ErrParamsTooLarge), "params_too_large", 2, true},
		{fmt.Errorf("%w", fcgi.ErrBodyTooLarge), "body_too_large", 2, false},
	} {
		t.Run(tc.cause, func(t *testing.T) {
			var logBuf, accessBuf bytes.Buffer
			alog := NewAccessLog(&accessBuf, mustFormat(t, "{status} {uri}"))
			g := New(scriptedDispatcher{}, Options{StatusPath: "/status", Status: fakeStatus{sampleStatus()}, AccessLog: alog,
				Logger: hclog.New(&hclog.LoggerOptions{Output: &logBuf, JSONFormat: true})})
			g.ServerRefused(nil, tc.err)
			g.ServerRefused(nil, tc.err)
			alog.Close()

			body, err := g.metrics.metricsBody(expfmt.FmtText)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf(`wsgi_fcgi_fastcgi_refused_total{cause=%q,pool="wsgi-fcgi"} 2`, tc.cause)
			if !strings.Contains(string(body), want+"\n") {
				t.Errorf("metrics lack %s:\n%s", want, body)
			}
			if n := strings.Count(logBuf.String(), `"cause":"`+tc.cause+`"`); n != tc.lines {
				t.Errorf("%d log lines for the two refusals, want %d:\n%s", n, tc.lines, &logBuf)
			}
			if !strings.Contains(logBuf.String(), strings.ReplaceAll(tc.err.Error(), `"`, `\"`)) {
				t.Errorf("the log lacks the error %q:\n%s", tc.err, &logBuf)
			}
			lines := strings.Count(accessBuf.String(), "431 -\n")
			if tc.accessLog && lines != 2 || !tc.accessLog && accessBuf.Len() != 0 {
				t.Errorf("access log:\n%s", &accessBuf)
			}
		})
	}
}

// TestServerRefusedParams: a request over MaxParamsSize, refused by a real fcgi.Server wired
// as cmd/wsgi-fcgi wires it, reaches the metrics and the access log.
func TestServerRefusedParams(t *testing.T) {
	var accessBuf bytes.Buffer
	alog := NewAccessLog(&accessBuf, mustFormat(t, "{status} {uri}"))
	g := New(scriptedDispatcher{}, Options{StatusPath: "/status", Status: fakeStatus{sampleStatus()}, AccessLog: alog})
	ln, err := fcgi.Listen(filepath.Join(t.TempDir(), "gw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &fcgi.Server{Handler: g, MaxParamsSize: 1024, Refused: g.ServerRefused}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	rec := do(t, ln.Addr().String(), baseParams(map[string]string{"HTTP_COOKIE": strings.Repeat("x", 2048)}), nil)
	if rec.Code != 431 {
		t.Fatalf("status %d, want 431", rec.Code)
	}
	body, err := g.metrics.metricsBody(expfmt.FmtText)
	if err != nil {
		t.Fatal(err)
	}
	if want := `wsgi_fcgi_fastcgi_refused_total{cause="params_too_large",pool="wsgi-fcgi"} 1` + "\n"; !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q", want)
	}
	alog.Close()
	if accessBuf.String() != "431 -\n" {
		t.Errorf("access log %q, want one 431 line", accessBuf.String())
	}
}
