package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// echoDispatcher answers every request at once, without a worker: the benchmarks measure the
// gateway's own work per request.
type echoDispatcher struct{}

func (echoDispatcher) Do(_ context.Context, _ *pyrunner.Request, w pyrunner.ResponseWriter) error {
	if err := w.WriteHeader([]byte("200 OK"), pyrunner.Header{}); err != nil {
		return err
	}
	_, err := w.Write([]byte("Hello, world!"))
	return err
}

// benchRecord is a FastCGI record of type typ for request 1.
func benchRecord(typ byte, content []byte) []byte {
	b := []byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0}
	return append(b, content...)
}

func benchPair(name, value string) []byte {
	return append([]byte{byte(len(name)), byte(len(value))}, name+value...)
}

// BenchmarkServeFCGI sends one small GET at a time on one kept connection (as nginx with
// fastcgi_keep_conn does) through the gateway to a dispatcher that answers at once. The
// "status" case has the status page on, so the gateway hands each request's method, URI and
// length to the pool for it (pyrunner.Request.Info), and records the request metrics; the
// "status+accesslog" case writes the combined access log line too.
func BenchmarkServeFCGI(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"status", Options{StatusPath: "/fcgi-status", Status: fakeStatus{}}},
		{"status+accesslog", Options{StatusPath: "/fcgi-status", Status: fakeStatus{}, AccessLog: NewAccessLog(io.Discard, mustFormat(b, "combined"))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := &fcgi.Server{Handler: New(echoDispatcher{}, bc.opts)}
			l, err := fcgi.Listen(filepath.Join(b.TempDir(), "bench.sock"))
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("unix", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			params := bytes.Join([][]byte{
				benchPair("QUERY_STRING", "id=42"), benchPair("REQUEST_METHOD", "GET"),
				benchPair("CONTENT_TYPE", ""), benchPair("CONTENT_LENGTH", ""),
				benchPair("SCRIPT_NAME", "/items"), benchPair("REQUEST_URI", "/items?id=42"),
				benchPair("DOCUMENT_URI", "/items"), benchPair("SERVER_PROTOCOL", "HTTP/1.1"),
				benchPair("REQUEST_SCHEME", "http"), benchPair("REMOTE_ADDR", "192.0.2.10"),
				benchPair("SERVER_PORT", "80"), benchPair("SERVER_NAME", "example.com"),
				benchPair("HTTP_HOST", "example.com"), benchPair("HTTP_USER_AGENT", "bench/1.0"),
			}, nil)
			req := benchRecord(1, []byte{0, 1, 1, 0, 0, 0, 0, 0}) // BEGIN_REQUEST, responder, keep-conn
			req = append(req, benchRecord(4, params)...)
			req = append(req, benchRecord(4, nil)...)
			req = append(req, benchRecord(5, nil)...)
			// The response: STDOUT, empty STDOUT and END_REQUEST; read its size once.
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			var resp bytes.Buffer
			buf := make([]byte, 4096)
			endRequest := []byte{1, 3, 0, 1, 0, 8} // END_REQUEST's header; 8 bytes of body follow
			for i := -1; i < 0 || resp.Len() < i+16; i = bytes.Index(resp.Bytes(), endRequest) {
				n, err := c.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				resp.Write(buf[:n])
			}
			got := make([]byte, resp.Len())
			if !bytes.Contains(resp.Bytes(), []byte("Hello, world!")) {
				b.Fatalf("response %q", resp.Bytes())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
