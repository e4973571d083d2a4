package fcgi

// gofast plays the web server against a real Server, on a unix socket and
// on TCP loopback.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/yookoala/gofast"
)

// gofastHandler serves the test routes, chosen by SCRIPT_NAME.
var gofastHandler = HandlerFunc(func(w *ResponseWriter, r *Request) {
	route, _ := r.Params.Get("SCRIPT_NAME")
	switch string(route) {
	case "/hash":
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			w.Write([]byte("Status: 500\r\nContent-Type: text/plain\r\n\r\n" + err.Error()))
			return
		}
		fmt.Fprintf(w, "Content-Type: text/plain\r\n\r\n%d %x", n, h.Sum(nil))
	case "/big":
		size, _ := strconv.Atoi(string(must(r.Params.Get("SIZE"))))
		w.Write([]byte("Content-Type: application/octet-stream\r\n\r\n"))
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i % 253)
		}
		for size > 0 {
			n := min(size, len(chunk))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			size -= n
		}
	case "/stderr":
		w.WriteStderr([]byte("something odd\n"))
		w.Write([]byte("Status: 202 Accepted\r\nContent-Type: text/plain\r\n\r\nlogged"))
	default:
		method, _ := r.Params.Get("REQUEST_METHOD")
		fmt.Fprintf(w, "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Role: %d\r\n\r\n%s %s", r.Role, method, route)
	}
})

func must(v []byte, _ bool) []byte { return v }

// gofastDo sends one request with client and returns the recorded response
// and stderr.
func gofastDo(t *testing.T, client gofast.Client, params map[string]string, body []byte) (*httptest.ResponseRecorder, string) {
	t.Helper()
	req := gofast.NewRequest(nil)
	for k, v := range params {
		req.Params[k] = v
	}
	if body != nil {
		req.Stdin = io.NopCloser(bytes.NewReader(body))
		req.Params["CONTENT_LENGTH"] = strconv.Itoa(len(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		t.Fatal(err)
	}
	return rec, stderr.String()
}

func TestGofast(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ts := startServer(t, network, gofastHandler)
			newClient := func(t *testing.T) gofast.Client {
				c, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(ts.network, ts.addr))()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}

			t.Run("GET", func(t *testing.T) {
				rec, _ := gofastDo(t, newClient(t), map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/x"}, nil)
				if rec.Code != 200 || rec.Body.String() != "GET /x" || rec.Header().Get("X-Role") != "1" {
					t.Errorf("got %d %q %v", rec.Code, rec.Body, rec.Header())
				}
			})

			t.Run("authorizer", func(t *testing.T) {
				req := gofast.NewRequest(nil)
				req.Role = gofast.RoleAuthorizer
				req.Params["SCRIPT_NAME"] = "/auth"
				resp, err := newClient(t).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				rec := httptest.NewRecorder()
				if err := resp.WriteTo(rec, io.Discard); err != nil {
					t.Fatal(err)
				}
				if rec.Header().Get("X-Role") != "2" {
					t.Errorf("role header %q", rec.Header().Get("X-Role"))
				}
			})

			t.Run("POST 5 MiB", func(t *testing.T) {
				body := make([]byte, 5<<20)
				for i := range body {
					body[i] = byte(i * 31)
				}
				rec, _ := gofastDo(t, newClient(t), map[string]string{"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/hash"}, body)
				if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); rec.Body.String() != want {
					t.Errorf("got %q, want %q", rec.Body, want)
				}
			})

			t.Run("keep-conn sequential", func(t *testing.T) {
				client := newClient(t)
				for i := range 10 {
					body := bytes.Repeat([]byte{byte(i)}, 70000*i)
					rec, _ := gofastDo(t, client, map[string]string{"SCRIPT_NAME": "/hash"}, body)
					if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); rec.Body.String() != want {
						t.Errorf("request %d: got %q, want %q", i, rec.Body, want)
					}
				}
			})

			t.Run("10 MiB response", func(t *testing.T) {
				const size = 10 << 20
				rec, _ := gofastDo(t, newClient(t), map[string]string{"SCRIPT_NAME": "/big", "SIZE": strconv.Itoa(size)}, nil)
				b := rec.Body.Bytes()
				if len(b) != size {
					t.Fatalf("got %d bytes, want %d", len(b), size)
				}
				for i := range b {
					if b[i] != byte(i%(1<<20)%253) {
						t.Fatalf("byte %d differs", i)
					}
				}
			})

			t.Run("stderr", func(t *testing.T) {
				rec, stderr := gofastDo(t, newClient(t), map[string]string{"SCRIPT_NAME": "/stderr"}, nil)
				if rec.Code != 202 || rec.Body.String() != "logged" || stderr != "something odd\n" {
					t.Errorf("got %d %q, stderr %q", rec.Code, rec.Body, stderr)
				}
			})

			t.Run("parallel connections", func(t *testing.T) {
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Go(func() {
						client := newClient(t)
						for j := range 20 {
							body := fmt.Appendf(nil, "client %d request %d", i, j)
							rec, _ := gofastDo(t, client, map[string]string{"SCRIPT_NAME": "/hash"}, body)
							if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); rec.Body.String() != want {
								t.Errorf("got %q, want %q", rec.Body, want)
							}
						}
					})
				}
				wg.Wait()
			})
			ts.noConnErrors(t)
		})
	}
}
