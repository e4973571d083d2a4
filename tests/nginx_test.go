//go:build integration

// nginx in front of wsgi-fcgi, configured by deploy/nginx/wsgi-fcgi.conf, serving
// tests/apps/flaskapp.py: what an HTTP client sees.

package tests

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNginx(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 2})
	n := startNginx(t, g.upstream)

	t.Run("query string", func(t *testing.T) { testQuery(t, n) })
	t.Run("form post", func(t *testing.T) { testForm(t, n) })
	t.Run("cookies", func(t *testing.T) { testCookies(t, n) })
	t.Run("redirect", func(t *testing.T) { testRedirect(t, n) })
	t.Run("not found", func(t *testing.T) { n.mustGet(t, "/no/such/page", http.StatusNotFound) })
	t.Run("environ", func(t *testing.T) { testEnviron(t, n) })
	t.Run("upload", func(t *testing.T) { testUpload(t, n) })
	t.Run("download", func(t *testing.T) { testDownload(t, n) })
	t.Run("streaming response", func(t *testing.T) { testStreaming(t, n) })
	t.Run("streaming response to curl", func(t *testing.T) { testStreamingCurl(t, n) })
	t.Run("app exception", func(t *testing.T) { testException(t, g, n) })
	t.Run("app exception after start", func(t *testing.T) { testExceptionAfterStart(t, n) })
	t.Run("keep-alive", func(t *testing.T) { testKeepAlive(t, g, n) })
}

// decodeJSON decodes a response body, failing the test with the body when it is not JSON.
func decodeJSON(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body:\n%s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode JSON: %v; body:\n%s", err, r.body)
	}
}

