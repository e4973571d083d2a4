//go:build integration

// Captures the CGI params real front ends send and keeps them as golden fixtures in
// gateway/testdata/frontends/, each paired with the SCRIPT_NAME and PATH_INFO the app must see
// (gateway/fixtures_test.go checks the gateway's rule against every fixture, without servers).
// A capture that no longer matches its fixture fails; UPDATE_GOLDEN=1 rewrites them.

package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// goldenDir holds the fixtures, relative to the repository root.
const goldenDir = "gateway/testdata/frontends"

// capturedParams are the params a fixture keeps: those that say where the request path is.
// Addresses, ports and versions vary from host to host and are left out.
var capturedParams = []string{"SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "DOCUMENT_URI", "SCRIPT_FILENAME", "QUERY_STRING", "PATH_TRANSLATED"}

// fixture is one captured request (the JSON layout of the files in goldenDir). Values are the
// params' bytes read as latin-1, so any byte survives the JSON.
type fixture struct {
	Frontend string            `json:"frontend"`
	Config   string            `json:"config"`
	Request  string            `json:"request"`
	Params   map[string]string `json:"params"`
	Expect   []expectation     `json:"expect"`
}

type expectation struct {
	Mount      string `json:"mount"`
	ScriptName string `json:"SCRIPT_NAME"`
	PathInfo   string `json:"PATH_INFO"`
}

// recorder is a FastCGI responder that keeps the params of the last request.
type recorder struct {
	mu   sync.Mutex
	last map[string]string
}

func (rc *recorder) ServeFCGI(w *fcgi.ResponseWriter, r *fcgi.Request) {
	got := make(map[string]string)
	for i := 0; i < r.Params.Len(); i++ {
		name, value := r.Params.At(i)
		got[string(name)] = latin1(value)
	}
	rc.mu.Lock()
	rc.last = got
	rc.mu.Unlock()
	fmt.Fprint(w, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nrecorded\n")
}

func (rc *recorder) take() map[string]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	m := rc.last
	rc.last = nil
	return m
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// startRecorder serves a recorder on a unix socket and returns it with nginx's upstream address.
func startRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "rec.sock")
	ln, err := fcgi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	rc := &recorder{}
	srv := &fcgi.Server{Handler: rc}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rc, "unix:" + sock
}

// frontendCase is one front-end configuration and the requests captured through it, with the
// split the app must see for each mount.
type frontendCase struct {
	slug, frontend, config string
	requests               []requestCase
}

type requestCase struct {
	slug, uri string
	expect    []expectation
}

func TestFrontendFixturesNginx(t *testing.T) {
	needNginx(t)
	const upstreamMark = "UPSTREAM"
	cases := []frontendCase{
		{
			slug:     "nginx-stock",
			frontend: "nginx, Debian's stock fastcgi_params",
			config:   "location / {\n    include fastcgi_params;\n    fastcgi_pass UPSTREAM;\n}",
			requests: []requestCase{
				{"app-path", "/app/foo/bar?x=1", []expectation{{"", "", "/app/foo/bar"}, {"/app", "/app", "/foo/bar"}}},
				{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20", []expectation{{"", "", "/app/caf\u00c3\u00a9/a/b"}, {"/app", "/app", "/caf\u00c3\u00a9/a/b"}}},
				{"mount-root", "/app", []expectation{{"", "", "/app"}, {"/app", "/app", ""}}},
				{"double-slash", "//app//foo", []expectation{{"", "", "/app/foo"}, {"/app", "/app", "/foo"}}},
			},
		},
		{
			slug:     "nginx-split",
			frontend: "nginx, fastcgi_split_path_info",
			config: "location /app/ {\n    fastcgi_split_path_info ^(/app)(/.*)$;\n    include fastcgi_params;\n" +
				"    fastcgi_param PATH_INFO $fastcgi_path_info;\n    fastcgi_pass UPSTREAM;\n}",
			requests: []requestCase{
				{"app-path", "/app/foo/bar?x=1", []expectation{{"", "/app", "/foo/bar"}, {"/app", "/app", "/foo/bar"}}},
				{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20", []expectation{{"", "/app", "/caf\u00c3\u00a9/a/b"}, {"/app", "/app", "/caf\u00c3\u00a9/a/b"}}},
			},
		},
	}
	rc, upstream := startRecorder(t)
	for _, fc := range cases {
		t.Run(fc.slug, func(t *testing.T) {
			n := startNginxSite(t, strings.ReplaceAll(fc.config, upstreamMark, upstream))
			captureFixtures(t, fc, n.base, rc.take, nil)
		})
	}
}

// captureFixtures sends each of fc's requests to base and checks the params the recorder got
// (take returns them) against their fixture. Host-dependent paths in the values are replaced
// by placeholders (replace holds old, new pairs) so that a fixture is the same on any machine.
func captureFixtures(t *testing.T, fc frontendCase, base string, take func() map[string]string, replace []string) {
	t.Helper()
	for _, rq := range fc.requests {
		r := httpDo(t, "GET", base+rq.uri, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", rq.uri, r.status, r.body)
		}
		got := fixture{Frontend: fc.frontend, Config: fc.config, Request: "GET " + rq.uri, Params: map[string]string{}, Expect: rq.expect}
		all := take()
		if all == nil {
			t.Fatalf("GET %s: the recorder got no request", rq.uri)
		}
		for _, name := range capturedParams {
			if v, ok := all[name]; ok {
				got.Params[name] = strings.NewReplacer(replace...).Replace(v)
			}
		}
		checkGolden(t, filepath.Join(repoRoot(), goldenDir, fc.slug+"--"+rq.slug+".json"), got)
	}
}

// checkGolden compares a capture with its fixture file, or writes it when updating.
func checkGolden(t *testing.T, path string, got fixture) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to capture it)", err)
	}
	if string(want) != string(b) {
		t.Errorf("%s: the front end now sends something else (UPDATE_GOLDEN=1 rewrites it)\ngot:\n%s\nwant:\n%s", filepath.Base(path), b, want)
	}
}

// startNginxSite starts nginx with one server block holding site (locations), listening on a
// free loopback port.
func startNginxSite(t *testing.T, site string) *nginx {
	t.Helper()
	port := freePort(t, "tcp4", "127.0.0.1")
	return startNginxConf(t, fmt.Sprintf("server {\n    listen 127.0.0.1:%d;\n%s\n}\n", port, indent(site)), port)
}

// startNginxConf starts nginx with conf (what goes inside http {}: upstreams and servers),
// which listens on port.
func startNginxConf(t *testing.T, conf string, port int) *nginx {
	t.Helper()
	bin := needNginx(t)
	params, err := os.ReadFile("/etc/nginx/fastcgi_params")
	if err != nil {
		missingTool(t, "read nginx's fastcgi_params: %v", err)
	}
	dir := shortTempDir(t)
	files := map[string]string{
		"nginx.conf":     mainConfig(dir),
		"wsgi-fcgi.conf": conf,
		"fastcgi_params": string(params),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	n := &nginx{dir: dir, port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	n.process = startProcess(t, "nginx", cmd)
	if err := waitDial(n.process, "tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), startTimeout); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("start nginx: %v\n%s", err, b)
	}
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	n.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(tr.CloseIdleConnections)
	return n
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
