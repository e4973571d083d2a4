//go:build integration

// The recipes a new user follows first, run as they are written: a Django project made by
// django-admin startproject, with its admin, behind nginx, Apache mod_proxy_fcgi, Caddy and
// Apache mod_fcgid (shared hosting), at / and at /app. The web servers run as their packaged
// unprivileged users (www-data; Caddy's user caddy), so the socket's permissions are what a
// real install has; the admin's login works and its CSS comes from the web server. Also the
// warning the gateway logs when no web server user may connect to its socket.

package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Django's superuser in the test project.
const (
	djangoAdmin    = "admin"
	djangoPassword = "correct-horse-battery"
)

// webUser is a packaged web server account, looked up; a missing one skips (or fails) the test.
func webUser(t *testing.T, name string) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		missingTool(t, "user %s (made by its web server's Debian package): %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, s := range ids {
		g, _ := strconv.Atoi(s)
		cred.Groups = append(cred.Groups, uint32(g))
	}
	return cred
}

// chownTree gives dir and everything in it to cred's user, when the test can.
func chownTree(t *testing.T, dir string, cred *syscall.Credential) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newDjangoProject makes a project as docs/frontends.md tells a new user: django-admin
// startproject mysite, then in settings.py DEBUG off, ALLOWED_HOSTS, a relative STATIC_URL
// and STATIC_ROOT (staticRoot, a Python expression); migrate, a superuser, collectstatic.
// It returns the project's directory, readable by the web servers.
func newDjangoProject(t *testing.T, staticRoot string) string {
	t.Helper()
	needDjango(t)
	dir := shortTempDir(t)
	os.Chmod(dir, 0o755)
	run := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(systemPython, args...)
		cmd.Dir = dir
		cmd.Env = append(gatewayEnv(nil), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("python3 %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(nil, "-m", "django", "startproject", "mysite", ".")
	settings := filepath.Join(dir, "mysite", "settings.py")
	b, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, e := range []struct{ line, with string }{
		{`DEBUG = .*`, `DEBUG = False`},
		{`ALLOWED_HOSTS = .*`, `ALLOWED_HOSTS = ["127.0.0.1", "localhost"]`},
		{`STATIC_URL = .*`, "STATIC_URL = \"static/\"\nSTATIC_ROOT = " + staticRoot},
	} {
		re := regexp.MustCompile(`(?m)^` + e.line + `$`)
		if !re.MatchString(s) {
			t.Fatalf("settings.py from startproject has no line %q:\n%s", e.line, s)
		}
		s = re.ReplaceAllLiteralString(s, e.with)
	}
	if err := os.WriteFile(settings, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	run(nil, "manage.py", "migrate", "--noinput", "-v", "0")
	run([]string{"DJANGO_SUPERUSER_USERNAME=" + djangoAdmin, "DJANGO_SUPERUSER_PASSWORD=" + djangoPassword,
		"DJANGO_SUPERUSER_EMAIL=admin@example.com"}, "manage.py", "createsuperuser", "--noinput")
	run(nil, "manage.py", "collectstatic", "--noinput", "-v", "0")
	return dir
}

// startDjangoGateway serves the project on a unix socket, started as the recipes say
// (--socket-group www-data, the socket's mode left at its default), in a directory the web
// servers may search.
func startDjangoGateway(t *testing.T, project string) string {
	t.Helper()
	dir := shortTempDir(t)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "gw.sock")
	g := startGateway(t, gatewayConfig{app: "mysite.wsgi:application", workers: 1, listen: "unix:" + sock,
		args: []string{"--chdir", project, "--socket-group", "www-data"}})
	t.Cleanup(func() {
		if strings.Contains(g.stderr.String(), "cannot connect") {
			t.Errorf("the gateway warned that the web server cannot connect:\n%s", g.stderr.String())
		}
	})
	return sock
}

// checkDjangoAdmin logs in to the admin of the project at prefix behind the front end at base,
// as a browser does: the login page and its CSRF token, the form posted with the CSRF cookie,
// the redirect to the admin index. The admin's CSS, linked under prefix, is the web server's
// 200 text/css. /app without its slash is redirected to /app/.
func checkDjangoAdmin(t *testing.T, base, prefix string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: reqTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
		defer cancel()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: read body: %v", method, path, err)
		}
		return resp, string(b)
	}
	// location is a redirect's target as a path and query, whether absolute or not.
	location := func(resp *http.Response) string {
		u, err := resp.Location()
		if err != nil {
			return ""
		}
		return u.RequestURI()
	}

	if prefix != "" {
		resp, _ := do("GET", prefix, nil)
		if resp.StatusCode != 301 && resp.StatusCode != 308 || location(resp) != prefix+"/" {
			t.Errorf("GET %s: %d to %q, want a permanent redirect to %s/", prefix, resp.StatusCode, location(resp), prefix)
		}
	}
	resp, _ := do("GET", prefix+"/admin/", nil)
	login := prefix + "/admin/login/?next=" + prefix + "/admin/"
	if resp.StatusCode != 302 || location(resp) != login {
		t.Fatalf("GET %s/admin/: %d to %q, want 302 to %q", prefix, resp.StatusCode, location(resp), login)
	}
	resp, page := do("GET", login, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%s", login, resp.StatusCode, page)
	}
	css := regexp.MustCompile(`href="([^"]*/admin/css/base\.css)"`).FindStringSubmatch(page)
	if css == nil || css[1] != prefix+"/static/admin/css/base.css" {
		t.Errorf("login page links the admin CSS as %q, want %q", css, prefix+"/static/admin/css/base.css")
	}
	token := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindStringSubmatch(page)
	if token == nil {
		t.Fatalf("login page has no CSRF token:\n%s", page)
	}
	resp, body := do("POST", login, url.Values{
		"csrfmiddlewaretoken": {token[1]}, "username": {djangoAdmin}, "password": {djangoPassword},
		"next": {prefix + "/admin/"},
	})
	if resp.StatusCode != 302 || location(resp) != prefix+"/admin/" {
		t.Fatalf("POST %s: %d to %q, want 302 to %s/admin/\n%s", login, resp.StatusCode, location(resp), prefix, body)
	}
	resp, index := do("GET", prefix+"/admin/", nil)
	if resp.StatusCode != 200 || !strings.Contains(index, "Site administration") {
		t.Errorf("GET %s/admin/ after logging in: %d, want 200 and the admin index\n%s", prefix, resp.StatusCode, index)
	}

	resp, sheet := do("GET", prefix+"/static/admin/css/base.css", nil)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/css") || len(sheet) < 1000 {
		t.Errorf("GET %s/static/admin/css/base.css: %d %q, %d bytes; want 200 text/css", prefix, resp.StatusCode, ct, len(sheet))
	}
}

