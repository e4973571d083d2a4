//go:build integration

// The gateway run as a CGI program by Apache (deploy/shared-hosting/cgi/): mod_cgid and
// mod_cgi start the same app.fcgi as mod_fcgid does, once per request, and the gateway serves
// that one request. Flask and Django at / and /app, bodies, streaming, the limits, an app that
// cannot be imported, the same app.fcgi moved under mod_fcgid unchanged, and suexec; and the
// gateway run as CGI by hand (its output, exit status, and one interpreter start).

package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cgiHost is a shared host's files: the user's binary and app, and the site directory (the
// document root, or its subdirectory for an app under a prefix) with app.fcgi and .htaccess.
type cgiHost struct {
	home, docroot, site, bindir, appdir string
}

// newCGIHost lays out a host under dir for the app in tests/apps/appFile, mounted at prefix,
// with deploy/shared-hosting/app.fcgi as it is (paths and --app replaced) and htaccess.
func newCGIHost(t *testing.T, dir, prefix, appFile, app, htaccess string) cgiHost {
	t.Helper()
	h := cgiHost{home: dir, docroot: filepath.Join(dir, "public_html")}
	h.site = filepath.Join(h.docroot, strings.TrimPrefix(prefix, "/"))
	h.bindir, h.appdir = filepath.Join(dir, "bin"), filepath.Join(dir, "app")
	for _, d := range []string{h.site, h.bindir, h.appdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, gatewayBin, filepath.Join(h.bindir, "wsgi-fcgi"), 0o755)
	copyFile(t, filepath.Join(repoRoot(), "tests", "apps", appFile), filepath.Join(h.appdir, appFile), 0o644)
	h.addSite(t, prefix, app, htaccess)
	return h
}

// addSite puts app.fcgi for app and htaccess in the directory for prefix.
func (h cgiHost) addSite(t *testing.T, prefix, app, htaccess string) {
	t.Helper()
	site := filepath.Join(h.docroot, strings.TrimPrefix(prefix, "/"))
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := deployFile(t, "shared-hosting/app.fcgi",
		"/home/user/bin/wsgi-fcgi", filepath.Join(h.bindir, "wsgi-fcgi"),
		"--chdir /home/user/app", "--chdir "+h.appdir,
		"--app myapp.wsgi:application", "--app "+app)
	if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, ".htaccess"), []byte(htaccess), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startCGIApache runs Apache with the provider's CGI configuration
// (deploy/shared-hosting/cgi/apache-host.conf) over the host's document root, with module
// ("cgi" or "cgid") and the others named.
func startCGIApache(t *testing.T, h cgiHost, module string, more ...string) *apache {
	t.Helper()
	return startApache(t, append([]string{module, "rewrite", "alias", "env"}, more...), func(port int) string {
		conf := deployFile(t, "shared-hosting/cgi/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n    AllowEncodedSlashes On", port),
			"/home/user/public_html", h.docroot)
		if module == "cgid" {
			conf = fmt.Sprintf("ScriptSock %s\n", filepath.Join(h.home, "cgid.sock")) + conf
		}
		return conf
	})
}

// cgiModules are the two ways Apache runs CGI programs: mod_cgi forks from the server process
// (the prefork MPM's choice), mod_cgid from a daemon of its own (threaded MPMs).
var cgiModules = []string{"cgi", "cgid"}

func TestCGIMountedApps(t *testing.T) {
	needApache(t)
	needDjango(t)
	for _, module := range cgiModules {
		for _, prefix := range []string{"", "/app"} {
			for _, a := range mountedApps {
				t.Run(fmt.Sprintf("mod_%s/%s/%s", module, mountName(prefix), a.name), func(t *testing.T) {
					home := shortTempDir(t)
					os.Chmod(home, 0o755)
					h := newCGIHost(t, home, prefix, a.file, a.app, deployFile(t, "shared-hosting/cgi/.htaccess"))
					base := startCGIApache(t, h, module).base
					checkMounted(t, base, prefix, a.wantPath, false)
					checkFormPost(t, base+prefix+"/echo")
				})
			}
		}
	}
}

