package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSplitPath(t *testing.T) {
	cases := []struct {
		name                string
		mount               string
		scriptName          string
		pathInfo            string
		wantScript, wantPat string
	}{
		// nginx stock fastcgi_params: SCRIPT_NAME is the whole (decoded) path, no PATH_INFO.
		{"nginx stock params", "", "/json/bob", "", "", "/json/bob"},
		{"nginx root", "", "/", "", "", "/"},
		// Apache ProxyPass: the whole path in SCRIPT_NAME too.
		{"apache proxypass", "", "/app/foo/bar", "", "", "/app/foo/bar"},
		// Caddy without split_path: SCRIPT_NAME empty, PATH_INFO the path.
		{"caddy", "", "", "/foo/bar", "", "/foo/bar"},
		// A front end that splits (nginx fastcgi_split_path_info, mod_fcgid).
		{"split kept", "", "/app", "/foo", "/app", "/foo"},
		{"script trailing slash dropped", "", "/app/", "/foo", "/app", "/foo"},
		// An explicit mount wins and is checked at a "/" boundary.
		{"mount", "/app", "/app/foo/bar", "", "/app", "/foo/bar"},
		{"mount exact", "/app", "/app", "", "/app", ""},
		{"mount with split", "/app", "/app", "/foo", "/app", "/foo"},
		{"mount not a boundary", "/app", "/application/x", "", "", "/application/x"},
		{"mount elsewhere", "/app", "/other", "", "", "/other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, p := splitPath([]byte(tc.mount), []byte(tc.scriptName), []byte(tc.pathInfo))
			if string(s) != tc.wantScript || string(p) != tc.wantPat {
				t.Errorf("got SCRIPT_NAME %q PATH_INFO %q, want %q %q", s, p, tc.wantScript, tc.wantPat)
			}
		})
	}
}

func TestNormalizeMount(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "/app": "/app", "/app/": "/app", "app": "/app", "/a/b//": "/a/b"} {
		if got := NormalizeMount(in); got != want {
			t.Errorf("NormalizeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name, param, value string
		want               paramAction
		scheme             string
	}{
		{"httpoxy: Proxy header dropped", "HTTP_PROXY", "http://evil:3128", dropParam, "http"},
		{"plain header passes", "HTTP_HOST", "example.org", passParam, "http"},
		{"HTTPS on", "HTTPS", "on", passParam, "https"},
		{"HTTPS off", "HTTPS", "off", passParam, "http"},
		{"REQUEST_SCHEME https", "REQUEST_SCHEME", "https", passParam, "https"},
		// A client's own X-Forwarded-Proto never chooses wsgi.url_scheme.
		{"X-Forwarded-Proto ignored", "HTTP_X_FORWARDED_PROTO", "https", passParam, "http"},
		{"content length held", "CONTENT_LENGTH", "12", heldParam, "http"},
		{"transfer encoding held", "HTTP_TRANSFER_ENCODING", "chunked", heldParam, "http"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c cgiRequest
			if got := c.classify([]byte(tc.param), []byte(tc.value)); got != tc.want {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
			if got := c.urlScheme(); got != tc.scheme {
				t.Errorf("url scheme = %q, want %q", got, tc.scheme)
			}
		})
	}
}

func TestDeclaredLength(t *testing.T) {
	cases := []struct {
		value string
		set   bool
		n     int64
		ok    bool
	}{
		{"12", true, 12, true},
		{"0", true, 0, true},
		{"", true, 0, false},    // nginx on a GET
		{"-1", true, 0, false},  // Caddy on a chunked body
		{"12x", true, 0, false}, // garbage
		{"", false, 0, false},   // Apache streaming a chunked body
	}
	for _, tc := range cases {
		var c cgiRequest
		if tc.set {
			c.classify([]byte("CONTENT_LENGTH"), []byte(tc.value))
		}
		n, ok := c.declaredLength()
		if n != tc.n || ok != tc.ok {
			t.Errorf("CONTENT_LENGTH %q (set %v): got %d %v, want %d %v", tc.value, tc.set, n, ok, tc.n, tc.ok)
		}
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		size    int
		mem     int
		max     int64
		wantErr error
	}{
		{"in memory", 1000, 4096, 0, nil},
		{"exactly the memory bound", 4096, 4096, 0, nil},
		{"to a temp file", 100_000, 4096, 0, nil},
		{"at the limit", 100_000, 4096, 100_000, nil},
		{"over the limit in memory", 3000, 4096, 2000, errTooLarge},
		{"over the limit on disk", 100_001, 4096, 100_000, errTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("abcdefghij"), tc.size/10+1)[:tc.size]
			// One byte per Read, as a slow web server delivers.
			sp, err := spool(iotest.OneByteReader(bytes.NewReader(body)), tc.mem, tc.max, dir)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer sp.Close()
			got, err := io.ReadAll(sp)
			if err != nil || !bytes.Equal(got, body) || sp.size != int64(tc.size) {
				t.Fatalf("read back %d bytes (size %d, err %v), want %d", len(got), sp.size, err, tc.size)
			}
		})
	}
	t.Run("broken body", func(t *testing.T) {
		_, err := spool(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF)), 16, 0, dir)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
}
