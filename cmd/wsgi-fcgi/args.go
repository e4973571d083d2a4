//go:build linux

// args.go: the command line. Flags are --name VALUE, --name=VALUE, or a switch alone
// (--preload); one dash works too, -h or --help asks for the help, and -t is --check-config.
// A mistake is one line: the setting, the value, what it takes and an example, or for a flag
// that does not exist the nearest one.

package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// parseArgs sets the settings that args name and returns the arguments after the flags.
// given is called with the name of each setting set and its value as written. cmd names the command in the errors
// ("wsgi-fcgi", "wsgi-fcgi probe"). It returns errHelp for -h or --help.
func parseArgs(args []string, set []setting, cmd string, given func(name, value string)) ([]string, error) {
	byName := map[string]setting{}
	var names []string
	for _, s := range set {
		byName[s.name] = s
		names = append(names, s.name)
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return args[i+1:], nil
		}
		if len(arg) < 2 || arg[0] != '-' {
			return args[i:], nil
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
		if name == "h" || name == "help" {
			return nil, errHelp
		}
		if long := shortFlag(name); long != "" && byName[long].name != "" {
			name = long
		}
		s, ok := byName[name]
		if !ok {
			return nil, unknownFlag(arg, name, names, cmd)
		}
		v := asValue(s.value)
		_, isSwitch := v.(switchValue)
		switch {
		case hasValue:
		case isSwitch:
			value = "true"
			if i+1 < len(args) {
				// The next argument is not a flag, and none is expected: say how to write
				// what was meant.
				if next := args[i+1]; isDecimal(next) || isBoolWord(next) {
					return nil, fmt.Errorf("--%s %s: a switch takes its value after \"=\": --%s=%s", name, next, name, next)
				}
			}
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			want, example := v.accepts()
			if s.example != "" {
				example = s.example
			}
			return nil, fmt.Errorf("--%s needs a value: want %s; e.g. --%s %s", name, want, name, example)
		}
		if err := v.Set(value); err != nil {
			return nil, s.invalid(value, fromFlag, "", "")
		}
		if given != nil {
			given(s.name, value)
		}
	}
	return nil, nil
}

// unknownFlag is the error for a flag that does not exist: the nearest one, or the flag of
// the same use under the name another server gives it, and where to find them all.
func unknownFlag(arg, name string, names []string, cmd string) error {
	msg := fmt.Sprintf("unknown flag %s", arg)
	near := otherServerFlag(name)
	if !slices.Contains(names, near) {
		near = closest(name, names)
	}
	if near != "" {
		msg += ": did you mean --" + near + "?"
	}
	return errors.New(msg + " (" + cmd + " --help lists the flags)")
}

// shortFlag is the setting a one-letter flag stands for, as other servers spell it, or "":
// -t checks the configuration, as nginx -t and php-fpm -t do.
func shortFlag(name string) string {
	if name == "t" {
		return "check-config"
	}
	return ""
}

// isBoolWord reports whether s is a spelling of a switch's value.
func isBoolWord(s string) bool {
	_, ok := parseBool(s)
	return ok
}

// otherServerFlag is the setting for what gunicorn, uWSGI or php-fpm call name, or "".
func otherServerFlag(name string) string {
	switch name {
	case "b", "bind", "socket", "s", "http-socket", "listen-address":
		return "listen"
	case "w", "processes", "pm.max_children", "max-children":
		return "workers"
	case "graceful-timeout":
		return "drain-timeout"
	case "harakiri":
		return "timeout"
	case "access-logfile", "logto":
		return "access-log"
	case "loglevel", "log_level":
		return "log-level"
	case "module", "wsgi", "wsgi-file", "callable":
		return "app"
	case "virtualenv", "venv", "home", "H":
		return "python"
	case "max-requests-delta":
		return "max-requests-jitter"
	case "limit-post", "limit-request-body", "client-max-body-size":
		return "max-body"
	case "listen-backlog", "backlog":
		return "queue-size"
	}
	return ""
}

// closest returns the candidate nearest to s (case aside), or "" when none is near enough to
// be a typing mistake: at most 2 edits, or a third of the name. The shortest candidate s is a
// prefix of (s longer than 3) is nearest.
func closest(s string, candidates []string) string {
	s = strings.ToLower(s)
	var prefixed []string
	best, bestDist := "", -1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if len(s) > 3 && strings.HasPrefix(lc, s) {
			prefixed = append(prefixed, c)
		}
		d := editDistance(s, lc)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if len(prefixed) > 0 {
		shortest := prefixed[0]
		for _, c := range prefixed[1:] {
			if len(c) < len(shortest) {
				shortest = c
			}
		}
		return shortest
	}
	if bestDist >= 0 && (bestDist <= 2 || 3*bestDist <= len(s)) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, with a swap of two adjacent
// letters counted as one edit (wrokers is one edit from workers).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j]: the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