// checkFormPost posts a 200 KiB form to url (the mounted apps' /echo) and checks the app
// parsed all of it.
func checkFormPost(t *testing.T, url string) {
	t.Helper()
	value := strings.Repeat("x", 200<<10)
	body := "a=" + value + "&b=2"
	r := httpDo(t, "POST", url, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(body))
	var got struct{ A_length, Content_length int }
	if r.status != 200 {
		t.Fatalf("POST %s: status %d: %s", url, r.status, r.body)
	}
	decode(t, r.body, &got)
	if got.A_length != len(value) || got.Content_length != len(body) {
		t.Errorf("POST %s: the app parsed a field of %d bytes from a body of %d, want %d and %d", url, got.A_length, got.Content_length, len(value), len(body))
	}
}

// cgiEnv GETs or POSTs url (cgiapp's /env) and decodes the environ it reports.
func cgiEnv(t *testing.T, method, url string, header http.Header, body []byte) map[string]any {
	t.Helper()
	r := httpDo(t, method, url, header, bytes.NewReader(body))
	if r.status != 200 {
		t.Fatalf("%s %s: status %d: %s", method, url, r.status, r.body)
	}
	var env map[string]any
	decode(t, r.body, &env)
	return env
}

// cgiAppHost is cgiapp.py at the document root, with the settings in .htaccess (SetEnv
// WSGI_FCGI_*, as a user without access to app.fcgi's command line can give them), and
// brokenapp.py, which cannot be imported, at /broken.
func cgiAppHost(t *testing.T) cgiHost {
	t.Helper()
	home := shortTempDir(t)
	os.Chmod(home, 0o755)
	htaccess := deployFile(t, "shared-hosting/cgi/.htaccess")
	h := newCGIHost(t, home, "", "cgiapp.py", "cgiapp:application",
		htaccess+"SetEnv WSGI_FCGI_MAX_BODY 1MiB\nSetEnv WSGI_FCGI_TIMEOUT 3s\n")
	copyFile(t, filepath.Join(repoRoot(), "tests", "apps", "brokenapp.py"), filepath.Join(h.appdir, "brokenapp.py"), 0o644)
	h.addSite(t, "/broken", "brokenapp:application", htaccess)
	return h
}

func TestCGIApache(t *testing.T) {
	needApache(t)
	for _, module := range cgiModules {
		t.Run("mod_"+module, func(t *testing.T) {
			h := cgiAppHost(t)
			a := startCGIApache(t, h, module)
			errorLog := filepath.Join(a.dir, "error.log")

			env := cgiEnv(t, "GET", a.base+"/env?x=1", nil, nil)
			for key, want := range map[string]any{
				"SCRIPT_NAME": "", "PATH_INFO": "/env", "QUERY_STRING": "x=1", "GATEWAY_INTERFACE": "CGI/1.1",
				"FCGI_ROLE": "RESPONDER", "wsgi.run_once": true, "wsgi.multiprocess": true, "wsgi.multithread": false,
			} {
				if env[key] != want {
					t.Errorf("environ[%q] = %#v, want %#v", key, env[key], want)
				}
			}
			for key := range env {
				if strings.HasPrefix(key, "WSGI_FCGI_") || key == "PWD" {
					t.Errorf("environ has %s: the gateway's settings and the shell's variables are not the request's", key)
				}
			}
			if vars := env["os_environ_request_vars"].([]any); len(vars) != 0 {
				t.Errorf("the worker's os.environ has the request's variables %v", vars)
			}
			if log, _ := os.ReadFile(errorLog); bytes.Contains(log, []byte("wsgi-fcgi")) {
				t.Errorf("a request served without trouble left lines in the error log:\n%s", log)
			}

			body := bytes.Repeat([]byte("p"), 300<<10)
			if env := cgiEnv(t, "POST", a.base+"/env", nil, body); env["body_length"] != float64(len(body)) || env["CONTENT_LENGTH"] != fmt.Sprint(len(body)) {
				t.Errorf("POST of %d bytes: the app read %v, CONTENT_LENGTH %v", len(body), env["body_length"], env["CONTENT_LENGTH"])
			}
			// The settings from .htaccess: --max-body 1MiB, --timeout 3s.
			if r := httpDo(t, "POST", a.base+"/env", nil, bytes.NewReader(make([]byte, 2<<20))); r.status != 413 {
				t.Errorf("POST of 2 MiB over WSGI_FCGI_MAX_BODY: status %d, want 413: %s", r.status, r.body)
			}
			start := time.Now()
			if r := httpDo(t, "GET", a.base+"/sleep?s=60", nil, nil); r.status != 504 || time.Since(start) > 20*time.Second {
				t.Errorf("GET /sleep past WSGI_FCGI_TIMEOUT: status %d after %v, want the gateway's 504", r.status, time.Since(start))
			}
			if r := httpDo(t, "GET", a.base+"/bad-header", nil, nil); r.status != 500 || r.header.Get("Injected") != "" {
				t.Errorf("GET /bad-header: status %d, headers %v, want the gateway's 500", r.status, r.header)
			}

			checkCGIStreams(t, a.base, h.home)

			before, _ := os.ReadFile(errorLog)
			r := httpDo(t, "GET", a.base+"/broken/env", nil, nil)
			if r.status != 500 {
				t.Errorf("GET /broken/env (an app that cannot be imported): status %d, want 500", r.status)
			}
			after, _ := os.ReadFile(errorLog)
			added := strings.Split(strings.TrimSpace(string(after[len(before):])), "\n")
			if len(added) != 1 || !strings.Contains(added[0], `wsgi-fcgi: cannot import "brokenapp:application" with `) || !strings.HasSuffix(added[0], `: RuntimeError: brokenapp-import-failure`) {
				t.Errorf("error log lines for the app that cannot be imported: %q, want its one line", added)
			}
		})
	}
}

