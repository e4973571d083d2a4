//go:build integration

// The mount matrix behind Apache mod_proxy_fcgi, Apache mod_fcgid (shared hosting) and Caddy:
// Flask and Django at / and at /app, with no --mount (the gateway finds the prefix from what
// each front end sends). TestMountedApps does the same behind nginx. Each front end runs once
// per configuration; the gateways for mod_proxy_fcgi and Caddy are shared by both front ends.

package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mountedApp is one app of the matrix and the path its /p/caf%C3%A9/a%2Fb reports.
type mountedApp struct {
	name, app, file string
	wantPath        string
}

var mountedApps = []mountedApp{
	// PEP 3333: PATH_INFO is the URL's bytes as latin-1 (Flask leaves it so); Django decodes
	// it back as UTF-8, which only works if the bytes arrived intact. %2F is "/".
	{"flask", "prefix_flask:app", "prefix_flask.py", "/p/caf\u00c3\u00a9/a/b"},
	{"django", "prefix_django", "prefix_django.py", "/p/caf\u00e9/a/b"},
}

// basicAuth is the Authorization header the matrix sends with /links.
const basicAuth = "Basic dXNlcjpwYXNz"

// checkMounted checks an app mounted at prefix behind the front end at origin: the absolute
// URLs and redirects it builds, its static links (no ".fcgi"), the path it is given, and
// whether the Authorization header reached it (wantAuth).
func checkMounted(t *testing.T, origin, prefix, wantPath string, wantAuth bool) {
	t.Helper()
	r := httpDo(t, "GET", origin+prefix+"/links", http.Header{"Authorization": {basicAuth}}, nil)
	if r.status != 200 {
		t.Fatalf("GET %s/links: status %d: %s", prefix, r.status, r.body)
	}
	var links struct {
		External, Static, Script_name, Path_info string
		Authorization                            *string
	}
	decode(t, r.body, &links)
	if links.External != origin+prefix+"/links" {
		t.Errorf("absolute URL %q, want %q", links.External, origin+prefix+"/links")
	}
	if links.Static != prefix+"/static/site.css" || strings.Contains(links.Static, ".fcgi") {
		t.Errorf("static link %q, want %q", links.Static, prefix+"/static/site.css")
	}
	if links.Script_name != prefix || links.Path_info != "/links" {
		t.Errorf("SCRIPT_NAME %q PATH_INFO %q, want %q %q", links.Script_name, links.Path_info, prefix, "/links")
	}
	switch {
	case wantAuth && (links.Authorization == nil || *links.Authorization != basicAuth):
		t.Errorf("HTTP_AUTHORIZATION %v, want %q", deref(links.Authorization), basicAuth)
	case !wantAuth && links.Authorization != nil:
		t.Errorf("HTTP_AUTHORIZATION %q reached the app, want none", *links.Authorization)
	}

	r = httpDo(t, "GET", origin+prefix+"/go", nil, nil)
	if loc := r.header.Get("Location"); r.status != 302 || loc != origin+prefix+"/links" {
		t.Errorf("GET %s/go: %d to %q, want 302 to %q", prefix, r.status, loc, origin+prefix+"/links")
	}

	r = httpDo(t, "GET", origin+prefix+"/p/caf%C3%A9/a%2Fb", nil, nil)
	var echo struct{ Path_info string }
	if r.status != 200 {
		t.Fatalf("GET %s/p/caf%%C3%%A9/a%%2Fb: status %d: %s", prefix, r.status, r.body)
	}
	decode(t, r.body, &echo)
	if echo.Path_info != wantPath {
		t.Errorf("PATH_INFO %q, want %q", echo.Path_info, wantPath)
	}
}

// sharedGateways starts one gateway per app and mount of the matrix (Django settles its
// script prefix into settings.STATIC_URL once per process: one process serves one mount), on
// unix sockets Apache's children can reach, and returns their sockets by app name and prefix.
func sharedGateways(t *testing.T) map[string]string {
	t.Helper()
	socks := map[string]string{}
	for _, prefix := range []string{"", "/app"} {
		for _, a := range mountedApps {
			dir := shortTempDir(t)
			os.Chmod(dir, 0o755)
			sock := filepath.Join(dir, "gw.sock")
			startGateway(t, gatewayConfig{app: a.app, workers: 1, listen: "unix:" + sock, args: []string{"--socket-group", "www-data"}})
			socks[a.name+prefix] = sock
		}
	}
	return socks
}

func needDjango(t *testing.T) {
	t.Helper()
	needPythonFlask(t)
	if err := exec.Command(systemPython, "-c", "import django").Run(); err != nil {
		missingTool(t, "%s cannot import django (Debian package python3-django): %v", systemPython, err)
	}
}

