//go:build linux

// config.go: the settings, read from WSGI_FCGI_* environment variables (envconfig) and then
// from flags, which win; the errors of both are one line naming the setting.

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"github.com/kelseyhightower/envconfig"

	"github.com/wsgi-fcgi/wsgi-fcgi/gateway"
	"github.com/wsgi-fcgi/wsgi-fcgi/pyrunner"
)

// envPrefix: every setting NAME is also the environment variable WSGI_FCGI_NAME.
const envPrefix = "WSGI_FCGI"

// runnerEnvPrefix starts the variables the gateway sets for its Python workers
// (pyrunner/PROTOCOL.md): not settings, and never an error in the gateway's environment.
const runnerEnvPrefix = envPrefix + "_RUNNER_"

// Config is every setting of the gateway. Each field's tag is its whole environment variable
// name, read by envconfig (with no prefix, so that envconfig never falls back to the bare
// name: DEBUG is not WSGI_FCGI_DEBUG), and its default; settings.go lists the flags.
type Config struct {
	App               string    `envconfig:"WSGI_FCGI_APP"`
	Chdir             string    `envconfig:"WSGI_FCGI_CHDIR"`
	PythonPath        string    `envconfig:"WSGI_FCGI_PYTHONPATH"`
	Python            string    `envconfig:"WSGI_FCGI_PYTHON" default:"python3"`
	Workers           int       `envconfig:"WSGI_FCGI_WORKERS"`
	Listen            string    `envconfig:"WSGI_FCGI_LISTEN" default:"127.0.0.1:9000"`
	Mount             string    `envconfig:"WSGI_FCGI_MOUNT"`
	ForwardedAllowIPs string    `envconfig:"WSGI_FCGI_FORWARDED_ALLOW_IPS"`
	HTTP              string    `envconfig:"WSGI_FCGI_HTTP"`
	PingPath          string    `envconfig:"WSGI_FCGI_PING_PATH"`
	StatusPath        string    `envconfig:"WSGI_FCGI_STATUS_PATH"`
	PoolName          string    `envconfig:"WSGI_FCGI_POOL_NAME"`
	Reload            Bool      `envconfig:"WSGI_FCGI_RELOAD"`
	TouchReload       string    `envconfig:"WSGI_FCGI_TOUCH_RELOAD"`
	AccessLog         string    `envconfig:"WSGI_FCGI_ACCESS_LOG"`
	AccessLogFormat   string    `envconfig:"WSGI_FCGI_ACCESS_LOG_FORMAT" default:"combined"`
	RequestIDHeader   Bool      `envconfig:"WSGI_FCGI_REQUEST_ID_HEADER"`
	MaxBody           ByteSize  `envconfig:"WSGI_FCGI_MAX_BODY" default:"1GiB"`
	QueueSize         int       `envconfig:"WSGI_FCGI_QUEUE_SIZE" default:"1024"`
	QueueTimeout      Duration  `envconfig:"WSGI_FCGI_QUEUE_TIMEOUT" default:"30s"`
	SendAhead         SendAhead `envconfig:"WSGI_FCGI_SEND_AHEAD" default:"true"`
	SchedBatch        Bool      `envconfig:"WSGI_FCGI_SCHED_BATCH"`
	Priority          Priority  `envconfig:"WSGI_FCGI_PRIORITY"`
	StartTimeout      Duration  `envconfig:"WSGI_FCGI_START_TIMEOUT" default:"60s"`
	DrainTimeout      Duration  `envconfig:"WSGI_FCGI_DRAIN_TIMEOUT" default:"30s"`
	PM                string    `envconfig:"WSGI_FCGI_PM" default:"static"`
	PMStart           int       `envconfig:"WSGI_FCGI_PM_START"`
	PMMinSpare        int       `envconfig:"WSGI_FCGI_PM_MIN_SPARE"`
	PMMaxSpare        int       `envconfig:"WSGI_FCGI_PM_MAX_SPARE"`
	PMIdleTimeout     Duration  `envconfig:"WSGI_FCGI_PM_IDLE_TIMEOUT" default:"10s"`
	MaxRequests       int       `envconfig:"WSGI_FCGI_MAX_REQUESTS"`
	MaxRequestsJitter int       `envconfig:"WSGI_FCGI_MAX_REQUESTS_JITTER"`
	MaxRSS            ByteSize  `envconfig:"WSGI_FCGI_MAX_RSS"`
	Timeout           Duration  `envconfig:"WSGI_FCGI_TIMEOUT"`
	SlowlogTimeout    Duration  `envconfig:"WSGI_FCGI_SLOWLOG_TIMEOUT"`
	SoftTimeout       Duration  `envconfig:"WSGI_FCGI_SOFT_TIMEOUT"`
	CancelGrace       Duration  `envconfig:"WSGI_FCGI_CANCEL_GRACE" default:"5s"`
	Preload           Bool      `envconfig:"WSGI_FCGI_PRELOAD"`
	Debug             Bool      `envconfig:"WSGI_FCGI_DEBUG"`
	Threads           int       `envconfig:"WSGI_FCGI_THREADS" default:"1"`
	WebServerAddrs    string    `envconfig:"WSGI_FCGI_WEB_SERVER_ADDRS"`
	SocketMode        string    `envconfig:"WSGI_FCGI_SOCKET_MODE" default:"0660"`
	SocketOwner       string    `envconfig:"WSGI_FCGI_SOCKET_OWNER"`
	SocketGroup       string    `envconfig:"WSGI_FCGI_SOCKET_GROUP"`
	MaxConns          int       `envconfig:"WSGI_FCGI_MAX_CONNS" default:"1000"`
	MaxConcurrent     int       `envconfig:"WSGI_FCGI_MAX_CONCURRENT_REQUESTS" default:"1000"`
	NoMultiplex       Bool      `envconfig:"WSGI_FCGI_NO_MULTIPLEX"`
	MaxParams         ByteSize  `envconfig:"WSGI_FCGI_MAX_PARAMS" default:"1MiB"`
	StallTimeout      Duration  `envconfig:"WSGI_FCGI_STALL_TIMEOUT" default:"30s"`
	MaxSpool          ByteSize  `envconfig:"WSGI_FCGI_MAX_SPOOL" default:"1GiB"`
	LogFormat         string    `envconfig:"WSGI_FCGI_LOG_FORMAT" default:"text"`
	LogLevel          string    `envconfig:"WSGI_FCGI_LOG_LEVEL" default:"info"`
	User              string    `envconfig:"WSGI_FCGI_USER"`
	Group             string    `envconfig:"WSGI_FCGI_GROUP"`
	PIDFile           string    `envconfig:"WSGI_FCGI_PID_FILE"`
	LogFile           string    `envconfig:"WSGI_FCGI_LOG_FILE"`

	showVersion Bool
	checkConfig Bool              // --check-config, -t
	listenSet   bool              // --listen was given: served besides inherited sockets
	given       map[string]origin // the settings set by a flag or a variable, by name
	raw         map[string]string // the value each of those was given, as written
}

