//go:build integration

// Caddy's fastcgi transport in front of wsgi-fcgi, configured by deploy/caddy/Caddyfile.

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCaddy(t *testing.T) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		missingTool(t, "caddy not found (Debian package caddy)")
	}
	sock := filepath.Join(shortTempDir(t), "gw.sock")
	g := startGateway(t, gatewayConfig{app: "frontapp:application", workers: 2, listen: "unix:" + sock})
	dir := shortTempDir(t)
	port := freePort(t, "tcp4", "127.0.0.1")
	site := deployFile(t, "caddy/Caddyfile",
		":80 {", fmt.Sprintf("http://127.0.0.1:%d {", port),
		"unix//run/wsgi-fcgi/wsgi-fcgi.sock", "unix/"+sock)
	global := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\n", filepath.Join(dir, "data"))
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(global+site), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(gatewayEnv(nil), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	p := startProcess(t, "caddy", cmd)
	if err := waitDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		t.Fatalf("start caddy: %v\n%s", err, p.stderr.String())
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	checkFrontEnd(t, base)
	_ = g
}