// startNginxAs runs nginx with conf (a recipe, as the file in conf.d) on port, its workers as
// user (www-data, as Debian's nginx.conf says), and returns its base URL. It is
// startNginxConf with Debian's mime.types read, and a temp dir the user may search (nginx
// makes its temp paths inside, owned by the user).
func startNginxAs(t *testing.T, conf string, port int, user string) string {
	t.Helper()
	bin := needNginx(t)
	webUser(t, user)
	params, err := os.ReadFile("/etc/nginx/fastcgi_params")
	if err != nil {
		missingTool(t, "read nginx's fastcgi_params: %v", err)
	}
	dir := shortTempDir(t)
	os.Chmod(dir, 0o755)
	// Debian's nginx.conf, which reads the recipe inside http {}, also reads the types of
	// the static files it serves.
	main := strings.Replace(mainConfig(dir), "default_type application/octet-stream;",
		"include /etc/nginx/mime.types;\n    default_type application/octet-stream;", 1)
	if os.Geteuid() == 0 {
		if !strings.Contains(main, "user root;") {
			t.Fatalf("mainConfig names no user to replace with %s:\n%s", user, main)
		}
		main = strings.Replace(main, "user root;", "user "+user+";", 1)
	}
	for name, content := range map[string]string{"nginx.conf": main, "wsgi-fcgi.conf": conf, "fastcgi_params": string(params)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	p := startProcess(t, "nginx", cmd)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	if err := waitDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("start nginx: %v\n%s", err, b)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// startCaddyAs runs caddy with a recipe's site block as the packaged user caddy, and returns
// its base URL.
func startCaddyAs(t *testing.T, site string, port int) string {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		missingTool(t, "caddy not found (Debian package caddy)")
	}
	cred := webUser(t, "caddy")
	dir := shortTempDir(t)
	global := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\n", filepath.Join(dir, "data"))
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(global+site), 0o644); err != nil {
		t.Fatal(err)
	}
	chownTree(t, dir, cred)
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(gatewayEnv(nil), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p := startProcess(t, "caddy", cmd)
	if err := waitDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		t.Fatalf("start caddy: %v\n%s", err, p.stderr.String())
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestRecipesDjangoAdmin: the Django admin, logged in to through each recipe at / and /app.
func TestRecipesDjangoAdmin(t *testing.T) {
	project := newDjangoProject(t, `BASE_DIR / "static"`)
	static := filepath.Join(project, "static")
	mounts := []struct{ prefix, nginx, apache, caddy string }{
		{"", "nginx/wsgi-fcgi.conf", "apache/wsgi-fcgi.conf", "caddy/Caddyfile"},
		{"/app", "nginx/prefix.conf", "apache/prefix.conf", "caddy/Caddyfile.prefix"},
	}
	for _, m := range mounts {
		// A gateway per front end and mount: Django settles its script prefix into STATIC_URL
		// once per process.
		t.Run("nginx"+m.prefix, func(t *testing.T) {
			sock := startDjangoGateway(t, project)
			port := freePort(t, "tcp4", "127.0.0.1")
			conf := deployFile(t, m.nginx,
				"server unix:/run/wsgi-fcgi/wsgi-fcgi.sock;", "server unix:"+sock+";",
				"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
				"/srv/mysite/static/", static+"/")
			checkDjangoAdmin(t, startNginxAs(t, conf, port, "www-data"), m.prefix)
		})
		t.Run("apache"+m.prefix, func(t *testing.T) {
			webUser(t, "www-data")
			sock := startDjangoGateway(t, project)
			a := startApache(t, []string{"proxy", "proxy_fcgi", "alias"}, func(port int) string {
				return deployFile(t, m.apache,
					"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
					"unix:/run/wsgi-fcgi/wsgi-fcgi.sock|fcgi://localhost/", "unix:"+sock+"|fcgi://localhost/",
					"/srv/mysite/static/", static+"/")
			})
			checkDjangoAdmin(t, a.base, m.prefix)
		})
		t.Run("caddy"+m.prefix, func(t *testing.T) {
			sock := startDjangoGateway(t, project)
			port := freePort(t, "tcp4", "127.0.0.1")
			site := deployFile(t, m.caddy,
				":80 {", fmt.Sprintf("http://127.0.0.1:%d {", port),
				"unix//run/wsgi-fcgi/wsgi-fcgi.sock", "unix/"+sock,
				"/srv/mysite/static", static)
			checkDjangoAdmin(t, startCaddyAs(t, site, port), m.prefix)
		})
	}
	for _, prefix := range []string{"", "/app"} {
		t.Run("fcgid"+prefix, func(t *testing.T) { testDjangoAdminFcgid(t, prefix) })
	}
}

// testDjangoAdminFcgid: deploy/shared-hosting as is, the project's STATIC_ROOT in the
// directory the app is mounted at (the document root, or its app/), so that the .htaccess
// leaves the static files to Apache. mod_fcgid runs the gateway as Apache's user.
func testDjangoAdminFcgid(t *testing.T, prefix string) {
	needApache(t)
	cred := webUser(t, "www-data")
	home := shortTempDir(t)
	os.Chmod(home, 0o755)
	docroot := filepath.Join(home, "public_html")
	site := filepath.Join(docroot, strings.TrimPrefix(prefix, "/"))
	bindir := filepath.Join(home, "bin")
	for _, d := range []string{site, bindir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	project := newDjangoProject(t, strconv.Quote(filepath.Join(site, "static")))
	chownTree(t, project, cred) // the gateway, as www-data, writes the sessions to db.sqlite3
	copyFile(t, gatewayBin, filepath.Join(bindir, "wsgi-fcgi"), 0o755)
	wrapper := deployFile(t, "shared-hosting/app.fcgi",
		"/home/user/bin/wsgi-fcgi", filepath.Join(bindir, "wsgi-fcgi"),
		"--chdir /home/user/app", "--chdir "+project,
		"--app myapp.wsgi:application", "--app mysite.wsgi:application",
		"--workers 2", "--workers 1")
	if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(repoRoot(), "deploy", "shared-hosting", ".htaccess"), filepath.Join(site, ".htaccess"), 0o644)
	a := startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
		return deployFile(t, "shared-hosting/apache-host.conf",
			"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>", port),
			"/home/user/public_html", docroot,
			"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
			"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
	})
	checkDjangoAdmin(t, a.base, prefix)
}