// origin is where a setting's value came from.
type origin int

const (
	fromDefault origin = iota
	fromEnv
	fromFlag
)

// envName is the environment variable of the setting --name.
func envName(name string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// errHelp: --help was asked for.
var errHelp = errors.New("help requested")

// loadConfig reads the WSGI_FCGI_* environment variables, then the flags in args. On
// errHelp the Config holds the environment's values, for the help to show.
func loadConfig(args []string) (*Config, error) {
	c := &Config{given: map[string]origin{}, raw: map[string]string{}}
	set := settings(c)
	if err := checkEnvNames(os.Environ(), set); err != nil {
		return nil, err
	}
	if err := envconfig.Process("", c); err != nil {
		return nil, envError(err, set)
	}
	for _, s := range set {
		if v, ok := os.LookupEnv(envName(s.name)); ok && !s.noEnv {
			c.given[s.name], c.raw[s.name] = fromEnv, v
		}
	}
	rest, err := parseArgs(args, set, "wsgi-fcgi", func(name, value string) {
		c.given[name], c.raw[name] = fromFlag, value
	})
	if err != nil {
		return c, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q: name the app with --app %s; the commands are probe, version and help (see wsgi-fcgi --help)", rest[0], rest[0])
	}
	return c, c.validate()
}

// checkEnvNames refuses a WSGI_FCGI_* variable in environ that names no setting.
func checkEnvNames(environ []string, set []setting) error {
	known := map[string]bool{}
	var names []string // without the prefix
	for _, s := range set {
		if !s.noEnv {
			known[envName(s.name)] = true
			names = append(names, strings.TrimPrefix(envName(s.name), envPrefix+"_"))
		}
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix+"_") || strings.HasPrefix(k, runnerEnvPrefix) || known[k] {
			continue
		}
		msg := fmt.Sprintf("%s=%q: no such setting", k, v)
		if near := closest(strings.TrimPrefix(k, envPrefix+"_"), names); near != "" {
			msg += "; did you mean " + envPrefix + "_" + near + "?"
		}
		return errors.New(msg + " (wsgi-fcgi --help lists the settings; every --name is " + envPrefix + "_NAME)")
	}
	return nil
}

