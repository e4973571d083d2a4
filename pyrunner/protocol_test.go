//go:build linux

package pyrunner

import (
	"encoding/binary"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestEnvironDecodesInPython checks the marshal encoding against a real interpreter: every
// value must come back as the str PEP 3333 asks for (each byte as the code point of its value).
func TestEnvironDecodesInPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	long := strings.Repeat("x", 300)
	env := []struct{ name, value string }{
		{"REQUEST_METHOD", "GET"},
		{"PATH_INFO", "/caf\xe9/\xff"}, // latin-1 bytes as the web server decoded them
		{"QUERY_STRING", ""},
		{"HTTP_X_LONG", long},
		{"HTTP_X_LONG_LATIN1", long + "\xe9"},
		{"HTTP_COOKIE", "a=1; b=\"2\""},
	}
	var r Request
	r.Reset()
	for _, e := range env {
		r.Env(e.name, []byte(e.value))
	}
	frame := r.finish()
	envLen := binary.LittleEndian.Uint32(frame[frameHeaderLen:])
	marshalled := frame[frameHeaderLen+4 : frameHeaderLen+4+int(envLen)]

	// Python prints each value as the list of its code points.
	cmd := exec.Command(python, "-c", `import marshal, sys, json
d = marshal.loads(sys.stdin.buffer.read())
assert all(type(k) is str and type(v) is str for k, v in d.items())
print(json.dumps({k: [ord(c) for c in v] for k, v in d.items()}))`)
	cmd.Stdin = strings.NewReader(string(marshalled))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string][]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, e := range env {
		want := make([]int, len(e.value))
		for i := 0; i < len(e.value); i++ {
			want[i] = int(e.value[i])
		}
		if g := got[e.name]; len(g) != len(want) || !equalInts(g, want) {
			t.Errorf("%s: python got code points %v, want %v", e.name, g, want)
		}
	}
	if frame[5]&flagEOF == 0 {
		t.Error("a request without Body must carry EOF")
	}
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestParseHeaderBlock(t *testing.T) {
	cases := []struct {
		name, block string
		ok          bool
		status      string
		fields      int
	}{
		{"status only", "200 OK", true, "200 OK", 0},
		{"bare code", "204", true, "204", 0},
		{"headers", "302 Found\x00Location\x00/x\x00Set-Cookie\x00a=1\x00Set-Cookie\x00b=2", true, "302 Found", 3},
		{"empty value", "200 OK\x00X-Empty\x00", true, "200 OK", 1},
		{"latin-1 value", "200 OK\x00X-Name\x00caf\xe9", true, "200 OK", 1},
		// Security regressions: nothing an app returns may become two headers or a second response.
		{"CRLF in value (response splitting)", "200 OK\x00X\x00a\r\nSet-Cookie: evil=1", false, "", 0},
		{"LF in value", "200 OK\x00X\x00a\nb", false, "", 0},
		{"CR in status", "200 OK\r\nX: y", false, "", 0},
		{"space in name", "200 OK\x00Bad Name\x00v", false, "", 0},
		{"colon in name", "200 OK\x00X:Y\x00v", false, "", 0},
		{"empty name", "200 OK\x00\x00v", false, "", 0},
		{"Status header", "200 OK\x00Status\x00500", false, "", 0},
		{"name without value", "200 OK\x00X", false, "", 0},
		{"trailing NUL", "200 OK\x00", false, "", 0},
		{"short status", "20", false, "", 0},
		{"status not digits", "abc OK", false, "", 0},
		{"no space before reason", "200OK", false, "", 0},
		{"status 000", "000 Zero", false, "", 0},
		// An interim (1xx) status would reach the client as an interim response followed by
		// the app's body where the next response belongs: a desync. Refused like any invalid one.
		{"100 Continue", "100 Continue", false, "", 0},
		{"101 Switching Protocols", "101 Switching Protocols\x00Upgrade\x00websocket", false, "", 0},
		{"103 Early Hints", "103 Early Hints\x00Link\x00</a.css>; rel=preload", false, "", 0},
		{"bare 199", "199", false, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, err := parseHeaderBlock([]byte(tc.block))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			n := 0
			h.Each(func(_, _ []byte) { n++ })
			if string(status) != tc.status || n != tc.fields {
				t.Errorf("got status %q with %d fields, want %q with %d", status, n, tc.status, tc.fields)
			}
		})
	}
}

func BenchmarkEnvironEncode(b *testing.B) {
	names := []string{"QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME",
		"REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
		"GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT", "SERVER_ADDR",
		"SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "PATH_INFO", "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT"}
	values := [][]byte{[]byte("x=1"), []byte("GET"), nil, nil, nil, []byte("/json/bob?x=1"), []byte("/json/bob"),
		[]byte("/usr/share/nginx/html"), []byte("HTTP/1.1"), []byte("http"), []byte("CGI/1.1"), []byte("nginx/1.22.1"),
		[]byte("127.0.0.1"), []byte("51234"), []byte("127.0.0.1"), []byte("8080"), []byte("localhost"), []byte("200"),
		[]byte("/json/bob"), []byte("localhost:8080"), []byte("wrk"), []byte("*/*")}
	var r Request
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Reset()
		for j, n := range names {
			r.Env(n, values[j])
		}
		r.finish()
	}
}
