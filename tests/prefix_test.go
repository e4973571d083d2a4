//go:build integration

// Apps mounted at / and at /app behind nginx: the URLs Flask and Django build (url_for,
// reverse, redirects, static links) carry the right prefix, and non-ASCII and %2F paths reach
// the app as PEP 3333 says.

package tests

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestMountedApps(t *testing.T) {
	needNginx(t)
	if err := exec.Command(systemPython, "-c", "import django").Run(); err != nil {
		missingTool(t, "%s cannot import django (Debian package python3-django): %v", systemPython, err)
	}
	mounts := []struct {
		name   string
		prefix string
		args   []string // gateway flags
		site   string   // nginx locations; UPSTREAM is replaced
	}{
		{name: "root, stock params", prefix: "",
			site: "location / {\n    include fastcgi_params;\n    fastcgi_param HTTP_HOST $host:$server_port;\n    fastcgi_pass UPSTREAM;\n}"},
		{name: "/app with --mount", prefix: "/app", args: []string{"--mount", "/app"},
			site: "location /app/ {\n    include fastcgi_params;\n    fastcgi_param HTTP_HOST $host:$server_port;\n    fastcgi_pass UPSTREAM;\n}"},
		{name: "/app by fastcgi_split_path_info", prefix: "/app",
			site: "location /app/ {\n    fastcgi_split_path_info ^(/app)(/.*)$;\n    include fastcgi_params;\n" +
				"    fastcgi_param PATH_INFO $fastcgi_path_info;\n    fastcgi_param HTTP_HOST $host:$server_port;\n    fastcgi_pass UPSTREAM;\n}"},
	}
	apps := []struct {
		app string
		// The path of /p/caf%C3%A9/a%2Fb as the app reports it. PEP 3333: PATH_INFO holds
		// the URL's bytes as latin-1, so café's two UTF-8 bytes are two characters (Flask
		// leaves the environ as it is); Django decodes request.META["PATH_INFO"] back from
		// those bytes as UTF-8, which only works if they arrived intact.
		wantPath string
	}{
		{"prefix_flask:app", "/p/caf\u00c3\u00a9/a/b"},
		{"prefix_django", "/p/caf\u00e9/a/b"},
	}
	for _, m := range mounts {
		for _, a := range apps {
			t.Run(m.name+"/"+strings.Split(a.app, ":")[0], func(t *testing.T) {
				g := startGateway(t, gatewayConfig{app: a.app, workers: 1, args: m.args})
				n := startNginxSite(t, strings.ReplaceAll(m.site, "UPSTREAM", g.upstream))
				// nginx passes every header, Authorization included.
				checkMounted(t, n.base, m.prefix, a.wantPath, true)
			})
		}
	}
}

func decode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}