// envError makes envconfig's error one line naming the setting, or returns it as it is.
func envError(err error, set []setting) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("environment: %w", err)
	}
	for _, s := range set {
		if envName(s.name) == pe.KeyName {
			return s.invalid(pe.Value, fromEnv, "", "")
		}
	}
	return fmt.Errorf("%s=%q: %w", pe.KeyName, pe.Value, pe.Err)
}

// valueError is a setting's value refused: one line naming the flag, its variable, the value,
// what is accepted and an example.
type valueError struct {
	name    string // the flag, without --
	noEnv   bool   // the flag has no variable
	from    origin // fromEnv: the variable's value
	value   string
	want    string
	example string
	isBool  bool // the flag's example is --name=value
}

func (e *valueError) Error() string {
	env := envName(e.name)
	if e.from == fromEnv {
		return fmt.Sprintf("%s=%q (--%s): want %s; e.g. %s=%s", env, e.value, e.name, e.want, env, e.example)
	}
	also := ""
	if !e.noEnv {
		also = " (" + env + ")"
	}
	sep := " "
	if e.isBool {
		sep = "="
	}
	return fmt.Sprintf("--%s %q%s: want %s; e.g. --%s%s%s", e.name, e.value, also, e.want, e.name, sep, e.example)
}

// invalid is the error for value of s, from where it came; want and example default to what
// the value's kind accepts and the setting's example.
func (s setting) invalid(value string, from origin, want, example string) error {
	v := asValue(s.value)
	kindWant, kindExample := v.accepts()
	if want == "" {
		want = kindWant
	}
	if example == "" {
		example = s.example
	}
	if example == "" {
		example = kindExample
	}
	_, isBool := v.(switchValue)
	return &valueError{name: s.name, noEnv: s.noEnv, from: from, value: value, want: want, example: example, isBool: isBool}
}

// invalid is the error for the value of the setting --name, which validate refused: the
// value as it was written, or its current one.
func (c *Config) invalid(name, want string) error {
	return c.invalidValue(name, "", want)
}

// invalidValue is the error for value, part of the value of the setting --name (one of the
// addresses of --listen), which validate refused; "" is the whole value.
func (c *Config) invalidValue(name, value, want string) error {
	for _, s := range settings(c) {
		if s.name != name {
			continue
		}
		if value == "" {
			var ok bool
			if value, ok = c.raw[name]; !ok {
				value = asValue(s.value).String()
			}
		}
		return s.invalid(value, c.given[name], want, "")
	}
	panic("no setting --" + name)
}

