package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAccessLogLines(t *testing.T) {
	start := time.Date(2026, 11, 21, 14, 15, 16, 0, time.UTC)
	e := accessEntry{start: start, duration: 12500 * time.Microsecond, remote: []byte("10.0.0.7"),
		method: []byte("GET"), uri: []byte("/a?b=1"), protocol: []byte("HTTP/1.1"), status: 200, bytes: 512,
		referer: []byte("http://x/\"quoted\""), userAgent: []byte("curl/8\x1b[31m"), workerPID: 42}
	cases := []struct {
		name   string
		format AccessLogFormat
		want   string
	}{
		// Quotes and control bytes from the client are escaped: no forged fields or lines.
		{"combined", AccessLogCombined,
			`10.0.0.7 - - [21/Nov/2026:14:15:16 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "http://x/\x22quoted\x22" "curl/8\x1B[31m" 0.012500` + "\n"},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		l := NewAccessLog(&buf, tc.format)
		l.log(&e)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, buf.String(), tc.want)
		}
	}

	var buf bytes.Buffer
	l := NewAccessLog(&buf, AccessLogJSON)
	l.log(&e)
	l.Close()
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if got["status"] != 200.0 || got["uri"] != "/a?b=1" || got["worker_pid"] != 42.0 || got["request_time"] != 0.0125 {
		t.Errorf("JSON line %s", buf.Bytes())
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want one line, got %q", buf.String())
	}
}
