package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

func TestValidRequestID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		want bool
	}{
		{"nginx $request_id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", true},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000", true},
		{"every allowed sort", "Az09._:-", true},
		{"128 bytes", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("a", 129), false},
		{"500 bytes", strings.Repeat("x", 500), false},
		{"newline: a forged log line", "abc\nGET /admin 200", false},
		{"space", "a b", false},
		{"quote", `a"b`, false},
		{"slash", "a/b", false},
		{"NUL", "a\x00", false},
		{"latin-1", "caf\xe9", false},
	}
	for _, tc := range cases {
		if got := validRequestID([]byte(tc.id)); got != tc.want {
			t.Errorf("%s: validRequestID(%q) = %v", tc.name, tc.id, got)
		}
	}
}

func TestIDSource(t *testing.T) {
	a, b := newIDSource(), newIDSource()
	seen := map[string]bool{}
	var id [generatedIDLen]byte
	for range 1000 {
		a.next(&id)
		if !validRequestID(id[:]) || seen[string(id[:])] {
			t.Fatalf("id %q: invalid or repeated", id)
		}
		seen[string(id[:])] = true
	}
	b.next(&id)
	if seen[string(id[:])] || a.prefix == b.prefix {
		t.Errorf("two gateways share ids: %q", id)
	}
	a.n.Store(0x1f)
	a.next(&id)
	if got := string(id[16:]); got != "0000000000000020" {
		t.Errorf("counter part %q", got)
	}
}

