//go:build integration

// Golden fixtures from Apache (mod_proxy_fcgi in its ProxyPass and SetHandler forms, with and
// without proxy-fcgi-pathinfo; mod_fcgid with the .htaccess rewrite to app.fcgi) and Caddy
// (with and without split_path, and under handle_path), captured the way
// TestFrontendFixturesNginx captures nginx's: a recorder FastCGI server keeps the params of
// each request. mod_fcgid spawns its FastCGI server itself, so there the recorder is this test
// binary, run again by app.fcgi (recorderHelperEnv) with the socket on fd 0.

package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgi-fcgi/wsgi-fcgi/fcgi"
)

// recorderHelperEnv, when set, makes the test binary a recorder serving the FastCGI socket on
// fd 0 (as mod_fcgid starts it) that writes each request's params as JSON to the file named.
const recorderHelperEnv = "WSGI_FCGI_TEST_RECORDER_OUT"

func init() {
	out := os.Getenv(recorderHelperEnv)
	if out == "" {
		return
	}
	ln, err := net.FileListener(os.NewFile(0, "fcgi-listen"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "recorder: fd 0 is not a listening socket: %v\n", err)
		os.Exit(2)
	}
	srv := &fcgi.Server{Handler: fcgi.HandlerFunc(func(w *fcgi.ResponseWriter, r *fcgi.Request) {
		got := make(map[string]string)
		for i := 0; i < r.Params.Len(); i++ {
			name, value := r.Params.At(i)
			got[string(name)] = latin1(value)
		}
		b, _ := json.Marshal(got)
		tmp := out + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err == nil {
			os.Rename(tmp, out)
		}
		fmt.Fprint(w, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nrecorded\n")
	})}
	srv.Serve(ln)
	os.Exit(0)
}

// Requests for a front end that puts the app at the root, and for one that mounts it at /app
// (whose mount root is "/app/": Apache and Caddy do not map "/app" to it).
var (
	rootRequests = []requestCase{
		{"app-path", "/app/foo/bar?x=1", []expectation{{"", "", "/app/foo/bar"}, {"/app", "/app", "/foo/bar"}}},
		{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20", []expectation{{"", "", "/app/caf\u00c3\u00a9/a/b"}, {"/app", "/app", "/caf\u00c3\u00a9/a/b"}}},
		{"mount-root", "/app", []expectation{{"", "", "/app"}, {"/app", "/app", ""}}},
	}
	prefixRequests = []requestCase{
		{"app-path", "/app/foo/bar?x=1", []expectation{{"", "/app", "/foo/bar"}, {"/app", "/app", "/foo/bar"}}},
		{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20", []expectation{{"", "/app", "/caf\u00c3\u00a9/a/b"}, {"/app", "/app", "/caf\u00c3\u00a9/a/b"}}},
		{"mount-root", "/app/", []expectation{{"", "/app", "/"}, {"/app", "/app", "/"}}},
	}
	// Apache's SetHandler in <Location /app/> sends what it sends for <Location />: nothing
	// says where the app is mounted, so without --mount it is at the root.
	setHandlerAppRequests = []requestCase{
		rootRequests[0],
		rootRequests[1],
		{"mount-root", "/app/", []expectation{{"", "", "/app/"}, {"/app", "/app", "/"}}},
	}
)

func TestFrontendFixturesApache(t *testing.T) {
	needApache(t)
	// SOCK is the recorder's socket. AllowEncodedSlashes: Apache answers 404 itself to a
	// path with %2F unless it is allowed (see docs/frontends.md, "Apache mod_proxy_fcgi").
	// DOCROOT is an empty directory: with SetHandler, Apache splits SCRIPT_NAME from PATH_INFO
	// where the path stops existing on disk.
	const vhost = "<VirtualHost 127.0.0.1:PORT>\n    DocumentRoot DOCROOT\n    AllowEncodedSlashes SLASHES\n%s\n</VirtualHost>\n"
	cases := []frontendCase{
		{slug: "apache-proxypass-root", frontend: "Apache mod_proxy_fcgi, ProxyPass /",
			config: `    ProxyPass "/" "unix:SOCK|fcgi://localhost/"`, requests: rootRequests},
		{slug: "apache-proxypass-app", frontend: "Apache mod_proxy_fcgi, ProxyPass /app/",
			config: `    ProxyPass "/app/" "unix:SOCK|fcgi://localhost/"`, requests: prefixRequests},
		{slug: "apache-sethandler-root", frontend: "Apache mod_proxy_fcgi, SetHandler in <Location />",
			config: "    <Location \"/\">\n        SetHandler \"proxy:unix:SOCK|fcgi://localhost/\"\n    </Location>", requests: rootRequests},
		{slug: "apache-sethandler-app", frontend: "Apache mod_proxy_fcgi, SetHandler in <Location /app/>",
			config: "    <Location \"/app/\">\n        SetHandler \"proxy:unix:SOCK|fcgi://localhost/\"\n    </Location>", requests: setHandlerAppRequests},
	}
	// proxy-fcgi-pathinfo is read when mod_proxy_fcgi maps the URL: for ProxyPass that is
	// before SetEnv (a fixup) runs, so it only works from SetEnvIf; with SetHandler it is read
	// in the handler and SetEnv works too. first-dot and last-dot only act on a path with a dot.
	variants := []struct{ slug, directive string }{
		{"setenv-pathinfo-1", "SetEnv proxy-fcgi-pathinfo 1"},
		{"pathinfo-1", "SetEnvIf Request_URI . proxy-fcgi-pathinfo=1"},
		{"pathinfo-unescape", "SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape"},
		{"pathinfo-full", "SetEnvIf Request_URI . proxy-fcgi-pathinfo=full"},
	}
	for _, v := range variants {
		for _, c := range cases[:4] {
			c.slug += "-" + v.slug
			c.frontend += ", " + v.directive
			c.config = "    " + v.directive + "\n" + c.config
			cases = append(cases, c)
		}
	}
	// AllowEncodedSlashes NoDecode: %2F reaches the app as "%2F" (On decodes it to "/").
	for _, c := range cases[:2] {
		c.slug += "-nodecode"
		c.frontend += ", AllowEncodedSlashes NoDecode"
		c.requests = nil
		cases = append(cases, c)
	}
	cases[len(cases)-2].requests = []requestCase{{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20",
		[]expectation{{"", "", "/app/caf\u00c3\u00a9/a%2Fb"}, {"/app", "/app", "/caf\u00c3\u00a9/a%2Fb"}}}}
	cases[len(cases)-1].requests = []requestCase{{"non-ascii-and-slash", "/app/caf%C3%A9/a%2Fb?q=%20",
		[]expectation{{"", "/app", "/caf\u00c3\u00a9/a%2Fb"}, {"/app", "/app", "/caf\u00c3\u00a9/a%2Fb"}}}}
	rc, upstream := startRecorder(t)
	sock := strings.TrimPrefix(upstream, "unix:")
	os.Chmod(filepath.Dir(sock), 0o755) // Apache's children run as www-data
	for _, fc := range cases {
		t.Run(fc.slug, func(t *testing.T) {
			slashes := "On"
			if strings.HasSuffix(fc.slug, "-nodecode") {
				slashes = "NoDecode"
			}
			docroot := shortTempDir(t)
			os.Chmod(docroot, 0o755)
			a := startApache(t, []string{"proxy", "proxy_fcgi", "env", "setenvif"}, func(port int) string {
				site := fmt.Sprintf(vhost, strings.ReplaceAll(fc.config, "SOCK", sock))
				return strings.NewReplacer("PORT", fmt.Sprint(port), "DOCROOT", docroot, "SLASHES", slashes).Replace(site)
			})
			fc.config = strings.ReplaceAll(fmt.Sprintf(vhost, fc.config), "SLASHES", slashes)
			captureFixtures(t, fc, a.base, rc.take, []string{docroot, "/DOCROOT"})
		})
	}
}

func TestFrontendFixturesFcgid(t *testing.T) {
	needApache(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, fc := range []frontendCase{
		{slug: "fcgid-rewrite-root", frontend: "Apache mod_fcgid, .htaccess rewrite to app.fcgi/$1 in the document root",
			config: "deploy/shared-hosting/.htaccess in the document root", requests: rootRequests},
		{slug: "fcgid-rewrite-app", frontend: "Apache mod_fcgid, .htaccess rewrite to app.fcgi/$1 in the directory app/",
			config: "deploy/shared-hosting/.htaccess in the document root's app/", requests: prefixRequests},
	} {
		t.Run(fc.slug, func(t *testing.T) {
			home := shortTempDir(t)
			os.Chmod(home, 0o777)
			docroot := filepath.Join(home, "public_html")
			site := docroot
			if strings.HasSuffix(fc.slug, "-app") {
				site = filepath.Join(docroot, "app")
			}
			if err := os.MkdirAll(site, 0o755); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(home, "recorder")
			copyFile(t, self, bin, 0o755)
			out := filepath.Join(home, "params.json")
			wrapper := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s\n", recorderHelperEnv, out, bin)
			if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, filepath.Join(repoRoot(), "deploy", "shared-hosting", ".htaccess"), filepath.Join(site, ".htaccess"), 0o644)
			a := startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
				return deployFile(t, "shared-hosting/apache-host.conf",
					"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n    AllowEncodedSlashes On", port),
					"/home/user/public_html", docroot,
					"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
					"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
			})
			take := func() map[string]string {
				b, err := os.ReadFile(out)
				if err != nil {
					return nil
				}
				os.Remove(out)
				var m map[string]string
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatalf("recorder's params: %v", err)
				}
				return m
			}
			captureFixtures(t, fc, a.base, take, []string{home, "/home/user"})
		})
	}
}

