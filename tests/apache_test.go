//go:build integration

// Apache httpd in front of wsgi-fcgi, three ways: mod_proxy_fcgi to the gateway's unix socket
// and to its TCP port with enablereuse=on (deploy/apache/wsgi-fcgi.conf), mod_authnz_fcgi
// asking the gateway as a FastCGI authorizer (deploy/apache/authorizer.conf), and mod_fcgid
// spawning the gateway from an .htaccess and an app.fcgi wrapper as a shared host does
// (deploy/shared-hosting/). Each test runs its own apache2 -DFOREGROUND from a config in a
// temp dir, on a free loopback port.

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const apacheModules = "/usr/lib/apache2/modules"

// needApache returns the apache2 binary, or skips (or fails) the test.
func needApache(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"apache2", "/usr/sbin/apache2"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	missingTool(t, "apache2 not found (Debian package apache2)")
	return ""
}

// deployFile reads a file under deploy/ and applies replacements (every occurrence), each of
// which must match: the file and the test change together.
func deployFile(t *testing.T, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("deploy/%s must contain %q: the tests replace it", name, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

// apache is a running apache2.
type apache struct {
	*process
	dir  string
	base string // http://127.0.0.1:PORT
}

// startApache runs apache2 in the foreground with the given modules and site config (a file
// in dir), listening on a free loopback port that the site's VirtualHost must name as
// "127.0.0.1:PORT" (PORT is replaced). As root, Apache's children run as www-data, so dir is
// made readable to them.
func startApache(t *testing.T, modules []string, site func(port int) string) *apache {
	t.Helper()
	bin := needApache(t)
	dir := shortTempDir(t)
	os.Chmod(dir, 0o755)
	port := freePort(t, "tcp4", "127.0.0.1")
	user := ""
	if os.Geteuid() == 0 {
		user = "User www-data\nGroup www-data\n"
	}
	var load strings.Builder
	for _, m := range append([]string{"mpm_event", "authz_core", "mime", "dir"}, modules...) {
		fmt.Fprintf(&load, "LoadModule %s_module %s/mod_%s.so\n", m, apacheModules, m)
	}
	conf := fmt.Sprintf(`ServerRoot %[1]s
DefaultRuntimeDir %[1]s
PidFile %[1]s/httpd.pid
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
LogLevel warn
%[3]s%[4]sServerName localhost
Listen 127.0.0.1:%[2]d
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
Include %[1]s/site.conf
`, dir, port, user, load.String())
	for name, content := range map[string]string{"httpd.conf": conf, "site.conf": site(port)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-f", filepath.Join(dir, "httpd.conf"), "-DFOREGROUND")
	a := &apache{dir: dir, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	a.process = startProcess(t, "apache2", cmd)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("apache error.log:\n%s", b)
		}
	})
	if err := waitDial(a.process, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("start apache2: %v\nerror.log:\n%s", err, b)
	}
	return a
}

// httpDo sends one request to a front end and reads the whole response.
func httpDo(t *testing.T, method, url string, header http.Header, body io.Reader) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// envOf GETs url (an /env of tests/apps/frontapp.py) and decodes the environ it reports.
func envOf(t *testing.T, url string, header http.Header) map[string]any {
	t.Helper()
	r := httpDo(t, "GET", url, header, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: status %d: %s", url, r.status, r.body)
	}
	var env map[string]any
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, r.body)
	}
	return env
}

