//go:build linux

// help.go: wsgi-fcgi --help (and wsgi-fcgi help): the commands, how values are written, and
// every flag under its heading with its placeholder and its default as a user writes it.

package main

import (
	"fmt"
	"io"
	"strings"
)

// helpWidth is the width --help wraps its text to.
const helpWidth = 80

// helpIntro is what --help prints before the flags.
const helpIntro = `Usage:
  wsgi-fcgi [flags]                      serve a WSGI app over FastCGI
  wsgi-fcgi -t [flags]                   check the settings and import the app, then
                                         exit 0 or 2; listens nowhere
  wsgi-fcgi probe [flags] ADDR [PATH]    send one request to a running gateway
                                         (health checks); wsgi-fcgi probe --help
  wsgi-fcgi version                      print the version
  wsgi-fcgi help                         print this help

Runs a Python WSGI app in long-lived worker processes behind a FastCGI web server
(nginx, Apache, Caddy). Every flag is also the environment variable WSGI_FCGI_NAME:
--max-body is WSGI_FCGI_MAX_BODY. A flag wins over the environment, the environment
over the default; the defaults below include the environment's values.

Values:
  DURATION  seconds (30, 1.5) or a duration with a unit (500ms, 30s, 1m30s)
  SIZE      bytes, or a number and a unit, all base 1024 (512k, 10MB, 100MiB, 1.5GiB)
  N         a whole number
  switch    alone it is on; --name=false turns it off (true/false, 1/0, yes/no, on/off)
`

// writeHelp writes the help for the settings set, grouped under their headings.
func writeHelp(w io.Writer, set []setting) {
	var b strings.Builder
	b.WriteString(helpIntro)
	for g := groupApp; g <= groupOther; g++ {
		heading := false
		for _, s := range set {
			if s.group != g {
				continue
			}
			if !heading {
				fmt.Fprintf(&b, "\n%s:\n", g)
				heading = true
			}
			writeSettingHelp(&b, s)
		}
	}
	io.WriteString(w, b.String())
}

// writeSettingHelp writes one setting: its flag and placeholder, then what it does and its
// default, wrapped and indented.
func writeSettingHelp(b *strings.Builder, s setting) {
	b.WriteString("  --" + s.name)
	if s.arg != "" {
		if _, isSwitch := asValue(s.value).(switchValue); isSwitch {
			b.WriteString("[=" + s.arg + "]")
		} else {
			b.WriteString(" " + s.arg)
		}
	}
	b.WriteString("\n")
	text := s.usage
	if d := helpDefault(s); d != "" {
		text += " (default: " + d + ")"
	}
	wrap(b, text, "      ", helpWidth)
}

// helpDefaulter is a value that writes its default for --help otherwise than String does.
type helpDefaulter interface{ helpDefault() string }

// helpDefault is the default --help shows for s: its current value as a user writes it, or,
// when that is unset, what the gateway does then.
func helpDefault(s setting) string {
	v := asValue(s.value)
	if h, ok := v.(helpDefaulter); ok {
		return h.helpDefault()
	}
	switch cur := v.String(); cur {
	case "", "0", "false":
		return s.def
	default:
		return cur
	}
}

// helpDefault says what --send-ahead does: how many requests per worker, or off.
func (a *SendAhead) helpDefault() string {
	if *a == 0 {
		return "false: off"
	}
	return fmt.Sprintf("true: %d requests per worker", int(*a))
}

// wrap writes text in lines of at most width, each starting with indent.
func wrap(b *strings.Builder, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
}
