package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// serveTestApp runs testdata/envapp.py on real Python workers behind a real fcgi.Server and
// returns the unix socket it listens on.
func serveTestApp(t *testing.T, opts Options) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	dir, _ := filepath.Abs("testdata")
	pool, err := pyrunner.New(pyrunner.Options{Python: python, App: "envapp", Chdir: dir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "gw.sock")
	ln, err := fcgi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fcgi.Server{Handler: New(pool, opts)}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		pool.Close()
	})
	return sock
}

// do sends one request with exactly the given params (as a web server would) and body.
func do(t *testing.T, sock string, params map[string]string, body io.Reader) *httptest.ResponseRecorder {
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
	if body != nil {
		req.Stdin = io.NopCloser(body)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- resp.WriteTo(rec, &stderr) }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("no response within 20s")
	}
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return rec
}

func baseParams(extra map[string]string) map[string]string {
	p := map[string]string{
		"REQUEST_METHOD":  "GET",
		"SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME":     "localhost",
		"SERVER_PORT":     "80",
		"REMOTE_ADDR":     "127.0.0.1",
		"QUERY_STRING":    "",
	}
	for k, v := range extra {
		if v == "<unset>" {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	return p
}

func TestGatewayEnviron(t *testing.T) {
	sock := serveTestApp(t, Options{})
	cases := []struct {
		name   string
		params map[string]string
		want   map[string]string
		absent []string
	}{
		{"nginx stock params",
			map[string]string{"SCRIPT_NAME": "/json/bob", "REQUEST_URI": "/json/bob?x=1", "QUERY_STRING": "x=1"},
			map[string]string{"SCRIPT_NAME": "", "PATH_INFO": "/json/bob", "QUERY_STRING": "x=1", "wsgi.url_scheme": "http"}, nil},
		{"latin-1 path",
			map[string]string{"SCRIPT_NAME": "", "PATH_INFO": "/caf\xe9"},
			map[string]string{"PATH_INFO": "/caf\u00e9"}, nil},
		{"https",
			map[string]string{"PATH_INFO": "/", "HTTPS": "on"},
			map[string]string{"wsgi.url_scheme": "https"}, nil},
		{"X-Forwarded-Proto does not choose the scheme",
			map[string]string{"PATH_INFO": "/", "HTTP_X_FORWARDED_PROTO": "https"},
			map[string]string{"wsgi.url_scheme": "http", "HTTP_X_FORWARDED_PROTO": "https"}, nil},
		{"httpoxy",
			map[string]string{"PATH_INFO": "/", "HTTP_PROXY": "http://evil:3128"},
			map[string]string{"PATH_INFO": "/"}, []string{"HTTP_PROXY"}},
		// nginx passes the client's Content-Type and Content-Length headers as HTTP_* params
		// beside CONTENT_TYPE and CONTENT_LENGTH; PEP 3333 (and wsgiref.validate) forbid them.
		{"nginx's HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH",
			map[string]string{"PATH_INFO": "/", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "0",
				"HTTP_CONTENT_TYPE": "text/plain", "HTTP_CONTENT_LENGTH": "0"},
			map[string]string{"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "0"},
			[]string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, sock, baseParams(tc.params), nil)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var env map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			for k, v := range tc.want {
				if env[k] != v {
					t.Errorf("%s = %q, want %q", k, env[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := env[k]; ok {
					t.Errorf("%s reached the app", k)
				}
			}
		})
	}
}

func TestGatewayBodies(t *testing.T) {
	sock := serveTestApp(t, Options{MaxBody: 3 << 20, SpoolMemory: 64 << 10})
	big := bytes.Repeat([]byte("wsgi-fcgi "), 200_000) // 2 MB
	cases := []struct {
		name       string
		params     map[string]string
		body       []byte
		wantStatus int
		wantLength string // CONTENT_LENGTH the app sees
	}{
		{"declared length", map[string]string{"CONTENT_LENGTH": "2000000"}, big, 200, "2000000"},
		{"small inline", map[string]string{"CONTENT_LENGTH": "5"}, []byte("hello"), 200, "5"},
		// Apache mod_proxy_fcgi streams a chunked body with no CONTENT_LENGTH.
		{"no length (Apache, chunked)", map[string]string{"CONTENT_LENGTH": "<unset>", "HTTP_TRANSFER_ENCODING": "chunked"}, big, 200, "2000000"},
		// Caddy sends CONTENT_LENGTH=-1 for a chunked body.
		{"length -1 (Caddy)", map[string]string{"CONTENT_LENGTH": "-1"}, big[:70000], 200, "70000"},
		{"declared over the limit", map[string]string{"CONTENT_LENGTH": "4000000"}, nil, 413, ""},
		// The web server ends the body early (the client went away): the app's read raises
		// instead of returning a short body as if it were whole, and nothing hangs.
		{"shorter than declared", map[string]string{"CONTENT_LENGTH": "3000000"}, big, 400, ""},
		{"spooled over the limit", map[string]string{"CONTENT_LENGTH": "<unset>"}, append(big, big...), 413, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := baseParams(tc.params)
			params["REQUEST_METHOD"] = "POST"
			params["PATH_INFO"] = "/upload"
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			rec := do(t, sock, params, body)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus != 200 {
				return
			}
			var env map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			sum := sha256.Sum256(tc.body)
			if env["CONTENT_LENGTH"] != tc.wantLength || env["body_sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("app saw CONTENT_LENGTH %v, %v bytes; want %s and the body's hash", env["CONTENT_LENGTH"], env["body_len"], tc.wantLength)
			}
			if _, ok := env["HTTP_TRANSFER_ENCODING"]; ok {
				t.Error("HTTP_TRANSFER_ENCODING reached the app with a body it no longer describes")
			}
		})
	}
}

// TestLocationLocalRedirect: CGI turns a local-path Location into a server-side redirect; on a
// 2xx the gateway makes it absolute so the app's response is the one the client gets.
func TestLocationLocalRedirect(t *testing.T) {
	sock := serveTestApp(t, Options{})
	cases := []struct {
		status, host, want string
	}{
		{"200", "app.example:8080", "http://app.example:8080/elsewhere?a=1"},
		{"201", "", "http://localhost/elsewhere?a=1"}, // no Host: SERVER_NAME, port 80 left out
		{"302", "app.example", "/elsewhere?a=1"},      // a redirect stays as the app wrote it
	}
	for _, tc := range cases {
		params := baseParams(map[string]string{"PATH_INFO": "/location/" + tc.status})
		if tc.host != "" {
			params["HTTP_HOST"] = tc.host
		}
		rec := do(t, sock, params, nil)
		if got := rec.Header().Get("Location"); got != tc.want {
			t.Errorf("status %s: Location %q, want %q", tc.status, got, tc.want)
		}
	}
}

func TestPingAndAccessLog(t *testing.T) {
	var logBuf bytes.Buffer
	alog := NewAccessLog(&logBuf, mustFormat(t, "combined"))
	sock := serveTestApp(t, Options{PingPath: "/fcgi-ping", AccessLog: alog})

	rec := do(t, sock, baseParams(map[string]string{"SCRIPT_NAME": "/fcgi-ping", "REQUEST_URI": "/fcgi-ping"}), nil)
	if rec.Code != 200 || rec.Body.String() != "pong\n" || rec.Header().Get("Cache-Control") == "" {
		t.Errorf("ping: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	do(t, sock, baseParams(map[string]string{"PATH_INFO": "/x", "REQUEST_URI": "/x?y=1", "HTTP_USER_AGENT": "test-agent"}), nil)
	do(t, sock, baseParams(map[string]string{"PATH_INFO": "/boom", "REQUEST_URI": "/boom"}), nil)
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	want := []string{`"GET /fcgi-ping HTTP/1.1" 200 `, `"GET /x?y=1 HTTP/1.1" 200 `, `"GET /boom HTTP/1.1" 500 `}
	if len(lines) != len(want) {
		t.Fatalf("access log has %d lines, want %d:\n%s", len(lines), len(want), logBuf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.HasPrefix(lines[i], "127.0.0.1 - - [") {
			t.Errorf("line %d: %q, want it to hold %q", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], `"test-agent"`) {
		t.Errorf("user agent missing: %q", lines[1])
	}
}

func TestGatewayErrors(t *testing.T) {
	sock := serveTestApp(t, Options{})
	cases := []struct {
		path       string
		wantStatus int
	}{
		{"/boom", 500},
		{"/badheader", 500},
		{"/after", 200}, // the worker is still serving
	}
	for _, tc := range cases {
		rec := do(t, sock, baseParams(map[string]string{"PATH_INFO": tc.path}), nil)
		if rec.Code != tc.wantStatus {
			t.Errorf("%s: status %d, want %d", tc.path, rec.Code, tc.wantStatus)
		}
		if strings.Contains(rec.Body.String(), "Traceback") || rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s: leaked to the client: %q %v", tc.path, rec.Body, rec.Header())
		}
	}
}
