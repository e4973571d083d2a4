//go:build integration

// --debug (WSGI_FCGI_DEBUG): an app's traceback reaches the client in the 500 body only when
// it is on; it is logged in every state.

package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDebugTraceback(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  gatewayConfig
		show bool
	}{
		{"off by default", gatewayConfig{workers: 1}, false},
		{"--debug", gatewayConfig{workers: 1, args: []string{"--debug"}}, true},
		{"WSGI_FCGI_DEBUG with --preload", gatewayConfig{workers: 1, args: []string{"--preload"}, env: []string{"WSGI_FCGI_DEBUG=true"}}, true},
		{"--debug=false wins over WSGI_FCGI_DEBUG", gatewayConfig{workers: 1, args: []string{"--debug=false"}, env: []string{"WSGI_FCGI_DEBUG=true"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, tc.cfg)
			n := startNginx(t, g.upstream)
			r := n.get(t, "/boom")
			if r.status != http.StatusInternalServerError {
				t.Fatalf("GET /boom: status %d, want 500; body:\n%s", r.status, r.body)
			}
			body := string(r.body)
			shown := strings.Contains(body, "Traceback") && strings.Contains(body, "RuntimeError: integration-test-boom")
			if shown != tc.show {
				t.Errorf("traceback in the 500 body: %v, want %v; body:\n%s", shown, tc.show, body)
			}
			if !tc.show && strings.Contains(body, "integration-test-boom") {
				t.Errorf("the 500 body shows the exception:\n%s", body)
			}
			g.waitLog(t, "integration-test-boom", 5*time.Second)
			n.mustGet(t, "/pid", http.StatusOK) // and the worker goes on
		})
	}
}