func TestFrontendFixturesCaddy(t *testing.T) {
	rc, upstream := startRecorder(t)
	sock := strings.TrimPrefix(upstream, "unix:")
	for _, fc := range []frontendCase{
		{slug: "caddy-plain", frontend: "Caddy reverse_proxy, transport fastcgi",
			config: "reverse_proxy unix/SOCK {\n\ttransport fastcgi\n}", requests: rootRequests},
		{slug: "caddy-split", frontend: "Caddy reverse_proxy, transport fastcgi with split /app (split_path)",
			config: "reverse_proxy unix/SOCK {\n\ttransport fastcgi {\n\t\tsplit /app\n\t}\n}", requests: prefixRequests},
		{slug: "caddy-handle-path", frontend: "Caddy handle_path /app/*, transport fastcgi",
			config: "handle_path /app/* {\n\treverse_proxy unix/SOCK {\n\t\ttransport fastcgi\n\t}\n}", requests: prefixRequests},
	} {
		t.Run(fc.slug, func(t *testing.T) {
			base := startCaddy(t, strings.ReplaceAll(fc.config, "SOCK", sock))
			captureFixtures(t, fc, base, rc.take, []string{filepath.Join(repoRoot(), "tests"), "/CADDY_WORKING_DIR"})
		})
	}
}

// startCaddy runs caddy with one site on a free loopback port holding directives, and
// returns its base URL.
func startCaddy(t *testing.T, directives string) string {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		missingTool(t, "caddy not found (Debian package caddy)")
	}
	dir := shortTempDir(t)
	port := freePort(t, "tcp4", "127.0.0.1")
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\nhttp://127.0.0.1:%d {\n\t%s\n}\n",
		filepath.Join(dir, "data"), port, strings.ReplaceAll(directives, "\n", "\n\t"))
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(gatewayEnv(nil), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	p := startProcess(t, "caddy", cmd)
	if err := waitDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		t.Fatalf("start caddy: %v\n%s", err, p.stderr.String())
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}
