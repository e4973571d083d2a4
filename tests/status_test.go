//go:build integration

// The status page against the real thing: php-fpm (Debian's php8.2-fpm) is started with
// pm.status_path, and the gateway's ?json and ?json&full answers must have php-fpm's field
// names and JSON types, so tools written for php-fpm read them unchanged. The Prometheus
// output must pass promtool check metrics. TestStatusPageNumbers checks the numbers themselves
// under a known load.

package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yookoala/gofast"
)

// fcgiGet sends one GET over FastCGI, as a web server would for path?query, and returns the
// response.
func fcgiGet(t *testing.T, network, addr, path, query string) *httptest.ResponseRecorder {
	t.Helper()
	c, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, addr))()
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer c.Close()
	req := gofast.NewRequest(nil)
	for k, v := range map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_NAME": path, "SCRIPT_FILENAME": path, "QUERY_STRING": query,
		"REQUEST_URI": path + "?" + query, "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
		"SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "GATEWAY_INTERFACE": "CGI/1.1",
	} {
		req.Params[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := resp.WriteTo(rec, io.Discard); err != nil {
		t.Fatal(err)
	}
	return rec
}

// jsonShape maps each key of a JSON object to the JSON type of its value.
func jsonShape(m map[string]any) map[string]string {
	shape := map[string]string{}
	for k, v := range m {
		shape[k] = fmt.Sprintf("%T", v)
	}
	return shape
}

func startPHPFPM(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("php-fpm8.2")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/php-fpm8.2"); err != nil {
			missingTool(t, "php-fpm8.2 (Debian package php8.2-fpm): %v", err)
		}
	}
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "php.sock")
	conf := fmt.Sprintf(`[global]
pid = %[1]s/fpm.pid
error_log = %[1]s/error.log
daemonize = no
[www]
listen = %[2]s
pm = static
pm.max_children = 2
pm.status_path = /status
`, dir, sock)
	args := []string{"-F", "-y", filepath.Join(dir, "fpm.conf")}
	if os.Geteuid() == 0 {
		conf += "user = root\ngroup = root\n"
		args = append(args, "-R")
	}
	if err := os.WriteFile(filepath.Join(dir, "fpm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "php-fpm", exec.Command(bin, args...))
	if err := waitDial(p, "unix", sock, startTimeout); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("php-fpm: %v\n%s", err, b)
	}
	return sock
}

func TestStatusPageLikePHPFPM(t *testing.T) {
	fpm := startPHPFPM(t)
	g := startGateway(t, gatewayConfig{workers: 2, args: []string{"--status-path", "/status"}})
	// Traffic first, so counters and per-worker rows have something to say.
	for i := 0; i < 5; i++ {
		fcgiGet(t, g.network, g.address, "/query", "x=1")
	}

	for _, query := range []string{"json", "json&full"} {
		var want, got map[string]any
		if err := json.Unmarshal(fcgiGet(t, "unix", fpm, "/status", query).Body.Bytes(), &want); err != nil {
			t.Fatalf("php-fpm ?%s: %v", query, err)
		}
		if _, ok := want["memory peak"]; !ok {
			want["memory peak"] = 0.0 // php-fpm 8.4's field, which 8.2 lacks
		}
		rec := fcgiGet(t, g.network, g.address, "/status", query)
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("gateway ?%s: %v\n%s", query, err, rec.Body)
		}
		compareShapes(t, "?"+query, jsonShape(want), jsonShape(got))
		if query == "json&full" {
			wp, gp := want["processes"].([]any), got["processes"].([]any)
			if len(gp) != 2 {
				t.Fatalf("?full lists %d workers, want 2", len(gp))
			}
			compareShapes(t, "?full process", jsonShape(wp[0].(map[string]any)), jsonShape(gp[0].(map[string]any)))
		}
		if got["accepted conn"].(float64) < 5 || got["total processes"].(float64) != 2 {
			t.Errorf("?%s numbers: %v", query, got)
		}
	}

	text := fcgiGet(t, g.network, g.address, "/status", "").Body.String()
	fpmText := fcgiGet(t, "unix", fpm, "/status", "").Body.String()
	if !strings.Contains(fpmText, "memory peak:") {
		fpmText += "memory peak:          0\n" // php-fpm 8.4's field, which 8.2 lacks
	}
	if fieldNames(text) != fieldNames(fpmText) {
		t.Errorf("text status fields differ from php-fpm's:\ngot  %s\nwant %s", fieldNames(text), fieldNames(fpmText))
	}

	checkMetrics(t, scrapeMetricsAt(t, g, "/status", ""), scrapeMetricsAt(t, g, "/status", "text/plain"))
}