// checkCGIStreams checks that a response streams through Apache: cgiapp's /gate yields its
// first chunk, then waits for the test to write to a named pipe before it yields the last, so
// the client can only read the first chunk before the response ends if it streamed.
func checkCGIStreams(t *testing.T, base, dir string) {
	t.Helper()
	fifo := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(fifo, 0o666) // the umask took some: the app runs as the web server's user
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/gate?fifo="+fifo, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET /gate: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	// The app opens the pipe after its first chunk, and goes on once the pipe is opened for
	// writing and closed. Opened whether or not the first chunk came, so that the app ends.
	werr := releaseFIFO(fifo, 10*time.Second)
	if err != nil || first != "first\n" {
		t.Fatalf("GET /gate: first chunk %q, %v: the response did not stream", first, err)
	}
	if werr != nil {
		t.Fatalf("GET /gate: %v", werr)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "last\n" {
		t.Errorf("GET /gate: then %q, %v, want %q", rest, err, "last\n")
	}
}

// TestCGIThenFcgid moves a site from plain CGI to mod_fcgid: only .htaccess changes, app.fcgi
// stays byte for byte, and the app sees the same environ for the same request, but for
// wsgi.run_once and what differs between the two Apache modules themselves.
func TestCGIThenFcgid(t *testing.T) {
	needApache(t)
	home := shortTempDir(t)
	os.Chmod(home, 0o755)
	h := newCGIHost(t, home, "/app", "cgiapp.py", "cgiapp:application", deployFile(t, "shared-hosting/cgi/.htaccess"))
	wrapper, _ := os.ReadFile(filepath.Join(h.site, "app.fcgi"))
	header := http.Header{"X-Test": {"caf\xc3\xa9"}, "Cookie": {"a=1"}}
	request := func(base string) map[string]any {
		return cgiEnv(t, "POST", base+"/app/env/x?q=1&r=%2F", header, []byte("body"))
	}
	a := startCGIApache(t, h, "cgid")
	cgi := request(a.base)
	a.stop(t)

	copyFile(t, filepath.Join(repoRoot(), "deploy", "shared-hosting", ".htaccess"), filepath.Join(h.site, ".htaccess"), 0o644)
	a = startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
		return deployFile(t, "shared-hosting/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n    AllowEncodedSlashes On", port),
			"/home/user/public_html", h.docroot,
			"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
			"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
	})
	fcgid := request(a.base)
	if now, _ := os.ReadFile(filepath.Join(h.site, "app.fcgi")); !bytes.Equal(now, wrapper) {
		t.Fatal("app.fcgi changed")
	}
	if log, _ := os.ReadFile(filepath.Join(a.dir, "error.log")); !bytes.Contains(log, []byte("(fd 0)")) {
		t.Errorf("the gateway did not serve mod_fcgid's socket on fd 0:\n%s", log)
	}

	if cgi["SCRIPT_NAME"] != "/app" || cgi["PATH_INFO"] != "/env/x" || cgi["HTTP_X_TEST"] != "caf\u00c3\u00a9" || cgi["body_length"] != 4.0 {
		t.Errorf("under mod_cgid: SCRIPT_NAME %v PATH_INFO %v HTTP_X_TEST %v body_length %v", cgi["SCRIPT_NAME"], cgi["PATH_INFO"], cgi["HTTP_X_TEST"], cgi["body_length"])
	}
	if cgi["wsgi.run_once"] != true || fcgid["wsgi.run_once"] != false {
		t.Errorf("wsgi.run_once %v under CGI, %v under mod_fcgid; want true, false", cgi["wsgi.run_once"], fcgid["wsgi.run_once"])
	}
	// What the two modules send differently: the port of each Apache and of each client
	// connection, mod_fcgid's signature in SERVER_SOFTWARE, and mod_fcgid's Connection header;
	// and each request's own id.
	differ := map[string]bool{"wsgi.run_once": true, "HTTP_HOST": true, "SERVER_PORT": true, "REMOTE_PORT": true,
		"SERVER_SOFTWARE": true, "HTTP_CONNECTION": true, "HTTP_X_REQUEST_ID": true, "wsgi_fcgi.request_id": true}
	for key, v := range cgi {
		if w, ok := fcgid[key]; !differ[key] && (!ok || fmt.Sprint(v) != fmt.Sprint(w)) {
			t.Errorf("environ[%q]: %#v under CGI, %#v under mod_fcgid", key, v, w)
		}
	}
	for key, w := range fcgid {
		if _, ok := cgi[key]; !ok && !differ[key] {
			t.Errorf("environ[%q]: %#v under mod_fcgid, absent under CGI", key, w)
		}
	}
}

