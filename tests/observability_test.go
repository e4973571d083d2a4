//go:build integration

// Request ids, queue wait, the access log and the metrics, through nginx: the id nginx gives
// (or the gateway generates, or replaces when forged) reaches the app and every log line about
// the request; the queue wait of a request held behind a busy worker is the wait its client
// saw; killed, timed-out and cancelled requests each get their access log line; the
// histograms count every request; promtool accepts the metrics.

package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// obsSite is an nginx server in front of the gateway: "/" passes nginx's $request_id and
// X-Request-Start (as deploy/nginx/wsgi-fcgi.conf does), "/client/" neither, so that the
// client's own X-Request-ID, or none, reaches the gateway.
func obsSite(upstream string) string {
	return fmt.Sprintf(`location / {
    include fastcgi_params;
    fastcgi_param HTTP_X_REQUEST_ID $request_id;
    fastcgi_param HTTP_X_REQUEST_START "t=${msec}";
    fastcgi_pass %[1]s;
}
location /client/ {
    include fastcgi_params;
    fastcgi_pass %[1]s;
}`, upstream)
}

// accessLine is a line of the json access log.
type accessLine struct {
	RequestID string   `json:"request_id"`
	URI       string   `json:"uri"`
	Status    int      `json:"status"`
	QueueWait *float64 `json:"queue_wait"`
	AppTime   *float64 `json:"app_time"`
	WorkerPID int      `json:"worker_pid"`
}

// readAccessLog polls the access log (flushed every second) until a line satisfies match.
func readAccessLog(t *testing.T, file string, match func(accessLine) bool) accessLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		for _, raw := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var l accessLine
			if json.Unmarshal([]byte(raw), &l) == nil && match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log %s has no such line:\n%s", file, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// obsSeen is what tests/apps/obsapp.py answers.
