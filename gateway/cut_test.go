package gateway

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines and the test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rawExchange sends one request over FastCGI on a new connection, written by hand, and reads
// what comes back until FCGI_END_REQUEST or the end of the connection. It returns the
// FCGI_STDOUT bytes and whether FCGI_END_REQUEST came; gofast hides the difference.
func rawExchange(t *testing.T, sock string, params map[string]string) (stdout []byte, ended bool) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	record := func(typ byte, content []byte) []byte {
		h := []byte{1, typ, 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(h[4:], uint16(len(content)))
		return append(h, content...)
	}
	var p []byte
	for k, v := range params {
		p = append(p, byte(len(k)), byte(len(v)))
		p = append(p, k+v...)
	}
	var req []byte
	req = append(req, record(1, []byte{0, 1, 0, 0, 0, 0, 0, 0})...) // BEGIN, responder, no keep-conn
	req = append(req, record(4, p)...)
	req = append(req, record(4, nil)...)
	req = append(req, record(5, nil)...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	for {
		var h [8]byte
		if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 1 {
			return stdout, false
		}
		b := make([]byte, int(binary.BigEndian.Uint16(h[4:]))+int(h[6]))
		if _, err := io.ReadFull(c, b); err != nil {
			return stdout, false
		}
		switch h[1] {
		case 6:
			stdout = append(stdout, b[:binary.BigEndian.Uint16(h[4:])]...)
		case 3:
			return stdout, true
		}
	}
}

// A response whose body ends short of the Content-Length the app declared is an app failure:
// cut (no FCGI_END_REQUEST), as for an exception after the first chunk, and logged. A body
// longer than its Content-Length is cut down to it. HEAD, 204 and 304 carry no body whatever
// Content-Length says.
func TestResponseLengthChecked(t *testing.T) {
	var logs lockedBuffer
	sock := serveTestApp(t, Options{Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	cases := []struct {
		name, method, path string
		wantCut            bool
		wantBody           string
	}{
		{"whole", "GET", "/length/5/exact", false, "exact"},
		{"shorter than declared", "GET", "/length/100/short!", true, ""},
		{"empty but declared", "GET", "/length/10/", true, ""},
		{"longer than declared", "GET", "/length/4/longer body", false, "long"},
		{"HEAD declares the length of the GET", "HEAD", "/length/100/", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, ended := rawExchange(t, sock, baseParams(map[string]string{"REQUEST_METHOD": tc.method, "PATH_INFO": tc.path, "REQUEST_URI": tc.path}))
			if ended == tc.wantCut {
				t.Fatalf("FCGI_END_REQUEST sent: %v, want %v; stdout %q", ended, !tc.wantCut, stdout)
			}
			if tc.wantCut {
				if !strings.Contains(logs.String(), "body is shorter than its Content-Length") || !strings.Contains(logs.String(), tc.path) {
					t.Errorf("the cut is not logged with its URI:\n%s", logs.String())
				}
				return
			}
			if _, body, _ := bytes.Cut(stdout, []byte("\r\n\r\n")); string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}
