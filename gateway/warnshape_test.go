package gateway

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// With --mount, the gateway's own pages are outside it and need no warning, and a request
// outside it is not told to set the --mount it has.
func TestMountWarnings(t *testing.T) {
	var logs lockedBuffer
	sock, _ := serveWith(t, scriptedDispatcher{}, Options{Mount: "/app", PingPath: "/fcgi-ping",
		StatusPath: "/fcgi-status", Status: fakeStatus{sampleStatus()},
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	nginx := func(path string) map[string]string { // nginx's stock fastcgi_params
		return baseParams(map[string]string{"SCRIPT_NAME": path, "REQUEST_URI": path, "DOCUMENT_URI": path})
	}
	for _, path := range []string{"/fcgi-ping", "/fcgi-status", "/app/x"} {
		if rec := do(t, sock, nginx(path), nil); rec.Code != 200 {
			t.Fatalf("%s: status %d", path, rec.Code)
		}
	}
	if s := logs.String(); s != "" {
		t.Errorf("the gateway's pages and a request under --mount logged:\n%s", s)
	}
	do(t, sock, nginx("/elsewhere"), nil)
	s := logs.String()
	if !strings.Contains(s, "request outside --mount") || strings.Contains(s, "set --mount") {
		t.Errorf("a request outside --mount logged:\n%s", s)
	}
}
