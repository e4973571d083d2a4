//go:build linux

// warnings.go: the warnings logged once at start, when the listeners are open and before the
// gateway says it is listening: settings that do nothing in the chosen mode, settings changed
// to fit, and settings that are risky.

package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// startState is what the warnings look at besides the settings.
type startState struct {
	listeners []net.Addr // every address the gateway serves
	euid      int        // the gateway's effective user id (after --user), which the workers inherit
	specAddrs string     // FCGI_WEB_SERVER_ADDRS
}

// startWarnings returns the warnings that c deserves, one line each.
func startWarnings(c *Config, st startState) []string {
	var out []string
	warn := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	mode, _ := pyrunner.ParseMode(c.PM) // checked by validate

	// Settings of one pool mode given under another.
	for _, pm := range []struct {
		name string
		for_ pyrunner.Mode
	}{{"pm-start", pyrunner.Dynamic}, {"pm-min-spare", pyrunner.Dynamic}, {"pm-max-spare", pyrunner.Dynamic}, {"pm-idle-timeout", pyrunner.Ondemand}} {
		if c.given[pm.name] != fromDefault && mode != pm.for_ {
			warn("--%s does nothing under --pm %s: it is for --pm %s", pm.name, c.PM, pm.for_)
		}
	}
	if c.given["send-ahead"] != fromDefault && c.SendAhead != 0 && mode != pyrunner.Static {
		warn("--send-ahead does nothing under --pm %s: requests are sent ahead in a static pool only", c.PM)
	}
	if mode == pyrunner.Dynamic {
		out = append(out, dynamicClamps(c)...)
	}
	if (c.given["socket-mode"] != fromDefault || c.given["socket-owner"] != fromDefault || c.given["socket-group"] != fromDefault) && !hasUnixListener(st.listeners) {
		warn("--socket-mode, --socket-owner and --socket-group do nothing: --listen makes no unix socket")
	}
	if c.Group != "" && c.User == "" {
		warn("--group does nothing without --user")
	}
	for _, dir := range strings.Split(c.PythonPath, ":") {
		if _, err := os.Stat(dir); dir != "" && err != nil {
			warn("--pythonpath: %s: %s", dir, errText(err))
		}
	}

	// Risky settings.
	if c.WebServerAddrs == "" && st.specAddrs == "" {
		for _, a := range st.listeners {
			if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
				warn("FastCGI on every interface (%s): whoever reaches this port can send requests as the web server; listen on 127.0.0.1 or a unix socket, or name the web server with --web-server-addrs", a)
			}
		}
	}
	if host, _, err := net.SplitHostPort(c.HTTP); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		warn("--http %s: the development HTTP front end is on every interface", c.HTTP)
	}
	for _, f := range splitList(c.ForwardedAllowIPs) {
		if f == "*" {
			warn("--forwarded-allow-ips '*': any client that reaches the gateway may set X-Forwarded-For, -Proto and -Host; name the proxies' addresses instead")
			break
		}
	}
	if c.Debug {
		warn("--debug: an app's traceback goes to the client in the 500 body; for development only")
	}
	return out
}

// rootWarning is the warning for a gateway whose workers would run as root (euid 0 once
// --user has taken effect), or "". It is logged before any Python starts, so that app code
// never runs as root unannounced. --user root (or 0) says it on purpose: no warning.
func rootWarning(c *Config, euid int) string {
	if euid != 0 || c.User != "" {
		return ""
	}
	return "the gateway and its workers run as root: name an unprivileged user with --user (e.g. --user www-data), which they switch to once the sockets are bound, or start it as one (systemd's User=, a container's USER)"
}

// dynamicClamps returns a warning for each dynamic pool setting that the pool changes to fit
// the others, as pyrunner's Options.fill does.
func dynamicClamps(c *Config) []string {
	var out []string
	minSpare, maxSpare := c.PMMinSpare, c.PMMaxSpare
	if minSpare <= 0 {
		minSpare = 1
	}
	if maxSpare <= 0 {
		maxSpare = max(1, c.Workers/2)
	}
	if fit := min(max(maxSpare, minSpare), c.Workers); c.PMMaxSpare > 0 && fit != c.PMMaxSpare {
		out = append(out, fmt.Sprintf("--pm-max-spare %d is above --workers %d: the pool keeps at most %d idle", c.PMMaxSpare, c.Workers, fit))
		maxSpare = fit
	}
	maxSpare = min(max(maxSpare, minSpare), c.Workers)
	if fit := min(minSpare, maxSpare); c.PMMinSpare > 0 && fit != c.PMMinSpare {
		out = append(out, fmt.Sprintf("--pm-min-spare %d is above --workers %d: the pool keeps %d idle", c.PMMinSpare, c.Workers, fit))
	}
	minSpare = min(minSpare, maxSpare)
	if c.PMStart > 0 {
		if fit := min(max(c.PMStart, minSpare), c.Workers); fit != c.PMStart {
			out = append(out, fmt.Sprintf("--pm-start %d is outside %d (the spare minimum) to %d (--workers): %d workers start", c.PMStart, minSpare, c.Workers, fit))
		}
	}
	return out
}

func hasUnixListener(addrs []net.Addr) bool {
	for _, a := range addrs {
		if a.Network() == "unix" {
			return true
		}
	}
	return false
}
