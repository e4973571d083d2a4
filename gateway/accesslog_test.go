package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// mustFormat parses an access log format or fails the test.
func mustFormat(t testing.TB, s string) *AccessLogFormat {
	t.Helper()
	f, err := ParseAccessLogFormat(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sampleEntry is a request whose client sent hostile bytes in every header it controls.
func sampleEntry() accessEntry {
	return accessEntry{start: time.Date(2026, 11, 21, 14, 15, 16, 0, time.UTC), id: []byte("req-1"),
		remote: []byte("10.0.0.7"), host: []byte("example.com"), method: []byte("GET"), uri: []byte("/a?b=1"),
		protocol: []byte("HTTP/1.1"), status: 200, bytesIn: 3, bytesOut: 512,
		referer: []byte("http://x/\"quoted\"\\"), userAgent: []byte("curl/8\x1b[31m\nfake line\x00\xff"), workerPID: 42,
		queueWait: 2500 * time.Microsecond, appTime: 10 * time.Millisecond, total: 12500 * time.Microsecond,
		hasQueue: true, hasApp: true}
}

func TestAccessLogText(t *testing.T) {
	e := sampleEntry()
	refused := sampleEntry()
	refused.status, refused.workerPID, refused.hasApp, refused.bytesOut = 503, 0, false, 0
	own := sampleEntry()
	own.hasQueue, own.hasApp, own.user = false, false, nil
	cases := []struct {
		name   string
		format string
		e      accessEntry
		want   string
	}{
		// Quotes, backslashes, control and non-ASCII bytes from the client are escaped: no
		// forged fields or lines.
		{"combined", "combined", e,
			`10.0.0.7 - - [21/Nov/2026:14:15:16 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "http://x/\x22quoted\x22\x5C" "curl/8\x1B[31m\x0Afake line\x00\xFF" 0.012500 req-1 0.002500`},
		{"template", "{request_id} {host} {method} {uri} {status} {bytes_in}/{bytes_out} q={queue_wait} a={app_time} t={request_time} pid={worker_pid}", e,
			`req-1 example.com GET /a?b=1 200 3/512 q=0.002500 a=0.010000 t=0.012500 pid=42`},
		{"refused: no app time, no worker", "{status} {queue_wait} {app_time} {worker_pid} {bytes_out}", refused,
			`503 0.002500 - - 0`},
		{"gateway's own page: no queue", "{queue_wait} {app_time}", own, `- -`},
		{"braces", "{{{status}}", e, `{200}`},
		{"iso time", "{time_iso8601}", e, `2026-11-21T14:15:16.000000Z`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(mustFormat(t, tc.format).appendLine(nil, &tc.e))
			if got != tc.want+"\n" {
				t.Errorf("\ngot  %q\nwant %q", got, tc.want+"\n")
			}
		})
	}
}

func TestAccessLogJSON(t *testing.T) {
	e := sampleEntry()
	refused := sampleEntry()
	refused.hasApp = false
	cases := []struct {
		name   string
		format string
		e      accessEntry
		want   map[string]any
	}{
		{"preset", "json", e, map[string]any{"request_id": "req-1", "host": "example.com", "status": 200.0, "bytes_in": 3.0,
			"bytes_out": 512.0, "queue_wait": 0.0025, "app_time": 0.01, "request_time": 0.0125, "worker_pid": 42.0,
			"time": "2026-11-21T14:15:16.000000Z", "remote_user": "",
			// Each byte is kept, as latin-1: a forged line stays inside its string.
			"user_agent": "curl/8\x1b[31m\nfake line\x00\u00ff", "referer": "http://x/\"quoted\"\\"}},
		{"chosen fields", "json:request_id, status,app_time", refused,
			map[string]any{"request_id": "req-1", "status": 200.0, "app_time": nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := mustFormat(t, tc.format).appendLine(nil, &tc.e)
			if bytes.Count(line, []byte("\n")) != 1 || !utf8.Valid(line) {
				t.Fatalf("want one valid UTF-8 line, got %q", line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			if tc.format != "json" && len(got) != len(tc.want) {
				t.Errorf("fields %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseAccessLogFormat(t *testing.T) {
	cases := []struct {
		format, wantErr string
	}{
		{"combined", ""},
		{"json", ""},
		{"json:status,request_id", ""},
		{"{remote_addr} {request_id}", ""},
		{"common", "want combined, json"}, // no field: a misspelt preset, not a template
		{"{status} {nope}", `unknown field "nope"`},
		{"json:status,nope", `unknown field "nope"`},
		{"{status", "no closing }"},
		{"{literal}", `unknown field "literal"`},
	}
	for _, tc := range cases {
		_, err := ParseAccessLogFormat(tc.format)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.format, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: error %v, want one with %q", tc.format, err, tc.wantErr)
		}
	}
}

func TestAccessLogWrites(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog(&buf, mustFormat(t, "{status}"))
	e := sampleEntry()
	l.log(&e)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "200\n" {
		t.Errorf("log holds %q", buf.String())
	}
}

// BenchmarkAccessLogLine formats one line of each preset, as the request path does.
func BenchmarkAccessLogLine(b *testing.B) {
	for _, format := range []string{"combined", "json"} {
		b.Run(format, func(b *testing.B) {
			f := mustFormat(b, format)
			e := sampleEntry()
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = f.appendLine(buf[:0], &e)
			}
		})
	}
}

// TestAccessLogSetOutput: the lines logged before a change of output go to the old one, those
// after to the new one, and under concurrent logging every line lands whole in exactly one.
func TestAccessLogSetOutput(t *testing.T) {
	t.Run("before and after", func(t *testing.T) {
		var old, cur bytes.Buffer
		l := NewAccessLog(&old, mustFormat(t, "{status}"))
		e := sampleEntry()
		l.log(&e)
		if err := l.SetOutput(&cur); err != nil {
			t.Fatal(err)
		}
		e.status = 404
		l.log(&e)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if old.String() != "200\n" || cur.String() != "404\n" {
			t.Errorf("old output %q, new output %q; want \"200\\n\" and \"404\\n\"", old.String(), cur.String())
		}
		if err := l.SetOutput(&old); !errors.Is(err, ErrAccessLogClosed) {
			t.Errorf("SetOutput after Close: %v, want ErrAccessLogClosed", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		const writers, lines, swaps = 4, 500, 20
		outs := make([]*bytes.Buffer, swaps+1)
		for i := range outs {
			outs[i] = &bytes.Buffer{}
		}
		l := NewAccessLog(outs[0], mustFormat(t, "{uri} {request_id}"))
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range lines {
					e := sampleEntry()
					e.uri = fmt.Appendf(nil, "/w%d", w)
					e.id = bytes.Repeat([]byte("x"), 1+i%97) // lines of many lengths
					l.log(&e)
				}
			}()
		}
		for i := 1; i <= swaps; i++ {
			if err := l.SetOutput(outs[i]); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		total := 0
		for i, out := range outs {
			for _, line := range strings.SplitAfter(out.String(), "\n") {
				if line == "" {
					continue
				}
				uri, id, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
				if !strings.HasSuffix(line, "\n") || !ok || !strings.HasPrefix(uri, "/w") || strings.Trim(id, "x") != "" {
					t.Fatalf("output %d holds a broken line %q", i, line)
				}
				total++
			}
		}
		if total != writers*lines {
			t.Errorf("%d lines in all the outputs, want %d", total, writers*lines)
		}
	})
}