func TestParseRequestStart(t *testing.T) {
	at := func(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }
	cases := []struct {
		value string
		want  time.Time
		ok    bool
	}{
		{"t=1764000000.123", at(1764000000, 123e6), true}, // nginx t=${msec}
		{"t=1764000000123", at(1764000000, 123e6), true},  // milliseconds
		{"t=1764000000123456", at(1764000000, 123456e3), true},
		{"t=1764000000123456789", at(1764000000, 123456789), true},
		{"1764000000123", at(1764000000, 123e6), true}, // Heroku: no t=
		{"t=1764000000", at(1764000000, 0), true},
		{"t=1764000000.5", at(1764000000, 5e8), true},
		{"t=1764000000123.5", at(1764000000, 1235e5), true}, // ms with a fraction
		{"", time.Time{}, false},
		{"t=", time.Time{}, false},
		{"t=abc", time.Time{}, false},
		{"t=123x", time.Time{}, false},
		{"t=-5", time.Time{}, false},
		{"t=99999999999999999999999", time.Time{}, false}, // overflow
	}
	for _, tc := range cases {
		got, ok := parseRequestStart([]byte(tc.value))
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%q: %v %v, want %v %v", tc.value, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQueueStart(t *testing.T) {
	arrived := time.Unix(1764000000, 500e6) // the injected clock: the request's arrival
	cases := []struct {
		name, header string
		want         time.Time
	}{
		{"the web server's time", "t=1764000000.200", time.Unix(1764000000, 200e6)},
		{"in the future (another clock): the arrival", "t=1764000001.000", arrived},
		{"over an hour old: the arrival", "t=1763990000.000", arrived},
		{"unreadable: the arrival", "yesterday", arrived},
	}
	for _, tc := range cases {
		if got := queueStart([]byte(tc.header), arrived); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAccountTimes checks the split of a request's time, with injected times.
func TestAccountTimes(t *testing.T) {
	var logBuf bytes.Buffer
	alog := NewAccessLog(&logBuf, mustFormat(t, "json:status,queue_wait,app_time,request_time"))
	g := New(echoDispatcher{}, Options{AccessLog: alog})
	t0 := time.Unix(1764000000, 0)
	cases := []struct {
		name    string
		st      requestState
		end     time.Time
		want    string
		cancels bool
	}{
		{"served", requestState{status: 200, obs: requestObs{arrived: t0, queueStart: t0, dispatched: true},
			req: startedAt(t0.Add(30 * time.Millisecond))}, t0.Add(100 * time.Millisecond),
			`{"status":200,"queue_wait":0.030000,"app_time":0.070000,"request_time":0.100000}`, false},
		{"X-Request-Start before the arrival", requestState{status: 200, obs: requestObs{arrived: t0, queueStart: t0.Add(-5 * time.Millisecond), dispatched: true},
			req: startedAt(t0.Add(10 * time.Millisecond))}, t0.Add(20 * time.Millisecond),
			`{"status":200,"queue_wait":0.015000,"app_time":0.010000,"request_time":0.025000}`, false},
		{"refused after waiting", requestState{status: 503, obs: requestObs{arrived: t0, queueStart: t0, dispatched: true}},
			t0.Add(time.Second), `{"status":503,"queue_wait":1.000000,"app_time":null,"request_time":1.000000}`, false},
		{"cancelled while running", requestState{obs: requestObs{arrived: t0, queueStart: t0, dispatched: true},
			req: startedAt(t0)}, t0.Add(time.Second), `{"status":499,"queue_wait":0.000000,"app_time":1.000000,"request_time":1.000000}`, true},
		{"refused before the pool (413)", requestState{status: 413, obs: requestObs{arrived: t0, queueStart: t0}},
			t0.Add(time.Millisecond), `{"status":413,"queue_wait":null,"app_time":null,"request_time":0.001000}`, false},
	}
	for _, tc := range cases {
		logBuf.Reset()
		g.account(&tc.st, tc.end)
		alog.mu.Lock()
		alog.buf.Flush()
		alog.mu.Unlock()
		if got := strings.TrimSpace(logBuf.String()); got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, got, tc.want)
		}
	}
	alog.Close()
}

// startedAt is a pyrunner.Request a worker started at t.
func startedAt(t time.Time) (r pyrunner.Request) {
	r.Started = t
	return r
}

// TestRequestIDEnviron runs requests through a real worker: the app sees the request id and
// the times, and the response carries the id with Options.RequestIDHeader.
func TestRequestIDEnviron(t *testing.T) {
	sock := serveTestApp(t, Options{RequestIDHeader: true})
	cases := []struct {
		name   string
		params map[string]string
		keep   bool // the given id is the request's
	}{
		{"given by the web server", map[string]string{"HTTP_X_REQUEST_ID": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, true},
		{"none: generated", map[string]string{}, false},
		{"forged with a newline: replaced", map[string]string{"HTTP_X_REQUEST_ID": "abc\nGET /admin"}, false},
		{"500 bytes: replaced", map[string]string{"HTTP_X_REQUEST_ID": strings.Repeat("a", 500)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["PATH_INFO"] = "/"
			before := float64(time.Now().UnixMicro()) / 1e6
			rec := do(t, sock, baseParams(tc.params), nil)
			var env map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			id, _ := env["HTTP_X_REQUEST_ID"].(string)
			if tc.keep && id != tc.params["HTTP_X_REQUEST_ID"] || !tc.keep && (len(id) != generatedIDLen || !validRequestID([]byte(id))) {
				t.Errorf("HTTP_X_REQUEST_ID %q", id)
			}
			if env["wsgi_fcgi.request_id"] != id || rec.Header().Get("X-Request-ID") != id {
				t.Errorf("wsgi_fcgi.request_id %q, X-Request-ID header %q, want %q", env["wsgi_fcgi.request_id"], rec.Header().Get("X-Request-ID"), id)
			}
			qs, _ := env["wsgi_fcgi.queue_start"].(float64)
			qw, ok := env["wsgi_fcgi.queue_wait"].(float64)
			if qs < before-0.001 || qs > before+5 || !ok || qw < 0 || qw > 5 {
				t.Errorf("queue_start %v (sent after %v), queue_wait %v", env["wsgi_fcgi.queue_start"], before, env["wsgi_fcgi.queue_wait"])
			}
		})
	}
	t.Run("X-Request-Start", func(t *testing.T) {
		start := time.Now().Add(-250 * time.Millisecond)
		rec := do(t, sock, baseParams(map[string]string{"PATH_INFO": "/",
			"HTTP_X_REQUEST_START": "t=" + string(appendEpochSeconds(nil, start))[:14]}), nil) // milliseconds, as nginx's ${msec}
		var env map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		qw, _ := env["wsgi_fcgi.queue_wait"].(float64)
		if qw < 0.249 || qw > 5 {
			t.Errorf("queue_wait %v, want at least the 250ms since X-Request-Start", env["wsgi_fcgi.queue_wait"])
		}
	})
}

// appendEpochSeconds appends t as seconds since the epoch with six decimals.
func appendEpochSeconds(b []byte, t time.Time) []byte {
	us := t.UnixMicro()
	b = strconv.AppendInt(b, us/1e6, 10)
	frac := us % 1e6
	b = append(b, '.')
	for d := int64(1e5); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}
