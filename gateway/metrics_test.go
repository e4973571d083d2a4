package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// scriptedDispatcher answers each request by its URI (Request.Info, set with the status page
// on) as a pool would: a response, or one of the pool's errors.
type scriptedDispatcher struct{}

func (scriptedDispatcher) Do(_ context.Context, req *pyrunner.Request, w pyrunner.ResponseWriter) error {
	switch string(req.Info.URI) {
	case "/full":
		return pyrunner.ErrQueueFull
	case "/queue-timeout":
		req.Started = time.Time{}
		return pyrunner.ErrQueueTimeout
	case "/cancel":
		req.Started, req.WorkerPID = time.Now(), 7
		return &pyrunner.ExchangeError{PID: 7, Err: fmt.Errorf("%w: the web server went away", pyrunner.ErrCanceled)}
	case "/timeout":
		req.Started, req.WorkerPID = time.Now(), 7
		return &pyrunner.ExchangeError{PID: 7, Err: pyrunner.ErrTimeout}
	case "/died":
		req.Started, req.WorkerPID = time.Now(), 7
		return &pyrunner.ExchangeError{PID: 7, Err: pyrunner.ErrWorkerDied}
	}
	req.Started, req.WorkerPID = time.Now(), 7
	if err := w.WriteHeader([]byte("200 OK"), pyrunner.Header{}); err != nil {
		return err
	}
	_, err := w.Write([]byte("ok"))
	return err
}

// serveWith serves a Gateway over d on a unix socket for the test.
func serveWith(t *testing.T, d Dispatcher, opts Options) (string, *Gateway) {
	t.Helper()
	g := New(d, opts)
	ln, err := fcgi.Listen(filepath.Join(t.TempDir(), "gw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &fcgi.Server{Handler: g}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), g
}

func TestMetrics(t *testing.T) {
	var logBuf bytes.Buffer
	alog := NewAccessLog(&logBuf, mustFormat(t, "{uri} {status} {request_id}"))
	sock, _ := serveWith(t, scriptedDispatcher{}, Options{StatusPath: "/status", Status: fakeStatus{sampleStatus()},
		PoolName: "site", AccessLog: alog, RequestIDHeader: true})
	get := func(uri string, extra map[string]string) int {
		p := baseParams(map[string]string{"SCRIPT_NAME": "", "PATH_INFO": uri, "REQUEST_URI": uri})
		for k, v := range extra {
			p[k] = v
		}
		rec := do(t, sock, p, nil)
		if uri != "/cancel" && len(rec.Header().Get("X-Request-ID")) != generatedIDLen {
			t.Errorf("%s: X-Request-ID %q", uri, rec.Header().Get("X-Request-ID"))
		}
		return rec.Code
	}
	sent := map[string]int{"/": 200, "/a": 200, "/full": 503, "/queue-timeout": 503, "/timeout": 504, "/died": 502}
	for uri, want := range sent {
		if got := get(uri, nil); got != want {
			t.Errorf("%s: %d, want %d", uri, got, want)
		}
	}
	cancelled(t, sock, baseParams(map[string]string{"SCRIPT_NAME": "", "PATH_INFO": "/cancel", "REQUEST_URI": "/cancel"}))
	scrape := func(accept string) string {
		p := baseParams(map[string]string{"SCRIPT_NAME": "/status", "REQUEST_URI": "/status?openmetrics", "QUERY_STRING": "openmetrics"})
		if accept != "" {
			p["HTTP_ACCEPT"] = accept
		}
		rec := do(t, sock, p, nil)
		if rec.Code != 200 || len(rec.Header().Get("X-Request-ID")) != generatedIDLen {
			t.Fatalf("scrape: %d, X-Request-ID %q: %s", rec.Code, rec.Header().Get("X-Request-ID"), rec.Body)
		}
		return rec.Header().Get("Content-Type") + "\n" + rec.Body.String()
	}
	om := scrape("")
	for _, want := range []string{
		"application/openmetrics-text; version=1.0.0",
		"# TYPE wsgi_fcgi_request_duration_seconds histogram\n",
		`wsgi_fcgi_request_duration_seconds_count{pool="site"} 7` + "\n", // the scrape is not counted
		`wsgi_fcgi_queue_wait_seconds_count{pool="site"} 7` + "\n",
		`wsgi_fcgi_requests_total{code="2xx",pool="site"} 2.0` + "\n",
		`wsgi_fcgi_requests_total{code="4xx",pool="site"} 1.0` + "\n", // 499
		`wsgi_fcgi_requests_total{code="5xx",pool="site"} 4.0` + "\n",
		`wsgi_fcgi_refused_requests_total{cause="queue_full",pool="site"} 1.0` + "\n",
		`wsgi_fcgi_refused_requests_total{cause="queue_timeout",pool="site"} 1.0` + "\n",
		`wsgi_fcgi_cancelled_requests_total{pool="site"} 1.0` + "\n",
		`wsgi_fcgi_accepted_connections_total{pool="site"} 8.0` + "\n",
		`wsgi_fcgi_worker_resident_memory_bytes{pid="100",pool="site"} 3.145728e+07` + "\n",
		"# TYPE wsgi_fcgi_gateway_process_resident_memory_bytes gauge\n",
		"# EOF\n",
	} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics lacks %q:\n%s", want, om)
		}
	}
	text := scrape("text/plain;version=0.0.4")
	if !strings.HasPrefix(text, "text/plain; version=0.0.4") || strings.Contains(text, "# EOF") ||
		!strings.Contains(text, "# TYPE wsgi_fcgi_requests_total counter\n") {
		t.Errorf("Prometheus text:\n%s", text)
	}
	if got := scrape("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"); !strings.HasPrefix(got, "application/openmetrics-text") {
		t.Errorf("Prometheus's own Accept got %q", strings.SplitN(got, "\n", 2)[0])
	}
	// promtool, when installed, has the last word on the Prometheus text; it parses no
	// OpenMetrics, whose own rules are checked here: counters' samples end in _total, and
	// # EOF ends it.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(strings.SplitN(text, "\n", 2)[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
		}
	}
	counters := 0
	lines := strings.Split(strings.TrimSuffix(om, "\n"), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) == 4 && f[1] == "TYPE" && f[3] == "counter" {
			counters++
			if next := lines[i+1]; !strings.HasPrefix(next, f[2]+"_total") {
				t.Errorf("counter %s's sample %q does not end in _total", f[2], next)
			}
		}
	}
	if counters == 0 || lines[len(lines)-1] != "# EOF" {
		t.Errorf("OpenMetrics: %d counters, last line %q", counters, lines[len(lines)-1])
	}

	// Every request got its access log line, with its status and id; cancelled ones 499.
	alog.Close()
	for _, want := range []string{"/full 503 ", "/queue-timeout 503 ", "/timeout 504 ", "/died 502 ", "/cancel 499 ", "/status?openmetrics 200 "} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("access log lacks %q:\n%s", want, logBuf.String())
		}
	}
}