// checkFrontEnd is what every front end must do: the app sees the path at the root mount,
// bodies arrive whole, large responses leave whole, and concurrent requests all succeed.
func checkFrontEnd(t *testing.T, base string) {
	t.Helper()
	env := envOf(t, base+"/env?x=1", nil)
	if env["SCRIPT_NAME"] != "" || env["PATH_INFO"] != "/env" || env["QUERY_STRING"] != "x=1" || env["FCGI_ROLE"] != "RESPONDER" {
		t.Errorf("environ %v: want SCRIPT_NAME \"\", PATH_INFO /env, QUERY_STRING x=1, FCGI_ROLE RESPONDER", env)
	}
	body := bytes.Repeat([]byte("p"), 300<<10)
	r := httpDo(t, "POST", base+"/env", nil, bytes.NewReader(body))
	if !bytes.Contains(r.body, []byte(fmt.Sprintf(`"body_length": %d`, len(body)))) {
		t.Errorf("POST of %d bytes: %d %s", len(body), r.status, r.body)
	}
	if r := httpDo(t, "GET", base+"/big?n=2000000", nil, nil); r.status != 200 || len(r.body) != 2000000 {
		t.Errorf("GET /big: status %d, %d bytes, want 2000000", r.status, len(r.body))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httpDo(t, "GET", fmt.Sprintf("%s/env?n=%d", base, i), nil, nil)
			if r.status != 200 || !bytes.Contains(r.body, []byte(fmt.Sprintf(`"n=%d"`, i))) {
				errs <- fmt.Sprintf("request %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// fdCount counts a process's open descriptors, from /proc: FastCGI connections cannot be told
// apart cheaply from its listeners and its workers' channels, so the tests compare counts.
func fdCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func TestApacheProxyFcgi(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen func(t *testing.T) string // the gateway's --listen
		target func(listen string) string
	}{
		{
			name:   "unix socket",
			listen: func(t *testing.T) string { return "unix:" + filepath.Join(shortTempDir(t), "gw.sock") },
			target: func(listen string) string {
				return "unix:" + strings.TrimPrefix(listen, "unix:") + "|fcgi://localhost/"
			},
		},
		{
			name:   "tcp",
			listen: func(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1")) },
			target: func(listen string) string { return "fcgi://" + listen + "/" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen(t)
			// --drain-timeout: the /slow response below never ends by itself.
			args := []string{"--drain-timeout", "2s"}
			if strings.HasPrefix(listen, "unix:") {
				// Apache's children (www-data when root) must reach the socket.
				os.Chmod(filepath.Dir(strings.TrimPrefix(listen, "unix:")), 0o755)
				args = append(args, "--socket-group", "www-data", "--socket-mode", "0660")
			}
			g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 2, listen: listen, args: args})
			baseline := fdCount(g.pid())
			a := startApache(t, []string{"proxy", "proxy_fcgi", "alias"}, func(port int) string {
				return deployFile(t, "apache/wsgi-fcgi.conf",
					"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
					"unix:/run/wsgi-fcgi/wsgi-fcgi.sock|fcgi://localhost/", tc.target(listen))
			})
			checkFrontEnd(t, a.base)
			// enablereuse=on: Apache keeps its FastCGI connections open after the requests
			// (FCGI_KEEP_CONN honoured, not closed by the gateway), and reuses them: what the
			// gateway holds is bounded by Apache's threads (32), not by the requests (80).
			for range 30 {
				envOf(t, a.base+"/env", nil)
			}
			time.Sleep(100 * time.Millisecond)
			if after := fdCount(g.pid()); after <= baseline || after > baseline+32 {
				t.Errorf("gateway holds %d descriptors after 80 requests, %d before any: want more (kept-alive connections), at most 32 more", after, baseline)
			}
			if warned := warningLines(g.stderr.String()); len(warned) > 0 {
				t.Errorf("gateway warned:\n%s", strings.Join(warned, "\n"))
			}
			// flushpackets=on: a response that never ends streams; its first bytes arrive.
			checkStreams(t, a.base+"/slow")
		})
	}
}

func TestApacheAuthorizer(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "gw.sock")
	os.Chmod(filepath.Dir(sock), 0o755)
	authPort := freePort(t, "tcp4", "127.0.0.1")
	// One gateway, two listeners: the responder on the unix socket, the authorizer on TCP
	// (mod_authnz_fcgi speaks TCP only).
	g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 2, listen: "unix:" + sock,
		args: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", authPort), "--socket-group", "www-data"}})
	a := startApache(t, []string{"proxy", "proxy_fcgi", "alias", "authnz_fcgi", "authn_core", "authz_user"}, func(port int) string {
		site := deployFile(t, "apache/wsgi-fcgi.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"unix:/run/wsgi-fcgi/wsgi-fcgi.sock|fcgi://localhost/", "unix:"+sock+"|fcgi://localhost/")
		auth := deployFile(t, "apache/authorizer.conf", "fcgi://127.0.0.1:9001/", fmt.Sprintf("fcgi://127.0.0.1:%d/", authPort))
		return auth + "\n" + site
	})
	// Outside /private/ no authorizer is asked.
	if env := envOf(t, a.base+"/env", nil); env["REMOTE_USER"] != nil {
		t.Errorf("public request has REMOTE_USER %v", env["REMOTE_USER"])
	}
	// Refused: the authorizer's own status and body are the answer.
	r := httpDo(t, "GET", a.base+"/private/env", nil, nil)
	if r.status != 403 {
		t.Errorf("without the token: status %d, want the authorizer's 403; body %q", r.status, r.body)
	}
	// Let through: the responder runs, and the authorizer's Variable-REMOTE_USER made the user.
	env := envOf(t, a.base+"/private/env", http.Header{"X-Token": {"letmein"}})
	if env["REMOTE_USER"] != "alice" || env["FCGI_ROLE"] != "RESPONDER" {
		t.Errorf("authorized request: REMOTE_USER %v FCGI_ROLE %v, want alice, RESPONDER", env["REMOTE_USER"], env["FCGI_ROLE"])
	}
	_ = g
}

func TestApacheFcgidSharedHosting(t *testing.T) {
	needPythonFlask(t)
	// The shared host's layout: a site directory with the wrapper, the app and the binary the
	// user uploaded, readable by the web server's user; no daemon of the user's running.
	home := shortTempDir(t)
	os.Chmod(home, 0o755)
	site := filepath.Join(home, "public_html")
	bindir := filepath.Join(home, "bin")
	appdir := filepath.Join(home, "app")
	for _, d := range []string{site, bindir, appdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, gatewayBin, filepath.Join(bindir, "wsgi-fcgi"), 0o755)
	copyFile(t, filepath.Join(repoRoot(), "tests", "apps", "frontapp.py"), filepath.Join(appdir, "frontapp.py"), 0o644)
	wrapper := deployFile(t, "shared-hosting/app.fcgi",
		"/home/user/bin/wsgi-fcgi", filepath.Join(bindir, "wsgi-fcgi"),
		"--chdir /home/user/app", "--chdir "+appdir,
		"--app myapp.wsgi:application", "--app frontapp:application")
	if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(repoRoot(), "deploy", "shared-hosting", ".htaccess"), filepath.Join(site, ".htaccess"), 0o644)

	a := startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
		return deployFile(t, "shared-hosting/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"/home/user/public_html", site,
			"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
			"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
	})
	checkFrontEnd(t, a.base)
	// The gateway was started by mod_fcgid, with the socket on fd 0: it runs as a descendant
	// of Apache, and Apache's error log has its "listening" line naming fd 0.
	log, _ := os.ReadFile(filepath.Join(a.dir, "error.log"))
	if !bytes.Contains(log, []byte("(fd 0)")) {
		t.Errorf("no gateway serving fd 0 in Apache's error log:\n%s", log)
	}
	// Its processes go with Apache (checked by startProcess's cleanup: no descendant left).
	time.Sleep(10 * time.Millisecond)
}

// checkStreams reads the first bytes of a response that never ends, then hangs up.
func checkStreams(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
		t.Errorf("GET %s: first 4 KiB of a streamed response: %v", url, err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// warningLines are the [WARN] and [ERROR] lines of a gateway's log, but the warning that it
// runs as root (the tests do, not a web server's setup).
func warningLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if (strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]")) && !strings.Contains(l, "run as root") {
			out = append(out, l)
		}
	}
	return out
}