// suexecDocRoot is the document root Debian's apache2-suexec-pristine was built with
// (suexec -V: AP_DOC_ROOT): suexec runs only programs under it.
const suexecDocRoot = "/var/www"

// TestCGISuexec runs the site under suexec, as a shared host runs each user's CGI programs
// as that user: app.fcgi and its directory owned by the user (nobody here), and Apache
// switching to it through /usr/lib/apache2/suexec.
func TestCGISuexec(t *testing.T) {
	needApache(t)
	const suexecBin = "/usr/lib/apache2/suexec"
	if fi, err := os.Stat(suexecBin); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		missingTool(t, "%s is not installed setuid root (Debian package apache2-suexec-pristine)", suexecBin)
	}
	if os.Geteuid() != 0 {
		t.Skip("suexec needs Apache started as root, with its children as www-data")
	}
	const uid, gid = 65534, 65534 // nobody, nogroup: above suexec's AP_UID_MIN and AP_GID_MIN
	home, err := os.MkdirTemp(suexecDocRoot, "wsgi-fcgi-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chmod(home, 0o755)
	// suexec passes on only the variables of its own safe list: a setting given with SetEnv
	// (here a body limit of 2 bytes) does not reach the gateway; give it in app.fcgi instead.
	h := newCGIHost(t, home, "", "cgiapp.py", "cgiapp:application",
		deployFile(t, "shared-hosting/cgi/.htaccess")+"SetEnv WSGI_FCGI_MAX_BODY 2\n")
	// suexec refuses a program or a directory that is not the user's, or that others can write.
	for _, p := range []string{h.docroot, filepath.Join(h.docroot, "app.fcgi"), filepath.Join(h.docroot, ".htaccess")} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	a := startApache(t, []string{"cgid", "rewrite", "alias", "env", "suexec"}, func(port int) string {
		return fmt.Sprintf("ScriptSock %s\n", filepath.Join(h.home, "cgid.sock")) + deployFile(t, "shared-hosting/cgi/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n    SuexecUserGroup nobody nogroup", port),
			"/home/user/public_html", h.docroot)
	})
	env := cgiEnv(t, "POST", a.base+"/env?x=1", nil, []byte("body"))
	if env["uid"] != float64(uid) || env["PATH_INFO"] != "/env" || env["body_length"] != 4.0 || env["wsgi.run_once"] != true {
		t.Errorf("under suexec: uid %v, PATH_INFO %v, body_length %v, wsgi.run_once %v; want %d, /env, 4, true",
			env["uid"], env["PATH_INFO"], env["body_length"], env["wsgi.run_once"], uid)
	}
	checkCGIStreams(t, a.base, h.home)
}