type obsSeen struct {
	RequestID  string  `json:"request_id"`
	HeaderID   string  `json:"HTTP_X_REQUEST_ID"`
	QueueStart float64 `json:"queue_start"`
	QueueWait  float64 `json:"queue_wait"`
	PID        int     `json:"pid"`
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// startObsGateway starts the gateway with obsapp, a json access log, debug logs in JSON,
// and extra flags; it returns the gateway and the access log's path.
func startObsGateway(t *testing.T, extra ...string) (*gateway, string) {
	t.Helper()
	logFile := shortTempDir(t) + "/access.log"
	args := append([]string{"--access-log", logFile, "--access-log-format", "json", "--request-id-header",
		"--log-format", "json", "--log-level", "debug", "--status-path", "/fcgi-status"}, extra...)
	g := startGateway(t, gatewayConfig{app: "obsapp:application", workers: 1, args: args})
	return g, logFile
}

// logLinesWith returns the gateway's log lines holding s.
func logLinesWith(g *gateway, s string) []string {
	var out []string
	for _, line := range strings.Split(g.stderr.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// waitLogLine polls the gateway's log until a line holds all of parts.
func waitLogLine(t *testing.T, g *gateway, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range logLinesWith(g, parts[0]) {
			ok := true
			for _, p := range parts[1:] {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway log has no line with %q:\n%s", parts, g.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestObsRequestID(t *testing.T) {
	g, logFile := startObsGateway(t)
	n := startNginxSite(t, obsSite(g.upstream))
	get := func(path string, header http.Header) (response, obsSeen) {
		t.Helper()
		req := n.request(t, "GET", path, nil, 0)
		for k, v := range header {
			req.Header[k] = v
		}
		r := n.send(t, req)
		var seen obsSeen
		if r.status == 200 {
			decodeJSON(t, r, &seen)
		}
		return r, seen
	}

	t.Run("given by nginx", func(t *testing.T) {
		r, seen := get("/id", nil)
		id := r.header.Get("X-Request-ID")
		if !generatedID.MatchString(id) || seen.RequestID != id || seen.HeaderID != id {
			t.Fatalf("X-Request-ID %q; the app saw %+v", id, seen)
		}
		l := readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id })
		if l.Status != 200 || l.URI != "/id" || l.WorkerPID != seen.PID {
			t.Errorf("access log line %+v", l)
		}
	})
	t.Run("the app's error", func(t *testing.T) {
		r, _ := get("/boom", nil)
		id := r.header.Get("X-Request-ID")
		if r.status != 500 || !generatedID.MatchString(id) {
			t.Fatalf("/boom: %d, X-Request-ID %q", r.status, id)
		}
		waitLogLine(t, g, "app raised an exception", `"request_id":"`+id+`"`)
		if l := readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id }); l.Status != 500 {
			t.Errorf("access log line %+v", l)
		}
	})
	t.Run("the client's own, behind a trusted proxy", func(t *testing.T) {
		r, seen := get("/client/id", http.Header{"X-Request-Id": {"client-42.a:b"}})
		if seen.RequestID != "client-42.a:b" || r.header.Get("X-Request-ID") != "client-42.a:b" {
			t.Errorf("the app saw %+v, header %q", seen, r.header.Get("X-Request-ID"))
		}
	})
	t.Run("generated", func(t *testing.T) {
		r, seen := get("/client/id", nil)
		id := r.header.Get("X-Request-ID")
		if !generatedID.MatchString(id) || seen.RequestID != id || seen.HeaderID != id {
			t.Fatalf("X-Request-ID %q; the app saw %+v", id, seen)
		}
		readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id && l.Status == 200 })
		r, _ = get("/client/boom", nil)
		id = r.header.Get("X-Request-ID")
		waitLogLine(t, g, "app raised an exception", `"request_id":"`+id+`"`)
		readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id && l.Status == 500 })
	})
	t.Run("forged, 500 bytes: replaced", func(t *testing.T) {
		forged := strings.Repeat("a", 500)
		r, seen := get("/client/id", http.Header{"X-Request-Id": {forged}})
		id := r.header.Get("X-Request-ID")
		if !generatedID.MatchString(id) || seen.RequestID != id || seen.HeaderID != id {
			t.Fatalf("X-Request-ID %q; the app saw %+v", id, seen)
		}
		if b, _ := os.ReadFile(logFile); bytes.Contains(b, []byte(forged)) {
			t.Error("the forged id reached the access log")
		}
	})
	t.Run("forged, with a newline: replaced", func(t *testing.T) {
		// No HTTP client gets a newline through nginx: the web server's own params can.
		forged := "abc\n127.0.0.1 - - forged line"
		rec := fcgiWithParams(t, g, "/id", map[string]string{"HTTP_X_REQUEST_ID": forged})
		var seen obsSeen
		if err := json.Unmarshal(rec.Body.Bytes(), &seen); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		if !generatedID.MatchString(seen.RequestID) || seen.HeaderID != seen.RequestID {
			t.Fatalf("the app saw %+v", seen)
		}
		readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == seen.RequestID })
		if b, _ := os.ReadFile(logFile); bytes.Contains(b, []byte("forged line")) {
			t.Error("the forged id reached the access log")
		}
	})
}

