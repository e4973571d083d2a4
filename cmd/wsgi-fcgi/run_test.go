//go:build linux

package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs the program with args and a cancelled context (so that nothing it starts by
// mistake serves on) and returns its exit status and output.
func runCmd(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	clearSettingsEnv(t)
	t.Setenv(envPrefix+"_LISTEN", "127.0.0.1:0") // as in configure: never the machine's 9000
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunConfigErrors: a bad setting, flag or variable ends the program with exit status 2
// and one line on standard error, before anything starts.
func TestRunConfigErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"duration flag", []string{"--timeout", "30x"}, nil, `--timeout "30x" (WSGI_FCGI_TIMEOUT): want seconds`},
		{"duration variable", nil, map[string]string{"WSGI_FCGI_TIMEOUT": "30x"}, `WSGI_FCGI_TIMEOUT="30x" (--timeout): want seconds`},
		{"size variable", nil, map[string]string{"WSGI_FCGI_MAX_BODY": "lots"}, `WSGI_FCGI_MAX_BODY="lots" (--max-body)`},
		{"int variable", nil, map[string]string{"WSGI_FCGI_WORKERS": "four"}, `WSGI_FCGI_WORKERS="four" (--workers): want a whole number; e.g. WSGI_FCGI_WORKERS=4`},
		{"switch variable", nil, map[string]string{"WSGI_FCGI_PRELOAD": "maybe"}, `WSGI_FCGI_PRELOAD="maybe" (--preload): want true, false, 1, 0, yes, no, on or off`},
		{"unknown flag", []string{"--wrokers", "4"}, nil, "unknown flag --wrokers: did you mean --workers? (wsgi-fcgi --help lists the flags)"},
		{"unknown variable", nil, map[string]string{"WSGI_FCGI_WORKRES": "4"}, "did you mean WSGI_FCGI_WORKERS?"},
		{"stray argument", []string{"mysite.wsgi:application"}, nil, "--app mysite.wsgi:application"},
		{"listen in use", []string{"--listen", busy.Addr().String()}, nil, "address already in use"},
		{"python missing", []string{"--python", "/nonexistent/python3"}, nil, `--python "/nonexistent/python3"`},
		{"socket owner", []string{"--socket-owner", "no-such-user-here"}, nil, `--socket-owner "no-such-user-here"`},
		{"access log directory", []string{"--access-log", "/nonexistent/dir/access.log"}, nil, "/nonexistent/dir does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args, tc.env)
			if code != exitConfig {
				t.Errorf("exit status %d, want %d", code, exitConfig)
			}
			if stdout != "" {
				t.Errorf("standard output: %q", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "wsgi-fcgi: ") {
				t.Errorf("standard error is not one line: %q", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("standard error %q does not say %q", stderr, tc.want)
			}
		})
	}
}

// TestHelp: --help, -h and the help command print every flag with --, under its heading in
// order, with the placeholder of its kind and its default as a user writes it, and the
// commands.
func TestHelp(t *testing.T) {
	var first string
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--workers", "2", "--help"}} {
		code, stdout, stderr := runCmd(t, args, nil)
		if code != exitOK || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if first == "" {
			first = stdout
		} else if args[0] != "--workers" && stdout != first {
			t.Errorf("%v prints another help than --help", args)
		}
	}
	help := first
	flat := strings.Join(strings.Fields(help), " ") // the text without its wrapping
	for _, want := range []string{
		"wsgi-fcgi probe [flags] ADDR [PATH]", "wsgi-fcgi version", "wsgi-fcgi help",
		"all base 1024",
		"  --drain-timeout DURATION\n", "(default: 30s)",
		"  --max-body SIZE\n", "(default: 1GiB)",
		"  --send-ahead[=N]\n", "(default: true: 2 requests per worker)",
		"  --preload\n",
	} {
		if !strings.Contains(help, want) && !strings.Contains(flat, want) {
			t.Errorf("--help does not say %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)^\s+-[a-z]`).FindString(help); m != "" {
		t.Errorf("--help shows a flag with one dash: %q", m)
	}
	// Headings in order, each setting under its own.
	pos := -1
	for g := groupApp; g <= groupOther; g++ {
		i := strings.Index(help, "\n"+g.String()+":\n")
		if i < pos {
			t.Errorf("heading %q missing or out of order", g)
		}
		pos = i
	}
	for _, s := range settings(&Config{}) {
		line := "\n  --" + s.name
		i := strings.Index(help, line)
		if i < 0 {
			t.Errorf("--help does not list --%s", s.name)
			continue
		}
		if h := lastHeading(help[:i]); h != s.group.String() {
			t.Errorf("--%s is under %q, want %q", s.name, h, s.group)
		}
	}
}

// lastHeading is the last "Heading:" line of help.
func lastHeading(help string) string {
	lines := strings.Split(help, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; l != "" && !strings.HasPrefix(l, " ") && strings.HasSuffix(l, ":") {
			return strings.TrimSuffix(l, ":")
		}
	}
	return ""
}

// TestHelpPlaceholders: the settings of one kind share a placeholder, and a switch has none,
// so that --help reads the same all the way down.
func TestHelpPlaceholders(t *testing.T) {
	for _, s := range settings(&Config{}) {
		var want string
		switch s.value.(type) {
		case *Duration:
			want = argDuration
		case *ByteSize:
			want = argSize
		case *int:
			want = argN
		case *Bool:
			want = ""
		default:
			continue
		}
		if s.arg != want {
			t.Errorf("--%s: placeholder %q, want %q", s.name, s.arg, want)
		}
	}
}

// TestHelpShowsEnvironment: the defaults --help shows are the environment's values.
func TestHelpShowsEnvironment(t *testing.T) {
	_, stdout, _ := runCmd(t, []string{"--help"}, map[string]string{"WSGI_FCGI_TIMEOUT": "45", "WSGI_FCGI_MAX_RSS": "1.5GiB"})
	flat := strings.Join(strings.Fields(stdout), " ")
	for _, want := range []string{"(default: 45s)", "(default: 1536MiB)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("--help does not show %q", want)
		}
	}
}

// TestCommands: version and --version print the version; probe --help and help probe print
// the probe's usage with its flags; a probe mistake is one line and exit status 2.
func TestCommands(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := runCmd(t, args, nil)
		if code != exitOK || stdout != versionLine()+"\n" {
			t.Errorf("%v: exit %d, %q; want %q", args, code, stdout, versionLine())
		}
	}
	for _, args := range [][]string{{"probe", "--help"}, {"probe", "-h"}, {"help", "probe"}} {
		code, stdout, _ := runCmd(t, args, nil)
		if code != exitOK || !strings.Contains(stdout, "Usage: wsgi-fcgi probe") || !strings.Contains(stdout, "  --timeout DURATION\n") || !strings.Contains(stdout, "  --host HOST\n") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"probe", "--tmeout", "1", "127.0.0.1:9000"}, "did you mean --timeout?"},
		{[]string{"probe", "--timeout", "soon", "127.0.0.1:9000"}, `--timeout "soon": want seconds`},
		{[]string{"probe"}, "Usage: wsgi-fcgi probe"},
	} {
		code, _, stderr := runCmd(t, tc.args, nil)
		if code != exitConfig || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}