// validate checks the settings and fills the defaults that depend on the machine.
func (c *Config) validate() error {
	if c.Workers < 0 {
		return c.invalid("workers", "a number of workers from 1 up, or 0 for one per CPU")
	}
	if c.Workers == 0 {
		c.Workers = availableCPUs()
	}
	if strings.TrimSpace(c.Listen) == "" {
		return c.invalid("listen", "an address: host:port, [::1]:port, /path/to.sock or unix:PATH")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return c.invalid("log-format", "text or json")
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		return c.invalid("log-level", "trace, debug, info, warn or error")
	}
	if _, err := gateway.ParseAccessLogFormat(c.AccessLogFormat); err != nil {
		return c.invalid("access-log-format", "combined, json, json:FIELD,FIELD... or a template of {FIELD}s ("+errText(err)+")")
	}
	if c.PingPath != "" && !strings.HasPrefix(c.PingPath, "/") {
		return c.invalid("ping-path", "a path that starts with /")
	}
	if c.StatusPath != "" && !strings.HasPrefix(c.StatusPath, "/") {
		return c.invalid("status-path", "a path that starts with /")
	}
	if c.StatusPath != "" && c.StatusPath == c.PingPath {
		return c.invalid("status-path", "a path other than --ping-path's")
	}
	if _, err := gateway.ParseTrustedProxies(c.ForwardedAllowIPs); err != nil {
		return c.invalid("forwarded-allow-ips", "comma-separated IP addresses and CIDR prefixes, or *")
	}
	if _, err := pyrunner.ParseMode(c.PM); err != nil {
		return c.invalid("pm", "static, dynamic or ondemand")
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"pm-start", c.PMStart}, {"pm-min-spare", c.PMMinSpare}, {"pm-max-spare", c.PMMaxSpare}, {"max-requests", c.MaxRequests}, {"max-requests-jitter", c.MaxRequestsJitter}, {"queue-size", c.QueueSize}} {
		if v.n < 0 {
			return c.invalid(v.name, "a whole number, 0 or more")
		}
	}
	if c.Threads < 1 || c.Threads > 256 {
		return c.invalid("threads", "1 to 256")
	}
	if c.Preload && c.Threads > pyrunner.MaxPreloadThreads {
		// A preload master gets a worker's descriptors in one SCM_RIGHTS message (at most
		// 253 descriptors): two per channel and the stack pipe.
		return c.invalid("threads", fmt.Sprintf("1 to %d with --preload", pyrunner.MaxPreloadThreads))
	}
	if c.PMMinSpare > 0 && c.PMMaxSpare > 0 && c.PMMinSpare > c.PMMaxSpare {
		return c.invalid("pm-min-spare", fmt.Sprintf("at most --pm-max-spare (%d)", c.PMMaxSpare))
	}
	if c.CancelGrace <= 0 {
		return c.invalid("cancel-grace", "a duration above 0")
	}
	if c.MaxConns < 1 {
		return c.invalid("max-conns", "1 or more")
	}
	if c.MaxConcurrent < 1 {
		return c.invalid("max-concurrent-requests", "1 or more")
	}
	if c.MaxParams < 1024 {
		return c.invalid("max-params", "a size of 1KiB or more")
	}
	if c.MaxSpool < 1 {
		return c.invalid("max-spool", "a size of 1 byte or more")
	}
	if !validAppSpec(c.App) {
		return c.invalid("app", "module:callable, as a Python import name (not a file path), or module alone for module:application")
	}
	if c.Chdir != "" {
		abs, err := filepath.Abs(c.Chdir)
		if err != nil {
			return c.invalid("chdir", "an existing directory")
		}
		st, err := os.Stat(abs)
		switch {
		case err != nil && os.IsNotExist(err):
			return c.invalid("chdir", "an existing directory (this one does not exist)")
		case err != nil:
			return c.invalid("chdir", "a directory the gateway can reach ("+errText(err)+")")
		case !st.IsDir():
			return c.invalid("chdir", "a directory (this is not one)")
		}
		c.Chdir = abs
	}
	return nil
}

// validAppSpec reports whether spec is "" (the demo app) or module[:callable] as the runner
// reads it: a dotted module name, and a dotted attribute path of identifiers.
func validAppSpec(spec string) bool {
	if spec == "" {
		return true
	}
	module, attr, hasAttr := strings.Cut(spec, ":")
	if hasAttr && attr == "" {
		return false
	}
	return dottedIdentifiers(module) && (!hasAttr || dottedIdentifiers(attr))
}

// dottedIdentifiers reports whether s is Python identifiers joined by dots.
func dottedIdentifiers(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
				return false
			}
		}
	}
	return true
}

// errText is an error's innermost message: "permission denied", not the whole chain.
func errText(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