func TestMountedAppsApacheProxyFcgi(t *testing.T) {
	needApache(t)
	needDjango(t)
	socks := sharedGateways(t)
	// The configuration docs/frontends.md shows ("Apache mod_proxy_fcgi"); the prefix is the
	// ProxyPass path, and CGIPassAuth On lets the Authorization header through.
	site := func(prefix, sock string, passAuth bool) string {
		auth := ""
		if passAuth {
			auth = "    <Location \"/\">\n        CGIPassAuth On\n    </Location>\n"
		}
		return fmt.Sprintf("<VirtualHost 127.0.0.1:PORT>\n    AllowEncodedSlashes On\n%s"+
			"    ProxyPass \"%s/\" \"unix:%s|fcgi://localhost/\" enablereuse=on flushpackets=on\n</VirtualHost>\n", auth, prefix, sock)
	}
	for _, prefix := range []string{"", "/app"} {
		for _, a := range mountedApps {
			t.Run(fmt.Sprintf("%s/%s", mountName(prefix), a.name), func(t *testing.T) {
				ap := startApache(t, []string{"proxy", "proxy_fcgi"}, func(port int) string {
					return strings.ReplaceAll(site(prefix, socks[a.name+prefix], true), "PORT", fmt.Sprint(port))
				})
				checkMounted(t, ap.base, prefix, a.wantPath, true)
			})
		}
	}
	// Apache's defaults: without CGIPassAuth the Authorization header does not reach the app,
	// and without AllowEncodedSlashes a %2F in the path is Apache's own 404.
	t.Run("Apache defaults", func(t *testing.T) {
		ap := startApache(t, []string{"proxy", "proxy_fcgi"}, func(port int) string {
			conf := strings.ReplaceAll(site("", socks["flask"], false), "    AllowEncodedSlashes On\n", "")
			return strings.ReplaceAll(conf, "PORT", fmt.Sprint(port))
		})
		r := httpDo(t, "GET", ap.base+"/links", http.Header{"Authorization": {basicAuth}}, nil)
		var links struct{ Authorization *string }
		decode(t, r.body, &links)
		if r.status != 200 || links.Authorization != nil {
			t.Errorf("GET /links: status %d, HTTP_AUTHORIZATION %v; want 200 and none", r.status, deref(links.Authorization))
		}
		if r := httpDo(t, "GET", ap.base+"/p/a%2Fb", nil, nil); r.status != 404 || strings.Contains(string(r.body), "path_info") {
			t.Errorf("GET /p/a%%2Fb: status %d, want Apache's 404; body %s", r.status, r.body)
		}
	})
}

func TestMountedAppsApacheFcgid(t *testing.T) {
	needApache(t)
	needDjango(t)
	type run struct {
		prefix   string
		app      mountedApp
		passAuth bool // the host allows AuthConfig overrides and .htaccess says CGIPassAuth On
	}
	var runs []run
	for _, prefix := range []string{"", "/app"} {
		for _, a := range mountedApps {
			runs = append(runs, run{prefix, a, false})
		}
	}
	runs = append(runs, run{"", mountedApps[0], true})
	for _, rn := range runs {
		prefix, a := rn.prefix, rn.app
		name := fmt.Sprintf("%s/%s", mountName(prefix), a.name)
		if rn.passAuth {
			name += "/CGIPassAuth"
		}
		t.Run(name, func(t *testing.T) {
			// deploy/shared-hosting as is: .htaccess and app.fcgi in the directory the
			// app is mounted at (the document root, or its app/).
			home := shortTempDir(t)
			os.Chmod(home, 0o755)
			docroot := filepath.Join(home, "public_html")
			site := filepath.Join(docroot, strings.TrimPrefix(prefix, "/"))
			bindir, appdir := filepath.Join(home, "bin"), filepath.Join(home, "app")
			for _, d := range []string{site, bindir, appdir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			copyFile(t, gatewayBin, filepath.Join(bindir, "wsgi-fcgi"), 0o755)
			copyFile(t, filepath.Join(repoRoot(), "tests", "apps", a.file), filepath.Join(appdir, a.file), 0o644)
			wrapper := deployFile(t, "shared-hosting/app.fcgi",
				"/home/user/bin/wsgi-fcgi", filepath.Join(bindir, "wsgi-fcgi"),
				"--chdir /home/user/app", "--chdir "+appdir,
				"--app myapp.wsgi:application", "--app "+a.app,
				"--workers 2", "--workers 1")
			if err := os.WriteFile(filepath.Join(site, "app.fcgi"), []byte(wrapper), 0o755); err != nil {
				t.Fatal(err)
			}
			htaccess := deployFile(t, "shared-hosting/.htaccess")
			override := "AllowOverride FileInfo"
			if rn.passAuth {
				htaccess += "CGIPassAuth On\n"
				override = "AllowOverride AuthConfig FileInfo"
			}
			if err := os.WriteFile(filepath.Join(site, ".htaccess"), []byte(htaccess), 0o644); err != nil {
				t.Fatal(err)
			}
			ap := startApache(t, []string{"fcgid", "rewrite", "alias"}, func(port int) string {
				return deployFile(t, "shared-hosting/apache-host.conf",
					"<VirtualHost *:80>", fmt.Sprintf("<VirtualHost 127.0.0.1:%d>\n    AllowEncodedSlashes On", port),
					"/home/user/public_html", docroot,
					"AllowOverride FileInfo", override,
					"FcgidIPCDir /run/mod_fcgid", "FcgidIPCDir "+filepath.Join(home, "fcgid"),
					"FcgidProcessTableFile /run/mod_fcgid/fcgid_shm", "FcgidProcessTableFile "+filepath.Join(home, "fcgid_shm"))
			})
			checkMounted(t, ap.base, prefix, a.wantPath, rn.passAuth)
		})
	}
}

func TestMountedAppsCaddy(t *testing.T) {
	needDjango(t)
	socks := sharedGateways(t)
	for _, prefix := range []string{"", "/app"} {
		for _, a := range mountedApps {
			t.Run(fmt.Sprintf("%s/%s", mountName(prefix), a.name), func(t *testing.T) {
				// docs/frontends.md, "Caddy": handle_path strips the prefix; the gateway
				// gives it back to the app as SCRIPT_NAME.
				site := fmt.Sprintf("reverse_proxy unix/%s {\n\ttransport fastcgi\n}", socks[a.name+prefix])
				if prefix != "" {
					site = fmt.Sprintf("handle_path %s/* {\n\t%s\n}", prefix, strings.ReplaceAll(site, "\n", "\n\t"))
				}
				checkMounted(t, startCaddy(t, site), prefix, a.wantPath, true)
			})
		}
	}
}

func mountName(prefix string) string {
	if prefix == "" {
		return "root"
	}
	return prefix
}