func testQuery(t *testing.T, n *nginx) {
	for _, tc := range []struct {
		name, query string
		want        map[string][]string
	}{
		{"none", "", map[string][]string{}},
		{"repeated key", "a=1&a=2&b=x", map[string][]string{"a": {"1", "2"}, "b": {"x"}}},
		{"escapes", "s=x%20y&plus=a+b&amp=%26", map[string][]string{"s": {"x y"}, "plus": {"a b"}, "amp": {"&"}}},
		{"utf-8", "q=caf%C3%A9", map[string][]string{"q": {"café"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string][]string
			decodeJSON(t, n.get(t, "/query?"+tc.query), &got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("GET /query?%s echoed %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

func testForm(t *testing.T, n *nginx) {
	form := url.Values{"name": {"Ada Lovelace"}, "lang": {"py", "go"}, "empty": {""}}
	req := n.request(t, http.MethodPost, "/form", strings.NewReader(form.Encode()), 0)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var got map[string][]string
	decodeJSON(t, n.send(t, req), &got)
	if !reflect.DeepEqual(got, map[string][]string(form)) {
		t.Errorf("POST /form echoed %v, want %v", got, form)
	}
}

func testCookies(t *testing.T, n *nginx) {
	r := n.mustGet(t, "/cookies/set", http.StatusOK)
	set := r.header.Values("Set-Cookie")
	if len(set) != 2 {
		t.Fatalf("GET /cookies/set: %d Set-Cookie headers %q, want 2", len(set), set)
	}
	if !strings.HasPrefix(set[0], "flavour=oatmeal;") || !strings.HasPrefix(set[1], "session=s3cr3t;") {
		t.Errorf("Set-Cookie headers %q, want flavour=oatmeal then session=s3cr3t", set)
	}
	if !strings.Contains(set[1], "HttpOnly") {
		t.Errorf("Set-Cookie %q lost its HttpOnly attribute", set[1])
	}

	req := n.request(t, http.MethodGet, "/cookies/read", nil, 0)
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		req.AddCookie(c)
	}
	var got map[string]string
	decodeJSON(t, n.send(t, req), &got)
	if want := map[string]string{"flavour": "oatmeal", "session": "s3cr3t"}; !reflect.DeepEqual(got, want) {
		t.Errorf("GET /cookies/read saw %v, want %v", got, want)
	}
}

func testRedirect(t *testing.T, n *nginx) {
	r := n.mustGet(t, "/redirect", http.StatusFound)
	// The app builds an absolute URL from HTTP_HOST: it must carry the port the client used.
	if loc, want := r.header.Get("Location"), n.base+"/target"; loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
	if r := n.mustGet(t, "/target", http.StatusOK); string(r.body) != "target\n" {
		t.Errorf("GET /target: body %q", r.body)
	}
}

// opaqueReader hides its length, so net/http sends a chunked body.
type opaqueReader struct{ r io.Reader }

func (o opaqueReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testEnviron(t *testing.T, n *nginx) {
	host := fmt.Sprintf("127.0.0.1:%d", n.port)
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		header  http.Header
		body    io.Reader
		size    int64 // ContentLength to declare; -1 for a chunked body
		want    map[string]any
		absent  []string // keys that must not be in the environ
		noValue []string // keys that must be absent or empty
	}{
		{
			name: "GET at the root mount", method: "GET", path: "/environ?a=1&b=%20",
			want: map[string]any{
				"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/environ",
				"QUERY_STRING": "a=1&b=%20", "HTTP_HOST": host, "SERVER_PORT": strconv.Itoa(n.port),
				"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
				"wsgi.url_scheme": "http", "wsgi.input_terminated": true, "wsgi.run_once": false,
				"body_length": 0,
			},
			noValue: []string{"CONTENT_LENGTH"},
		},
		{
			name: "PATH_INFO is decoded, each byte a latin-1 code point (PEP 3333)", method: "GET",
			path: "/environ/caf%C3%A9/x%20y",
			want: map[string]any{"SCRIPT_NAME": "", "PATH_INFO": "/environ/caf\u00c3\u00a9/x y", "QUERY_STRING": ""},
		},
		{
			name: "httpoxy: a Proxy header never becomes HTTP_PROXY", method: "GET", path: "/environ",
			header: http.Header{"Proxy": {"http://attacker.example:3128"}},
			absent: []string{"HTTP_PROXY"},
		},
		{
			name: "X-Forwarded-Proto from the client does not choose wsgi.url_scheme", method: "GET", path: "/environ",
			header: http.Header{"X-Forwarded-Proto": {"https"}},
			want:   map[string]any{"wsgi.url_scheme": "http"},
		},
		{
			name: "POST with Content-Length", method: "POST", path: "/environ",
			body: strings.NewReader("hello"), size: 5,
			want: map[string]any{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5", "body_length": 5, "wsgi.input_terminated": true},
		},
		{
			// nginx streams the chunked body with no CONTENT_LENGTH (fastcgi_request_buffering
			// off): the gateway must spool it and give the app its true length.
			name: "chunked POST gets a true CONTENT_LENGTH", method: "POST", path: "/stream/environ",
			body: opaqueReader{newPattern(300 << 10)}, size: -1,
			want:   map[string]any{"CONTENT_LENGTH": strconv.Itoa(300 << 10), "body_length": 300 << 10, "wsgi.input_terminated": true},
			absent: []string{"HTTP_TRANSFER_ENCODING"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := n.request(t, tc.method, tc.path, tc.body, 0)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			if tc.size != 0 {
				req.ContentLength = tc.size
			}
			var env map[string]any
			decodeJSON(t, n.send(t, req), &env)
			for k, want := range tc.want {
				got, ok := env[k]
				if !ok {
					t.Errorf("environ has no %s, want %#v", k, want)
					continue
				}
				if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
					t.Errorf("environ[%s] = %s, want %s", k, gj, wj)
				}
			}
			for _, k := range tc.absent {
				if v, ok := env[k]; ok {
					t.Errorf("environ[%s] = %#v, want it absent", k, v)
				}
			}
			for _, k := range tc.noValue {
				if v, ok := env[k]; ok && v != "" {
					t.Errorf("environ[%s] = %#v, want it absent or empty", k, v)
				}
			}
			if t.Failed() {
				t.Logf("environ: %s", mustJSON(t, env))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// uploadResult is the answer of /upload.
type uploadResult struct {
	SHA256        string  `json:"sha256"`
	Length        int64   `json:"length"`
	ContentLength *string `json:"content_length"`
	PID           int     `json:"pid"`
}

// upload POSTs size bytes of the pattern to path (chunked if chunked) and checks that the app
// read exactly those bytes. It returns the app's answer.
func upload(t *testing.T, n *nginx, path string, size int64, chunked bool, timeout time.Duration) uploadResult {
	t.Helper()
	h := sha256.New()
	var body io.Reader = io.TeeReader(newPattern(size), h)
	if chunked {
		body = opaqueReader{body}
	}
	req := n.request(t, http.MethodPost, path, body, timeout)
	req.ContentLength = size
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var got uploadResult
	decodeJSON(t, n.send(t, req), &got)
	if want := hex.EncodeToString(h.Sum(nil)); got.SHA256 != want || got.Length != size {
		t.Errorf("POST %s: app read %d bytes with sha256 %s; sent %d bytes with sha256 %s", path, got.Length, got.SHA256, size, want)
	}
	if got.ContentLength == nil || *got.ContentLength != strconv.FormatInt(size, 10) {
		t.Errorf("POST %s: app saw CONTENT_LENGTH %v, want %d", path, deref(got.ContentLength), size)
	}
	return got
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func testUpload(t *testing.T, n *nginx) {
	for _, tc := range []struct {
		name    string
		path    string
		size    int64
		chunked bool
	}{
		{"empty", "/upload", 0, false},
		{"20 MB buffered by nginx", "/upload", 20_000_000, false},
		{"20 MB streamed by nginx", "/stream/upload", 20_000_000, false},
		{"3 MiB chunked, spooled by the gateway", "/stream/upload", 3<<20 + 17, true},
		{"20 MB chunked, buffered by nginx", "/upload", 20_000_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upload(t, n, tc.path, tc.size, tc.chunked, 0)
		})
	}
}

// download GETs path, which must answer size bytes of the pattern, and compares them as they
// arrive, reporting the first offset that differs. It returns how long the body took.
func download(t *testing.T, n *nginx, path string, size int64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	resp, err := n.client.Do(n.request(t, http.MethodGet, path, nil, timeout))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: status %d; body:\n%s", path, resp.StatusCode, b)
	}
	if resp.ContentLength != size {
		t.Errorf("GET %s: Content-Length %d, want %d", path, resp.ContentLength, size)
	}
	want := newPattern(size)
	got, exp := make([]byte, 256<<10), make([]byte, 256<<10)
	var off int64
	for {
		nr, rerr := resp.Body.Read(got)
		if nr > 0 {
			if _, err := io.ReadFull(want, exp[:nr]); err != nil {
				t.Fatalf("GET %s: more than the %d bytes asked for", path, size)
			}
			for i := range nr {
				if got[i] != exp[i] {
					t.Fatalf("GET %s: byte %d is %#x, want %#x", path, off+int64(i), got[i], exp[i])
				}
			}
			off += int64(nr)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			t.Fatalf("GET %s: read after %d of %d bytes: %v", path, off, size, rerr)
		}
	}
	if off != size {
		t.Fatalf("GET %s: got %d bytes, want %d", path, off, size)
	}
	return time.Since(start)
}

func testDownload(t *testing.T, n *nginx) {
	for _, path := range []string{"/download", "/stream/download"} {
		for _, size := range []int64{0, 1, chunkSize, 5*chunkSize + 123} {
			t.Run(fmt.Sprintf("%s %d bytes", path, size), func(t *testing.T) {
				download(t, n, fmt.Sprintf("%s?size=%d", path, size), size, 0)
			})
		}
	}
}

// The app yields "first\n", sleeps 1.5 s, yields "second\n": the first chunk must reach the
// client long before the generator ends (PEP 3333: no buffering of an iterable's chunks).
const (
	firstChunkBy = time.Second
	streamTakes  = 1400 * time.Millisecond
)

func testStreaming(t *testing.T, n *nginx) {
	start := time.Now()
	resp, err := n.client.Do(n.request(t, http.MethodGet, "/stream/chunks", nil, 0))
	if err != nil {
		t.Fatalf("GET /stream/chunks: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	firstAt := time.Since(start)
	if err != nil || first != "first\n" {
		t.Fatalf("first line %q, %v; want %q", first, err, "first\n")
	}
	rest, err := io.ReadAll(br)
	total := time.Since(start)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest of the body %q, %v; want %q", rest, err, "second\n")
	}
	t.Logf("first chunk after %v, whole body after %v", firstAt.Round(time.Millisecond), total.Round(time.Millisecond))
	if firstAt > firstChunkBy {
		t.Errorf("first chunk arrived after %v, want < %v: the response was buffered", firstAt, firstChunkBy)
	}
	if total < streamTakes {
		t.Errorf("whole body after %v, want >= %v: the app did not stream as the test assumes", total, streamTakes)
	}
}

func testStreamingCurl(t *testing.T, n *nginx) {
	curl := needCurl(t)
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail", "--no-buffer", "--noproxy", "*", n.base+"/stream/chunks")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start curl: %v", err)
	}
	defer func() {
		cancel() // kills curl if a check below gave up on it
		_ = cmd.Wait()
	}()
	br := bufio.NewReader(out)
	first, err := br.ReadString('\n')
	firstAt := time.Since(start)
	if err != nil || first != "first\n" {
		t.Fatalf("curl: first line %q, %v; want %q", first, err, "first\n")
	}
	rest, err := io.ReadAll(br)
	total := time.Since(start)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("curl: rest of the body %q, %v; want %q", rest, err, "second\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl: %v", err)
	}
	t.Logf("curl: first chunk after %v, whole body after %v", firstAt.Round(time.Millisecond), total.Round(time.Millisecond))
	if firstAt > firstChunkBy || total < streamTakes {
		t.Errorf("curl: first chunk after %v (want < %v), whole body after %v (want >= %v)", firstAt, firstChunkBy, total, streamTakes)
	}
}

func testException(t *testing.T, g *gateway, n *nginx) {
	r := n.get(t, "/boom")
	if r.status != http.StatusInternalServerError {
		t.Errorf("GET /boom: status %d, want 500; body:\n%s", r.status, r.body)
	}
	for _, leak := range []string{"integration-test-boom", "Traceback", "RuntimeError"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("GET /boom: the 500 body shows %q to the client:\n%s", leak, r.body)
		}
	}
	// The traceback goes to the log instead.
	g.waitLog(t, "integration-test-boom", 5*time.Second)
	// Both workers still serve.
	for range 2 * g.workers {
		n.mustGet(t, "/pid", http.StatusOK)
	}
}

func testExceptionAfterStart(t *testing.T, n *nginx) {
	// The app fails after its first chunk went out: the gateway cuts the FastCGI response
	// (no END_REQUEST), and nginx must not pass the response off as complete. Every nginx
	// configuration is in truncation_test.go; this is the deploy recipe's location /.
	// Buffering, nginx may not have sent the response's head yet: the client then gets none.
	const path = "/boom-after-start"
	if r, err := n.fetch(n.request(t, http.MethodGet, path, nil, 0)); err == nil && r.status == http.StatusOK {
		t.Errorf("GET %s: status %d, body %q read to a clean end; want a truncated response", path, r.status, r.body)
	}
	for range 4 {
		n.mustGet(t, "/pid", http.StatusOK)
	}
}

func testKeepAlive(t *testing.T, g *gateway, n *nginx) {
	if g.network != "unix" {
		t.Skip("counts connections on the unix socket")
	}
	for range 20 {
		n.mustGet(t, "/pid", http.StatusOK)
	}
	// fastcgi_keep_conn on + upstream keepalive: nginx keeps its connection to the gateway,
	// and the gateway must not close it after END_REQUEST.
	conns, err := serverConns(g.address)
	if err != nil {
		t.Fatal(err)
	}
	if conns < 1 || conns > 16 {
		t.Errorf("gateway holds %d FastCGI connections after 20 sequential requests, want 1..16 (upstream keepalive 16, one nginx worker)", conns)
	}
	t.Logf("FastCGI connections kept open: %d", conns)
}

// TestListenAddresses serves through nginx from each form of --listen.
func TestListenAddresses(t *testing.T) {
	needPythonFlask(t)
	for _, tc := range []struct {
		name   string
		listen func(t *testing.T) string
	}{
		{"unix: prefix", func(t *testing.T) string { return "unix:" + shortTempDir(t) + "/gw.sock" }},
		{"bare path", func(t *testing.T) string { return shortTempDir(t) + "/gw.sock" }},
		{"IPv4 loopback", func(t *testing.T) string {
			return fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
		}},
		{"IPv6 loopback", func(t *testing.T) string {
			l, err := net.Listen("tcp6", "[::1]:0")
			if err != nil {
				t.Skipf("no IPv6 loopback here: %v", err)
			}
			l.Close()
			return fmt.Sprintf("[::1]:%d", l.Addr().(*net.TCPAddr).Port)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, gatewayConfig{workers: 1, listen: tc.listen(t)})
			n := startNginx(t, g.upstream)
			var env map[string]any
			decodeJSON(t, n.get(t, "/environ/x?y=z"), &env)
			if env["PATH_INFO"] != "/environ/x" || env["QUERY_STRING"] != "y=z" {
				t.Errorf("environ PATH_INFO %v, QUERY_STRING %v; want /environ/x, y=z", env["PATH_INFO"], env["QUERY_STRING"])
			}
		})
	}
}