// TestCGIByHand runs the gateway as a CGI program without a web server, as docs/cgi.md shows:
// the response alone on stdout, log lines (the access log on "-" among them) on stderr, and
// the exit status.
func TestCGIByHand(t *testing.T) {
	needPythonFlask(t)
	cgiVars := []string{"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=POST", "CONTENT_LENGTH=5", "PATH_INFO=/env",
		"SERVER_NAME=localhost", "SERVER_PORT=80", "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_URI=/env"}
	// The default --listen address is not the CGI program's: taken by another process, it
	// changes nothing.
	if l, err := net.Listen("tcp", "127.0.0.1:9000"); err == nil {
		defer l.Close()
	}
	for _, tc := range []struct {
		name       string
		app        string
		wantStatus int
		wantStdout string   // its start
		wantStderr []string // a regular expression for each line
	}{
		{"served", "frontapp", 0, "Status: 200 OK\r\nContent-Type: application/json\r\n", []string{regexp.QuoteMeta(`"POST /env HTTP/1.1" 200`)}},
		{"import error", "brokenapp", 2, "Status: 500 Internal Server Error\r\n",
			[]string{`^wsgi-fcgi: cannot import "brokenapp" with ` + systemPython + ` \(\S+\): RuntimeError: brokenapp-import-failure$`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, "--app", tc.app, "--chdir", filepath.Join(repoRoot(), "tests", "apps"), "--python", systemPython)
			cmd.Env = append(append(os.Environ(), cgiVars...), "WSGI_FCGI_ACCESS_LOG=-")
			cmd.Stdin = strings.NewReader("hello, and more")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.wantStatus {
				t.Errorf("exit status %d (%v), want %d", code, err, tc.wantStatus)
			}
			if !strings.HasPrefix(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q, want it to start with %q", stdout.String(), tc.wantStdout)
			}
			if tc.wantStatus == 0 && !strings.HasSuffix(stdout.String(), `"body_length": 5, "pid": `+fmt.Sprint(jsonPID(t, stdout.Bytes()))+`, "served": 1}`) {
				t.Errorf("stdout %q: want the app's JSON, with the 5 bytes of CONTENT_LENGTH read", stdout.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != len(tc.wantStderr) {
				t.Errorf("stderr %q, want %d lines", lines, len(tc.wantStderr))
			}
			for i, want := range tc.wantStderr {
				if i < len(lines) && !regexp.MustCompile(want).MatchString(lines[i]) {
					t.Errorf("stderr line %d %q, want it to match %q", i+1, lines[i], want)
				}
			}
		})
	}
}

// TestCGIOneInterpreter checks what a CGI request costs in processes: the interpreter starts
// once (the worker), with no probe of it before.
func TestCGIOneInterpreter(t *testing.T) {
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	python := filepath.Join(dir, "python")
	script := fmt.Sprintf("#!/bin/sh\necho started >> %s\nexec %s \"$@\"\n", starts, systemPython)
	if err := os.WriteFile(python, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gatewayBin, "--app", "cgiapp", "--chdir", filepath.Join(repoRoot(), "tests", "apps"), "--python", python)
	cmd.Env = append(os.Environ(), "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET", "PATH_INFO=/env")
	out, err := cmd.Output()
	if err != nil || !bytes.HasPrefix(out, []byte("Status: 200 OK\r\n")) {
		t.Fatalf("%v: %q", err, out)
	}
	if b, _ := os.ReadFile(starts); strings.Count(string(b), "started") != 1 {
		t.Errorf("the interpreter started %d times for one request, want once", strings.Count(string(b), "started"))
	}
}

// jsonPID returns the "pid" of frontapp's /env answer at the end of a CGI response.
func jsonPID(t *testing.T, out []byte) int {
	t.Helper()
	_, body, _ := bytes.Cut(out, []byte("\r\n\r\n"))
	var v struct{ Pid int }
	decode(t, body, &v)
	return v.Pid
}

// releaseFIFO opens the named pipe for writing and closes it, which ends a read of it, once
// a reader has it open; it fails if none has within timeout (the app was stopped before it
// got there).
func releaseFIFO(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		// Non-blocking: ENXIO while no process has the pipe open for reading.
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			return f.Close()
		}
		if !errors.Is(err, syscall.ENXIO) || time.Now().After(deadline) {
			return fmt.Errorf("no reader of %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