// cancelled sends a request that gets no response (the pool reports it cancelled): the
// response ends without headers.
func cancelled(t *testing.T, sock string, params map[string]string) {
	t.Helper()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", sock))()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	req := gofast.NewRequest(nil)
	for k, v := range params {
		req.Params[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	resp.WriteTo(httptest.NewRecorder(), &stderr)
	if out.Len() != 0 {
		t.Errorf("a cancelled request got %q", out.Bytes())
	}
}

// BenchmarkRequestID generates ids and validates given ones, as each request does.
func BenchmarkRequestID(b *testing.B) {
	s := newIDSource()
	var id [generatedIDLen]byte
	given := []byte("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			s.next(&id)
		}
	})
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if !validRequestID(given) {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkAccount records a finished request as ServeFCGI does: the metrics alone, and the
// metrics with the combined access log line.
func BenchmarkAccount(b *testing.B) {
	t0 := time.Now()
	for _, bc := range []struct {
		name string
		log  *AccessLog
	}{
		{"metrics", nil},
		{"metrics+accesslog", NewAccessLog(io.Discard, mustFormat(b, "combined"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := New(echoDispatcher{}, Options{StatusPath: "/status", Status: fakeStatus{}, AccessLog: bc.log})
			st := &requestState{status: 200, bytes: 13, req: startedAt(t0.Add(time.Millisecond)),
				obs: requestObs{arrived: t0, queueStart: t0, dispatched: true, id: []byte("0123456789abcdef0123456789abcdef")}}
			end := t0.Add(3 * time.Millisecond)
			b.ReportAllocs()
			for b.Loop() {
				g.account(st, end)
			}
		})
	}
}
