// version.go: the version --version prints, read from the build.

package main

import (
	"runtime/debug"
	"strings"
)

// version is the gateway's version. A packager may set it with
// -ldflags "-X main.version=v1.2.3"; otherwise init reads it from the build.
var version string

func init() {
	if version == "" {
		bi, _ := debug.ReadBuildInfo()
		version = moduleVersion(bi)
	}
}

// moduleVersion is the main module's version as the go command recorded it: v1.2.3 after
// go install ...@v1.2.3, a pseudo-version after go build in a git checkout, "(devel)" when
// the build knows none (go run, or no build information).
func moduleVersion(bi *debug.BuildInfo) string {
	if bi == nil || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

// versionLine is what --version prints.
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion writes "wsgi-fcgi VERSION", followed by the commit and whether the working
// tree had changes when the build recorded them (vcs.revision, vcs.modified):
//
//	wsgi-fcgi v1.2.3
//	wsgi-fcgi v0.0.0-20260101120000-0123456789ab+dirty (revision 0123456789ab..., modified)
func formatVersion(v string, bi *debug.BuildInfo) string {
	var revision string
	var modified bool
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	var b strings.Builder
	b.WriteString("wsgi-fcgi ")
	b.WriteString(v)
	if revision != "" {
		b.WriteString(" (revision ")
		b.WriteString(revision)
		if modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	return b.String()
}
