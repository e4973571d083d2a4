//go:build integration

// Real nginx in front, with the deploy snippet users install (deploy/nginx/wsgi-fcgi.conf),
// for the scenarios where what the web server does matters: a client's Proxy header, a client
// that goes away mid-download.

package chaos

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type nginx struct {
	*proc
	base   string // http://127.0.0.1:PORT
	client *http.Client
}

// startNginx runs nginx in front of g.
func startNginx(t *testing.T, g *gw) *nginx {
	t.Helper()
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		missing(t, "nginx (Debian package nginx): %v", err)
	}
	params, err := os.ReadFile("/etc/nginx/fastcgi_params")
	if err != nil {
		missing(t, "nginx's fastcgi_params: %v", err)
	}
	snippet, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "nginx", "wsgi-fcgi.conf"))
	if err != nil {
		t.Fatal(err)
	}
	upstream := g.address
	if g.network == "unix" {
		upstream = "unix:" + upstream
	}
	dir := shortTempDir(t)
	port := freePort(t)
	site := string(snippet)
	for _, r := range [][2]string{
		{"server unix:/run/wsgi-fcgi/wsgi-fcgi.sock;", "server " + upstream + ";"},
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port)},
	} {
		if strings.Count(site, r[0]) != 1 {
			t.Fatalf("deploy/nginx/wsgi-fcgi.conf must hold %q once (tests/chaos replaces it)", r[0])
		}
		site = strings.Replace(site, r[0], r[1], 1)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // nobody could not reach the gateway's socket in a 0700 temp dir
	}
	main := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
%[2]s
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    fastcgi_temp_path %[1]s/fastcgi;
    proxy_temp_path %[1]s/proxy;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir, user)
	for name, content := range map[string]string{"nginx.conf": main, "site.conf": site, "fastcgi_params": string(params)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	n := &nginx{proc: startProc(t, "nginx", cmd), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	n.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := n.client.Get(n.base + "/")
		if err == nil {
			resp.Body.Close()
			return n
		}
		if n.exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx not answering: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