// TestStatusPageNumbers checks the numbers, not only their names: a running request's row
// (method, URI, duration), a request waiting with every worker busy (listen queue, max children
// reached), the slow-request count, and the same numbers in the text and Prometheus formats.
func TestStatusPageNumbers(t *testing.T) {
	g := startGateway(t, gatewayConfig{workers: 1, args: []string{"--status-path", "/fcgi-status",
		"--pool-name", "site", "--slowlog-timeout", "200ms", "--queue-size", "5"}})
	status := func(query string) map[string]any {
		t.Helper()
		var m map[string]any
		rec := fcgiGet(t, g.network, g.address, "/fcgi-status", query)
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("?%s: %v\n%s", query, err, rec.Body)
		}
		return m
	}
	var wg sync.WaitGroup
	for _, q := range []string{"s=1.5", "s=0"} { // the second waits for the only worker
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := g.fcgiGet("/sleep", q); r.err != nil || r.status != 200 {
				t.Errorf("/sleep?%s: %d %v", q, r.status, r.err)
			}
		}()
		time.Sleep(300 * time.Millisecond)
	}
	s := status("json&full")
	want := map[string]any{"pool": "site", "process manager": "static", "listen queue": 1.0, "max listen queue": 1.0,
		"listen queue len": 5.0, "idle processes": 0.0, "active processes": 1.0, "total processes": 1.0,
		"max active processes": 1.0, "max children reached": 1.0, "slow requests": 1.0}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("while busy: %q is %v, want %v", k, s[k], v)
		}
	}
	procs := s["processes"].([]any)
	if len(procs) != 1 {
		t.Fatalf("processes: %v", procs)
	}
	p := procs[0].(map[string]any)
	if p["state"] != "Running" || p["request method"] != "GET" || p["request uri"] != "/sleep?s=1.5" ||
		p["request duration"].(float64) < 500e3 || p["last request memory"].(float64) < 1<<20 {
		t.Errorf("the running worker's row: %v", p)
	}
	if pids := g.workerPIDs(); len(pids) != 1 || float64(pids[0]) != p["pid"] {
		t.Errorf("row pid %v, worker pids %v", p["pid"], pids)
	}
	wg.Wait()

	s = status("json&full")
	p = s["processes"].([]any)[0].(map[string]any)
	if s["active processes"] != 0.0 || s["idle processes"] != 1.0 || s["listen queue"] != 0.0 ||
		p["state"] != "Idle" || p["requests"] != 2.0 || p["request duration"].(float64) <= 0 {
		t.Errorf("after: %v", s)
	}
	text := fcgiGet(t, g.network, g.address, "/fcgi-status", "").Body.String()
	for _, line := range []string{"pool:                 site\n", "max children reached: 1\n", "slow requests:        1\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("text status lacks %q:\n%s", line, text)
		}
	}
	metrics := scrapeMetricsAt(t, g, "/fcgi-status", "text/plain")
	for _, line := range []string{`wsgi_fcgi_max_children_reached_total{pool="site"} 1` + "\n", `wsgi_fcgi_total_processes{pool="site"} 1` + "\n"} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics)
		}
	}
}

func compareShapes(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, typ := range want {
		if got[k] != typ {
			t.Errorf("%s: field %q is %q, php-fpm's is %q", what, k, got[k], typ)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: field %q is not one of php-fpm's", what, k)
		}
	}
}

// fieldNames lists the "name:" fields of a text status page, in order.
func fieldNames(s string) string {
	var names []string
	for _, line := range strings.Split(s, "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "*") {
			names = append(names, strings.TrimSpace(k))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
