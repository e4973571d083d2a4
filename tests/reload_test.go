//go:build integration

// Reloading: --reload serves an edited module within seconds without failing a request
// (signals_test.go has --touch-reload, and the signals sent while the app is still importing).

package tests

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeApp writes a two-module app into dir: reloadapp.py answers with version.VERSION.
func writeApp(t *testing.T, dir, version string) {
	t.Helper()
	files := map[string]string{
		"reloadapp.py": "import version\n\n\ndef application(environ, start_response):\n" +
			"    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n" +
			"    return [version.VERSION.encode()]\n",
		"version.py": "VERSION = " + `"` + version + `"` + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReloadOnChange(t *testing.T) {
	dir := shortTempDir(t)
	writeApp(t, dir, "one")
	g := startGateway(t, gatewayConfig{app: "reloadapp", workers: 2, args: []string{"--chdir", dir, "--reload"}})
	if got := g.mustFcgiGet(t, "/", ""); got != "one" {
		t.Fatalf("before the edit: %q", got)
	}

	// Requests all along, two at a time: none may fail while the workers are replaced.
	var failed, served atomic.Int64
	var newAt atomic.Int64 // when "two, edited" was first served (UnixNano)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := g.fcgiGet("/", "")
				served.Add(1)
				switch {
				case r.err != nil || r.status != 200:
					failed.Add(1)
					t.Errorf("request failed during the reload: %d %v %q", r.status, r.err, r.body)
				case r.body == "two, edited":
					newAt.CompareAndSwap(0, time.Now().UnixNano())
				case r.body != "one":
					t.Errorf("unexpected answer %q", r.body)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // the watcher has taken its first look
	edited := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "version.py"), []byte(`VERSION = "two, edited"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for newAt.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // and it goes on serving through the old workers' exit
	close(stop)
	wg.Wait()
	if newAt.Load() == 0 {
		t.Fatalf("the edited module was not served within 10s\n%s", g.stderr.String())
	}
	took := time.Unix(0, newAt.Load()).Sub(edited)
	t.Logf("edited module served %v after the edit; %d requests, %d failed", took.Round(time.Millisecond), served.Load(), failed.Load())
	if took > 5*time.Second {
		t.Errorf("the edited module was served %v after the edit, want within 5s", took)
	}
	g.waitLog(t, "a Python file changed; reloading the app", time.Second)
	g.waitLog(t, filepath.Join(dir, "version.py"), time.Second)
	if got := g.mustFcgiGet(t, "/", ""); got != "two, edited" {
		t.Errorf("after the reload: %q", got)
	}
}

func TestReloadOffByDefault(t *testing.T) {
	dir := shortTempDir(t)
	writeApp(t, dir, "one")
	g := startGateway(t, gatewayConfig{app: "reloadapp", workers: 1, args: []string{"--chdir", dir}})
	g.mustFcgiGet(t, "/", "")
	if err := os.WriteFile(filepath.Join(dir, "version.py"), []byte(`VERSION = "two, edited"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if got := g.mustFcgiGet(t, "/", ""); got != "one" {
		t.Errorf("without --reload the edit was picked up: %q", got)
	}
}
