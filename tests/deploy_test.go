//go:build integration

// The container recipes (deploy/docker, deploy/kubernetes) with no Docker engine or cluster:
// their files are checked (every WSGI_FCGI_* is a real setting, paths agree, the manifest
// lints) and their configuration runs here for real — the gateway with the same environment,
// nginx with the same config, and the same health-check commands.

package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// knownSettings is the set of NAME for which WSGI_FCGI_NAME is a setting: the flags --help lists.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(gatewayBin, "--help").CombinedOutput()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		known[strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if !known["LISTEN"] || !known["APP"] {
		t.Fatalf("cannot read the settings from --help:\n%s", out)
	}
	return known
}

func checkSettings(t *testing.T, where string, env map[string]string, known map[string]bool) {
	t.Helper()
	for k := range env {
		name, ok := strings.CutPrefix(k, "WSGI_FCGI_")
		if ok && !known[name] {
			t.Errorf("%s sets %s, which is not a wsgi-fcgi setting", where, k)
		}
	}
}

// demoAppDir is a directory holding the demo app, as the image's /srv/app does.
func demoAppDir(t *testing.T) string {
	t.Helper()
	dir := shortTempDir(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(), "cmd/wsgi-fcgi/demo/wsgi_fcgi_demo.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wsgi_fcgi_demo.py"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runRecipeGateway starts the binary with env (a recipe's WSGI_FCGI_* settings) and waits for
// it on network/address.
func runRecipeGateway(t *testing.T, env map[string]string, network, address string) *process {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	cmd := exec.Command(gatewayBin)
	cmd.Env = gatewayEnv(kv)
	p := startProcess(t, "gateway", cmd)
	if err := waitDial(p, network, address, startTimeout); err != nil {
		t.Fatalf("gateway with the recipe's environment: %v\n%s", err, p.stderr.String())
	}
	return p
}

// runProbeCommand runs a recipe's probe command line, with the binary and address replaced.
func runProbeCommand(t *testing.T, argv []string, replace map[string]string) {
	t.Helper()
	if len(argv) < 2 || argv[0] != "wsgi-fcgi" || argv[1] != "probe" {
		t.Fatalf("health check %q is not a wsgi-fcgi probe", argv)
	}
	args := append([]string(nil), argv[1:]...)
	for i, a := range args {
		if r, ok := replace[a]; ok {
			args[i] = r
		}
	}
	out, err := exec.Command(gatewayBin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("health check %q: %v\n%s", argv, err, out)
	}
}

func TestDockerRecipe(t *testing.T) {
	needPythonFlask(t)
	f, err := os.Open(filepath.Join(repoRoot(), "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The final stage's instructions, continuation lines joined.
	instr := map[string][]string{}
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line += strings.TrimSuffix(text, "\\") + " "
			continue
		}
		line += text
		word, rest, _ := strings.Cut(line, " ")
		if word == "FROM" {
			instr = map[string][]string{}
		}
		instr[word] = append(instr[word], strings.TrimSpace(rest))
		line = ""
	}
	env := map[string]string{}
	for _, e := range instr["ENV"] {
		for _, m := range regexp.MustCompile(`(\w+)=(\S+)`).FindAllStringSubmatch(e, -1) {
			env[m[1]] = m[2]
		}
	}
	checkSettings(t, "Dockerfile ENV", env, knownSettings(t))
	if u := strings.Join(instr["USER"], ""); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("USER %q: the image must not run as root", u)
	}
	if got := strings.Join(instr["STOPSIGNAL"], ""); got != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q, want SIGTERM (the gateway drains on it)", got)
	}
	if got := strings.Join(instr["ENTRYPOINT"], ""); got != `["wsgi-fcgi"]` {
		t.Errorf("ENTRYPOINT %s", got)
	}
	if d, err := time.ParseDuration(env["WSGI_FCGI_DRAIN_TIMEOUT"]); err != nil || d >= 30*time.Second {
		t.Errorf("WSGI_FCGI_DRAIN_TIMEOUT %q must be under docker stop's 30 s", env["WSGI_FCGI_DRAIN_TIMEOUT"])
	}
	hc := strings.Join(instr["HEALTHCHECK"], " ")
	_, cmdJSON, ok := strings.Cut(hc, "CMD ")
	var argv []string
	if !ok || json.Unmarshal([]byte(cmdJSON), &argv) != nil {
		t.Fatalf("HEALTHCHECK %q: want CMD [\"wsgi-fcgi\", \"probe\", ...]", hc)
	}

	// The image's configuration, outside a container: only paths and the port differ.
	imageListen := env["WSGI_FCGI_LISTEN"]
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp4", "127.0.0.1"))
	env["WSGI_FCGI_CHDIR"] = demoAppDir(t)
	env["WSGI_FCGI_PYTHON"] = systemPython
	env["WSGI_FCGI_LISTEN"] = addr
	p := runRecipeGateway(t, env, "tcp", addr)
	probeAddr := strings.Replace(imageListen, "0.0.0.0", "127.0.0.1", 1)
	runProbeCommand(t, argv, map[string]string{probeAddr: addr})
	// JSON logs, as the image asks.
	for _, l := range nonEmptyLines(p.stderr.String()) {
		if !json.Valid([]byte(l)) {
			t.Errorf("log line is not JSON: %q", l)
		}
	}
}

func TestKubernetesRecipe(t *testing.T) {
	needPythonFlask(t)
	manifest := filepath.Join(repoRoot(), "deploy/kubernetes/wsgi-fcgi.yaml")
	lint, err := exec.LookPath("yamllint")
	if err != nil {
		missingTool(t, "yamllint (Debian package yamllint): %v", err)
	}
	if out, err := exec.Command(lint, "-d", "{extends: default, rules: {line-length: {max: 120}}}", manifest).CombinedOutput(); err != nil {
		t.Errorf("yamllint: %v\n%s", err, out)
	}
	out, err := exec.Command(systemPython, "-c",
		"import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", manifest).CombinedOutput()
	if err != nil {
		missingTool(t, "parse the manifest with python3-yaml: %v\n%s", err, out)
	}
	var docs []struct {
		Kind string
		Data map[string]string
		Spec struct {
			Template struct {
				Spec struct {
					Containers                    []json.RawMessage
					TerminationGracePeriodSeconds int `json:"terminationGracePeriodSeconds"`
				}
			}
		}
	}
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	kinds := map[string]int{}
	var nginxConf string
	var app, web map[string]any
	var grace int
	for _, d := range docs {
		kinds[d.Kind]++
		if d.Kind == "ConfigMap" {
			nginxConf = d.Data["default.conf"]
		}
		if d.Kind == "Deployment" {
			grace = d.Spec.Template.Spec.TerminationGracePeriodSeconds
			for _, raw := range d.Spec.Template.Spec.Containers {
				var c map[string]any
				json.Unmarshal(raw, &c)
				switch c["name"] {
				case "app":
					app = c
				case "nginx":
					web = c
				}
			}
		}
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"} {
		if kinds[k] != 1 {
			t.Errorf("want one %s, found %d", k, kinds[k])
		}
	}
	if app == nil || web == nil || nginxConf == "" {
		t.Fatalf("want containers app and nginx and the nginx ConfigMap")
	}
	env := map[string]string{}
	for _, e := range app["env"].([]any) {
		m := e.(map[string]any)
		env[m["name"].(string)] = fmt.Sprint(m["value"])
	}
	checkSettings(t, "the app container's env", env, knownSettings(t))
	sock := env["WSGI_FCGI_LISTEN"]
	if !strings.Contains(nginxConf, "server unix:"+sock+";") {
		t.Errorf("nginx's upstream does not name the gateway's socket %s", sock)
	}
	mounted := func(c map[string]any, dir string) bool {
		for _, vm := range c["volumeMounts"].([]any) {
			if vm.(map[string]any)["mountPath"] == dir {
				return true
			}
		}
		return false
	}
	if !mounted(app, filepath.Dir(sock)) || !mounted(web, filepath.Dir(sock)) {
		t.Errorf("the socket's directory %s must be a volume both containers mount", filepath.Dir(sock))
	}
	if d, err := time.ParseDuration(env["WSGI_FCGI_DRAIN_TIMEOUT"]); err != nil || d >= time.Duration(grace)*time.Second {
		t.Errorf("WSGI_FCGI_DRAIN_TIMEOUT %q must be under terminationGracePeriodSeconds %d", env["WSGI_FCGI_DRAIN_TIMEOUT"], grace)
	}
	var probes [][]string
	for _, name := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		p, _ := app[name].(map[string]any)
		ex, _ := p["exec"].(map[string]any)
		var argv []string
		for _, a := range ex["command"].([]any) {
			argv = append(argv, a.(string))
		}
		probes = append(probes, argv)
	}

	// The pod's configuration, outside a cluster: the gateway with the container's env, nginx
	// with the ConfigMap's server block, the probes as the kubelet would run them.
	localSock := filepath.Join(shortTempDir(t), "app.sock")
	env["WSGI_FCGI_LISTEN"] = localSock
	env["WSGI_FCGI_CHDIR"] = demoAppDir(t)
	env["WSGI_FCGI_PYTHON"] = systemPython
	runRecipeGateway(t, env, "unix", localSock)
	for _, argv := range probes {
		runProbeCommand(t, argv, map[string]string{sock: localSock})
	}
	port := freePort(t, "tcp4", "127.0.0.1")
	site := strings.NewReplacer("unix:"+sock, "unix:"+localSock, "listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port)).Replace(nginxConf)
	n := startNginxConf(t, site, port)
	r := n.mustGet(t, "/fcgi-ping", 200)
	if string(r.body) != "pong\n" {
		t.Errorf("ping through the pod's nginx config: %q", r.body)
	}
	n.mustGet(t, "/", 200)
}
