package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDerivePath: what each front end sends for GET /app/foo/bar?x=1 (the list, and
// gateway/testdata for the captured params), and what the app must see.
func TestDerivePath(t *testing.T) {
	const uri = "/app/foo/bar?x=1"
	cases := []struct {
		name                           string
		mount                          string
		scriptName, pathInfo, reqURI   string
		scriptFilename                 string
		wantScript, wantPath, wantRule string
		wantConflict                   bool
	}{
		{name: "nginx stock fastcgi_params", scriptName: "/app/foo/bar", reqURI: uri,
			wantScript: "", wantPath: "/app/foo/bar", wantRule: ruleWholePath},
		{name: "nginx stock, mounted", mount: "/app", scriptName: "/app/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleMount},
		{name: "nginx fastcgi_split_path_info", scriptName: "/app", pathInfo: "/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleSplit},
		{name: "nginx merges slashes", scriptName: "/app/foo/bar", reqURI: "//app///foo/bar",
			wantScript: "", wantPath: "/app/foo/bar", wantRule: ruleWholePath},
		{name: "nginx resolves dot segments", scriptName: "/app/bar", reqURI: "/app/foo/../bar",
			wantScript: "", wantPath: "/app/bar", wantRule: ruleWholePath},
		{name: "Apache ProxyPass /app/", scriptName: "/app/foo/bar", reqURI: uri,
			scriptFilename: "proxy:fcgi://127.0.0.1:9000/foo/bar",
			wantScript:     "/app", wantPath: "/foo/bar", wantRule: ruleProxyPath},
		{name: "Apache ProxyPass / (unix socket)", scriptName: "/app/foo/bar", reqURI: uri,
			scriptFilename: "proxy:unix:/run/app.sock|fcgi://localhost/app/foo/bar",
			wantScript:     "", wantPath: "/app/foo/bar", wantRule: ruleWholePath},
		{name: "Apache ProxyPass /app/, encoded backend path", scriptName: "/app/caf\xe9", reqURI: "/app/caf%E9",
			scriptFilename: "proxy:fcgi://127.0.0.1:9000/caf%E9",
			wantScript:     "/app", wantPath: "/caf\xe9", wantRule: ruleProxyPath},
		{name: "Apache proxy-fcgi-pathinfo: PATH_INFO still encoded", scriptName: "/app", pathInfo: "/caf%C3%A9/x", reqURI: "/app/caf%C3%A9/x",
			wantScript: "/app", wantPath: "/caf\xc3\xa9/x", wantRule: ruleSplitDecoded},
		{name: "Apache proxy-fcgi-pathinfo=1: SCRIPT_NAME cut short by the encoded PATH_INFO", scriptName: "/app/caf\xc3\xa9",
			pathInfo: "/caf%C3%A9/a/b", reqURI: "/app/caf%C3%A9/a%2Fb", scriptFilename: "proxy:fcgi://localhost/caf%C3%A9/a/b",
			wantScript: "/app", wantPath: "/caf\xc3\xa9/a/b", wantRule: ruleSplitDecoded},
		{name: "Apache SetHandler: split where the path stops existing on disk", scriptName: "/app", pathInfo: "/foo/bar", reqURI: uri,
			scriptFilename: "proxy:unix:/run/app.sock|fcgi://localhost//var/www/html/app",
			wantScript:     "", wantPath: "/app/foo/bar", wantRule: ruleFileSystem},
		{name: "Apache SetHandler, mounted", mount: "/app", scriptName: "/app", pathInfo: "/foo/bar", reqURI: uri,
			scriptFilename: "proxy:fcgi://localhost//var/www/html/app",
			wantScript:     "/app", wantPath: "/foo/bar", wantRule: ruleMount},
		{name: "Apache SetHandler + proxy-fcgi-pathinfo: PATH_INFO is the file name", scriptName: "/app/foo/bar",
			pathInfo: "//var/www/html/app", reqURI: uri, scriptFilename: "proxy:fcgi://localhost//var/www/html/app",
			wantScript: "", wantPath: "/app/foo/bar", wantRule: ruleFileSystem},
		{name: "Apache SetHandler + proxy-fcgi-pathinfo at the mount root", pathInfo: "//var/www/html/app", reqURI: "/app",
			scriptFilename: "proxy:fcgi://localhost//var/www/html/app",
			wantScript:     "", wantPath: "/app", wantRule: ruleFileSystem},
		{name: "Apache SetHandler + proxy-fcgi-pathinfo keeps a trailing /", scriptName: "/app", pathInfo: "//var/www/html/app",
			reqURI: "/app/", scriptFilename: "proxy:fcgi://localhost//var/www/html/app",
			wantScript: "", wantPath: "/app/", wantRule: ruleFileSystem},
		{name: "Apache AllowEncodedSlashes NoDecode: %2F kept", scriptName: "/app/a%2Fb", reqURI: "/app/a%2Fb",
			scriptFilename: "proxy:fcgi://localhost/app/a%2Fb",
			wantScript:     "", wantPath: "/app/a%2Fb", wantRule: ruleWholePath},
		{name: "Apache ProxyPass /app/, NoDecode", scriptName: "/app/a%2Fb", reqURI: "/app/a%2Fb",
			scriptFilename: "proxy:fcgi://localhost/a%2Fb",
			wantScript:     "/app", wantPath: "/a%2Fb", wantRule: ruleProxyPath},
		{name: "%252F decoded once is a literal %2F", scriptName: "/a%2Fb", reqURI: "/a%252Fb",
			wantScript: "", wantPath: "/a%2Fb", wantRule: ruleWholePath},
		{name: "mod_fcgid rewrite to app.fcgi", scriptName: "/app/app.fcgi", pathInfo: "/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleScriptFile},
		{name: "mod_fcgid rewrite at the root", scriptName: "/app.fcgi", pathInfo: "/foo", reqURI: "/foo",
			wantScript: "", wantPath: "/foo", wantRule: ruleScriptFile},
		{name: "mod_fcgid, app.fcgi in the URL", scriptName: "/app/app.fcgi", pathInfo: "/foo/bar", reqURI: "/app/app.fcgi/foo/bar",
			wantScript: "/app/app.fcgi", wantPath: "/foo/bar", wantRule: ruleSplit},
		{name: "mod_fcgid rewrite, mounted", mount: "/app", scriptName: "/app/app.fcgi", pathInfo: "/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleMount},
		{name: "Caddy without split_path", scriptName: "", pathInfo: "/app/foo/bar", reqURI: uri,
			wantScript: "", wantPath: "/app/foo/bar", wantRule: ruleSplit},
		{name: "Caddy handle_path /app/*", scriptName: "", pathInfo: "/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleStripped},
		{name: "Caddy handle_path, mounted", mount: "/app", pathInfo: "/foo/bar", reqURI: uri,
			wantScript: "/app", wantPath: "/foo/bar", wantRule: ruleMount},
		{name: "%2F decoded as PEP 3333 says", scriptName: "/a/b", reqURI: "/a%2Fb",
			wantScript: "", wantPath: "/a/b", wantRule: ruleWholePath},
		{name: "non-ASCII path as latin-1 bytes", scriptName: "/caf\xc3\xa9", reqURI: "/caf%C3%A9",
			wantScript: "", wantPath: "/caf\xc3\xa9", wantRule: ruleWholePath},
		{name: "SCRIPT_NAME never ends in /", scriptName: "/app/", pathInfo: "x", reqURI: "/app/x",
			wantScript: "/app", wantPath: "/x", wantRule: ruleSplit},
		{name: "root", scriptName: "/", reqURI: "/",
			wantScript: "", wantPath: "/", wantRule: ruleWholePath},
		{name: "mod_authnz_fcgi authorizer: no SCRIPT_NAME, no PATH_INFO", reqURI: "/private/caf%C3%A9?x=1",
			wantScript: "", wantPath: "/private/caf\xc3\xa9", wantRule: ruleFromRequestURI},
		{name: "no REQUEST_URI", scriptName: "/a", pathInfo: "/b",
			wantScript: "/a", wantPath: "/b", wantRule: ruleNoRequestURI},
		{name: "contradiction: taken as sent", scriptName: "/other", reqURI: uri,
			wantScript: "", wantPath: "/other", wantRule: ruleConflict, wantConflict: true},
		{name: "contradiction with PATH_INFO", scriptName: "/x", pathInfo: "/y", reqURI: uri,
			wantScript: "/x", wantPath: "/y", wantRule: ruleConflict, wantConflict: true},
		{name: "mount not at a / boundary", mount: "/app", scriptName: "/application/x", reqURI: "/application/x",
			wantScript: "", wantPath: "/application/x", wantRule: ruleMountConflict, wantConflict: true},
		{name: "mount exact", mount: "/app", scriptName: "/app", reqURI: "/app",
			wantScript: "/app", wantPath: "", wantRule: ruleMount},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := pathInput{mount: []byte(tc.mount), scriptName: []byte(tc.scriptName), pathInfo: []byte(tc.pathInfo),
				scriptFilename: []byte(tc.scriptFilename)}
			if tc.reqURI != "" {
				in.requestURI = []byte(tc.reqURI)
			}
			got := derivePath(in)
			if string(got.script) != tc.wantScript || string(got.path) != tc.wantPath || got.rule != tc.wantRule {
				t.Errorf("got SCRIPT_NAME %q PATH_INFO %q by %q\nwant %q %q by %q", got.script, got.path, got.rule,
					tc.wantScript, tc.wantPath, tc.wantRule)
			}
			if (got.conflict != "") != tc.wantConflict {
				t.Errorf("conflict = %q, want conflict %v", got.conflict, tc.wantConflict)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{"/a%2Fb": "/a/b", "/caf%C3%a9": "/caf\xc3\xa9", "/100%": "/100%",
		"/%zz": "/%zz", "/a+b": "/a+b", "/%4": "/%4", "": ""} {
		if got := string(unescape([]byte(in))); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
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
		{"plain header passes", "HTTP_ACCEPT", "*/*", passParam, "http"},
		{"host held (X-Forwarded-Host may replace it)", "HTTP_HOST", "example.org", heldParam, "http"},
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