// TestSocketPermissionWarning: the gateway's unix socket checked against the machine's web
// server users (www-data here): the warning names the fix when www-data cannot connect or
// when every user can, and there is none once the recipe's --socket-group www-data is given.
func TestSocketPermissionWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		missingTool(t, "not root: the socket cannot be given to root:root")
	}
	cred := webUser(t, "www-data")
	for _, tc := range []struct {
		name     string
		dirMode  os.FileMode
		args     []string
		want     string // in the warning; "": none
		connects bool   // www-data may connect
	}{
		{name: "default", dirMode: 0o755,
			want: "the web server (www-data"},
		{name: "recipe", dirMode: 0o755, args: []string{"--socket-group", "www-data"}, connects: true},
		{name: "directory", dirMode: 0o700, args: []string{"--socket-group", "www-data"},
			want: "it may not search the directory"},
		{name: "every user", dirMode: 0o755, args: []string{"--socket-mode", "0666"},
			want: "every local user may connect", connects: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			os.Chmod(dir, tc.dirMode)
			sock := filepath.Join(dir, "gw.sock")
			g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 1, listen: "unix:" + sock, args: tc.args})
			g.waitLog(t, "listening", startTimeout)
			log := g.stderr.String()
			var warned []string
			for _, l := range warningLines(log) {
				if strings.Contains(l, "unix socket") {
					warned = append(warned, l)
				}
			}
			switch {
			case tc.want == "" && len(warned) > 0:
				t.Errorf("warned:\n%s", strings.Join(warned, "\n"))
			case tc.want != "" && (len(warned) != 1 || !strings.Contains(warned[0], tc.want)):
				t.Errorf("want one warning containing %q; log:\n%s", tc.want, log)
			}
			// What the warning says is what www-data finds.
			cmd := exec.Command(systemPython, "-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])", sock)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			out, err := cmd.CombinedOutput()
			if connected := err == nil; connected != tc.connects {
				t.Errorf("www-data connected: %v (%v %s); warned: %v", connected, err, out, len(warned) > 0)
			}
		})
	}
}

// TestSocketGroupNotMember: a gateway whose user may not give its socket the recipe's group
// (it is not root, nor in the group) says so before it imports the app, with exit status 2.
func TestSocketGroupNotMember(t *testing.T) {
	if os.Geteuid() != 0 {
		missingTool(t, "not root: cannot run the gateway as another user")
	}
	webUser(t, "www-data")
	nobody := webUser(t, "nobody")
	dir := shortTempDir(t)
	os.Chmod(dir, 0o777)
	bin := filepath.Join(dir, "wsgi-fcgi") // the test's own copy is in a directory only root may search
	copyFile(t, gatewayBin, bin, 0o755)
	cmd := exec.Command(bin, "--listen", "unix:"+filepath.Join(dir, "gw.sock"), "--socket-group", "www-data", "--python", systemPython)
	cmd.Env = gatewayEnv(nil)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "not in the group www-data") {
		t.Errorf("exit status %d (%v), want 2 and the group named; output:\n%s", code, err, out)
	}
}
