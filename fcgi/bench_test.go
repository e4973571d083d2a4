package fcgi

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"testing"
)

// nginxParams is the params block nginx sends with its stock fastcgi_params.
var nginxParams = bytes.Join([][]byte{
	nameValuePair11("QUERY_STRING", "id=42&sort=asc"),
	nameValuePair11("REQUEST_METHOD", "GET"),
	nameValuePair11("CONTENT_TYPE", ""),
	nameValuePair11("CONTENT_LENGTH", ""),
	nameValuePair11("SCRIPT_NAME", "/app/items"),
	nameValuePair11("REQUEST_URI", "/app/items?id=42&sort=asc"),
	nameValuePair11("DOCUMENT_URI", "/app/items"),
	nameValuePair11("DOCUMENT_ROOT", "/usr/share/nginx/html"),
	nameValuePair11("SERVER_PROTOCOL", "HTTP/1.1"),
	nameValuePair11("REQUEST_SCHEME", "http"),
	nameValuePair11("GATEWAY_INTERFACE", "CGI/1.1"),
	nameValuePair11("SERVER_SOFTWARE", "nginx/1.26.3"),
	nameValuePair11("REMOTE_ADDR", "192.0.2.10"),
	nameValuePair11("REMOTE_PORT", "53412"),
	nameValuePair11("SERVER_ADDR", "192.0.2.1"),
	nameValuePair11("SERVER_PORT", "80"),
	nameValuePair11("SERVER_NAME", "example.com"),
	nameValuePair11("REDIRECT_STATUS", "200"),
	nameValuePair11("HTTP_HOST", "example.com"),
	nameValuePair11("HTTP_USER_AGENT", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
	nameValuePair11("HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
	nameValuePair11("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
	nameValuePair11("HTTP_ACCEPT_ENCODING", "gzip, deflate"),
	nameValuePair11("HTTP_CONNECTION", "keep-alive"),
}, nil)

var benchReply = []byte("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!")

// BenchmarkRoundTrip sends one small request at a time on one kept
// connection over a unix socket, as nginx with fastcgi_keep_conn does, and
// reads the response up to FCGI_END_REQUEST. Allocations are the server's:
// the client reuses its buffers.
func BenchmarkRoundTrip(b *testing.B) {
	srv := &Server{Handler: HandlerFunc(func(w *ResponseWriter, r *Request) {
		r.Params.Get("REQUEST_URI")
		w.Write(benchReply)
	})}
	l, err := Listen(filepath.Join(b.TempDir(), "bench.sock"))
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

	req := beginRecord(1, RoleResponder, flagKeepConn)
	req = append(req, makeRecord(typeParams, 1, nginxParams, 0)...)
	req = append(req, makeRecord(typeParams, 1, nil, 0)...)
	req = append(req, makeRecord(typeStdin, 1, nil, 0)...)
	want := bytes.Join([][]byte{
		makeRecord(typeStdout, 1, benchReply, 0),
		makeRecord(typeStdout, 1, nil, 0),
		appendEndRequest(nil, 1, 0, statusRequestComplete),
	}, nil)
	got := make([]byte, len(want))

	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(want)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.Equal(got, want) {
		b.Fatalf("response %q", got)
	}
}

// BenchmarkParamsDecode indexes nginx's params block and looks up a name.
func BenchmarkParamsDecode(b *testing.B) {
	idx := make([]pairIndex, 0, 32)
	b.ReportAllocs()
	b.SetBytes(int64(len(nginxParams)))
	for b.Loop() {
		var p Params
		if err := p.parse(nginxParams, idx); err != nil {
			b.Fatal(err)
		}
		idx = p.idx
		if v, ok := p.Get("HTTP_CONNECTION"); !ok || len(v) == 0 {
			b.Fatal("lookup failed")
		}
	}
}
