//go:build integration

// Operations: the probe subcommand against a live gateway, a dead one and a 500, and the --http
// development front end (also what the demo mode turns on).

package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 1})
	addr := g.address
	if g.network == "unix" {
		addr = "unix:" + g.address
	}
	dead := shortTempDir(t) + "/nobody.sock"
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout+stderr
	}{
		{"2xx", []string{addr, "/query?x=1"}, 0, "status 200"},
		{"500", []string{addr, "/boom"}, 1, "status 500"},
		{"404", []string{addr, "/no/such/page"}, 1, "status 404"},
		{"nothing listening", []string{dead}, 1, "connect"},
		{"bad path", []string{addr, "relative"}, 1, "must start with /"},
		{"no address", nil, 2, "Usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, append([]string{"probe", "--timeout", "5s"}, tc.args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out.String(), tc.wantCode, tc.wantOut)
			}
			if tc.wantCode == 1 && strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
				t.Errorf("want one line saying why, got %q", out.String())
			}
		})
	}
}

func TestDevHTTP(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--http", fmt.Sprintf("127.0.0.1:%d", port)}})
	// The HTTP front end starts after the FastCGI listener startGateway waited for.
	if err := waitDial(g.process, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	resp, err := http.Get(base + "/query?x=1&y=%C3%A9")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"x"`) {
		t.Errorf("GET /query through --http: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post(base+"/form", "application/x-www-form-urlencoded", strings.NewReader("a=1&b=two"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "two") {
		t.Errorf("POST /form through --http: %d %s", resp.StatusCode, body)
	}
}

// TestDemo runs the binary as "go run ./cmd/wsgi-fcgi" does (no --app): the demo app answers
// on the development HTTP front end it turns on.
func TestDemo(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	sock := shortTempDir(t) + "/demo.sock"
	cmd := exec.Command(gatewayBin, "--listen", sock, "--python", systemPython, "--workers", "1",
		"--http", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = gatewayEnv(nil)
	p := startProcess(t, "demo", cmd)
	if err := waitDial(p, "tcp", fmt.Sprintf("127.0.0.1:%d", port), startTimeout); err != nil {
		t.Fatalf("demo did not start: %v\n%s", err, p.stderr.String())
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "wsgi-fcgi is serving this page") {
		t.Errorf("demo page: %d %.200s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), fmt.Sprintf("Open http://127.0.0.1:%d/", port)) {
		if time.Now().After(deadline) {
			t.Fatalf("the demo does not print its URL; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPingPathAndAccessLog(t *testing.T) {
	logFile := shortTempDir(t) + "/access.log"
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--ping-path", "/fcgi-ping",
		"--access-log", logFile, "--access-log-format", "json"}})
	addr := g.address
	if g.network == "unix" {
		addr = "unix:" + g.address
	}
	out, err := exec.Command(gatewayBin, "probe", addr, "/fcgi-ping").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "status 200") {
		t.Fatalf("probe of the ping path: %v %s", err, out)
	}
	// The log is flushed every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), `"uri":"/fcgi-ping"`) && strings.Contains(string(b), `"status":200`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log %s does not show the request:\n%s", logFile, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