// fcgiWithParams sends GET path straight to the gateway, with extra params.
func fcgiWithParams(t *testing.T, g *gateway, path string, extra map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	c, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(g.network, g.address))()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := gofast.NewRequest(nil)
	for k, v := range map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
		"SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
	} {
		req.Params[k] = v
	}
	for k, v := range extra {
		req.Params[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := resp.WriteTo(rec, io.Discard); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestObsFailedRequests: a request whose worker is killed, one past --timeout and one the
// client gives up on each get an access log line with the right status, and the log lines
// about them carry their id.
func TestObsFailedRequests(t *testing.T) {
	g, logFile := startObsGateway(t, "--timeout", "1s")
	n := startNginxSite(t, obsSite(g.upstream))

	r := n.get(t, "/die")
	id := r.header.Get("X-Request-ID")
	if r.status != 502 || id == "" {
		t.Fatalf("/die: %d, X-Request-ID %q", r.status, id)
	}
	readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id && l.Status == 502 && l.URI == "/die" })
	waitLogLine(t, g, "worker lost while running a request", `"request_id":"`+id+`"`)
	waitLogLine(t, g, "worker failed", `"request_id":"`+id+`"`)

	r = n.get(t, "/hang?s=30")
	id = r.header.Get("X-Request-ID")
	if r.status != 504 || id == "" {
		t.Fatalf("/hang past --timeout: %d, X-Request-ID %q", r.status, id)
	}
	readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == id && l.Status == 504 })
	waitLogLine(t, g, "request timed out: killing the worker", `"request_id":"`+id+`"`, "obsapp.py")

	// The client gives up: nginx closes the request, the gateway stops the app. The client
	// never sees the id, so the line is found by its URI, and its id in the cancellation's log.
	req := n.request(t, "GET", "/hang?s=0.8&cancel=1", nil, 300*time.Millisecond)
	if _, err := n.fetch(req); err == nil {
		t.Fatal("the request was not cut by its client's timeout")
	}
	l := readAccessLog(t, logFile, func(l accessLine) bool { return l.URI == "/hang?s=0.8&cancel=1" })
	if l.Status != 499 || !generatedID.MatchString(l.RequestID) || l.AppTime == nil {
		t.Errorf("cancelled request's line %+v", l)
	}
	waitLogLine(t, g, "cancelled", `"request_id":"`+l.RequestID+`"`)
}

// TestObsQueueWait holds the only worker with one request (a sync point: the app blocks on a
// FIFO until the test writes to it), sends a second, and releases the first: the second's
// queue wait, as the app and the access log see it, is the wait its client saw.
func TestObsQueueWait(t *testing.T) {
	g, logFile := startObsGateway(t)
	n := startNginxSite(t, obsSite(g.upstream))
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "release-a")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := n.fetch(n.request(t, "GET", "/block?dir="+dir+"&key=a", nil, 0))
		first <- err
	}()
	for deadline := time.Now().Add(reqTimeout); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "started-a")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the blocking request never started")
		}
	}

	type result struct {
		r    response
		sent time.Time
		err  error
	}
	second := make(chan result, 1)
	sent := time.Now()
	go func() {
		r, err := n.fetch(n.request(t, "GET", "/id?second=1", nil, 0))
		second <- result{r, sent, err}
	}()
	waitStatus(t, g, "listen queue", 1) // it waits in the gateway's queue
	time.Sleep(100 * time.Millisecond)  // let the wait be long enough to tell apart from none
	released := time.Now()
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1})
	f.Close()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	res := <-second
	if res.err != nil || res.r.status != 200 {
		t.Fatalf("second request: %v %d", res.err, res.r.status)
	}
	var seen obsSeen
	decodeJSON(t, res.r, &seen)
	client := released.Sub(res.sent).Seconds()
	t.Logf("the client waited %.4fs; the app's queue_wait %.4fs", client, seen.QueueWait)
	const within = 0.010
	if math.Abs(seen.QueueWait-client) > within {
		t.Errorf("the app's queue_wait %.4fs, the client waited %.4fs", seen.QueueWait, client)
	}
	if d := seen.QueueStart - float64(res.sent.UnixMicro())/1e6; math.Abs(d) > within {
		t.Errorf("queue_start %.4f is %.4fs from when the client sent it", seen.QueueStart, d)
	}
	l := readAccessLog(t, logFile, func(l accessLine) bool { return l.RequestID == seen.RequestID })
	if l.QueueWait == nil || math.Abs(*l.QueueWait-client) > within {
		t.Errorf("access log queue_wait %v, the client waited %.4fs", l.QueueWait, client)
	}
}

// TestObsMetrics sends a known number of requests and reads the histograms' counts, in
// OpenMetrics and in Prometheus text, both checked by promtool where it can.
func TestObsMetrics(t *testing.T) {
	g, _ := startObsGateway(t)
	n := startNginxSite(t, obsSite(g.upstream))
	const ok, failed = 12, 3
	for range ok {
		n.mustGet(t, "/id", 200)
	}
	for range failed {
		n.mustGet(t, "/boom", 500)
	}
	om := scrapeMetrics(t, g, "")
	text := scrapeMetrics(t, g, "text/plain;version=0.0.4")
	if !strings.HasPrefix(om, "application/openmetrics-text; version=1.0.0") || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics: %.200s ... %s", om, om[max(0, len(om)-40):])
	}
	if !strings.HasPrefix(text, "text/plain; version=0.0.4") || strings.Contains(text, "# EOF") {
		t.Errorf("Prometheus text: %.200s", text)
	}
	for _, want := range []string{
		fmt.Sprintf(`wsgi_fcgi_request_duration_seconds_count{pool="wsgi-fcgi"} %d`, ok+failed),
		fmt.Sprintf(`wsgi_fcgi_queue_wait_seconds_count{pool="wsgi-fcgi"} %d`, ok+failed),
		fmt.Sprintf(`wsgi_fcgi_requests_total{code="2xx",pool="wsgi-fcgi"} %d`, ok),
		fmt.Sprintf(`wsgi_fcgi_requests_total{code="5xx",pool="wsgi-fcgi"} %d`, failed),
		`wsgi_fcgi_workers{pool="wsgi-fcgi",state="idle"} 1`,
		`wsgi_fcgi_worker_resident_memory_bytes{pid="`,
		`wsgi_fcgi_gateway_process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	checkMetrics(t, om, text)

	// Every metric the shipped alert rules use is one the gateway exposes.
	rules, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "prometheus", "wsgi-fcgi.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`wsgi_fcgi_[a-z_]+`).FindAllString(string(rules), -1) {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("the alert rules use %s, which the gateway does not expose", name)
		}
	}
}

// scrapeMetrics asks the status page's ?openmetrics with an Accept header ("" for none) and
// returns the Content-Type, a newline, and the body.
func scrapeMetrics(t *testing.T, g *gateway, accept string) string {
	t.Helper()
	return scrapeMetricsAt(t, g, "/fcgi-status", accept)
}

// scrapeMetricsAt is scrapeMetrics for the status page at path.
func scrapeMetricsAt(t *testing.T, g *gateway, path, accept string) string {
	t.Helper()
	extra := map[string]string{"QUERY_STRING": "openmetrics", "REQUEST_URI": path + "?openmetrics"}
	if accept != "" {
		extra["HTTP_ACCEPT"] = accept
	}
	rec := fcgiWithParams(t, g, path, extra)
	if rec.Code != 200 {
		t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Header().Get("Content-Type") + "\n" + rec.Body.String()
}

// checkMetrics runs promtool check metrics on the Prometheus text. Debian's promtool parses
// only that format (it has no OpenMetrics parser): of the OpenMetrics answer it checks what
// OpenMetrics adds, that every counter's samples end in _total and that # EOF ends it.
func checkMetrics(t *testing.T, om, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		missingTool(t, "promtool (Debian package prometheus): %v", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(strings.SplitN(text, "\n", 2)[1])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	counters := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(strings.SplitN(om, "\n", 2)[1], "\n"), "\n")
	for i, line := range lines {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[3] == "counter" {
			counters[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			if line == "# EOF" && i != len(lines)-1 {
				t.Errorf("# EOF is not the last line")
			}
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if counters[name] {
			t.Errorf("OpenMetrics counter sample without _total: %s", line)
		}
	}
	if len(counters) == 0 || lines[len(lines)-1] != "# EOF" {
		t.Errorf("OpenMetrics answer: %d counters, last line %q", len(counters), lines[len(lines)-1])
	}
}
