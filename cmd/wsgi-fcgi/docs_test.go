package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// configDoc is the page that documents every setting.
var configDoc = filepath.Join("..", "..", "docs", "configuration.md")

// docRow is one flag's row of a table in docs/configuration.md.
type docRow struct {
	line int
	env  string // the environment column: WSGI_FCGI_NAME, or "" for a flag without one
}

var (
	docFlagCell = regexp.MustCompile("^`--([a-z0-9-]+)`$")
	docEnvCell  = regexp.MustCompile("^`(" + envPrefix + "_[A-Z0-9_]+)`$")
)

// readConfigDoc returns the rows of docs/configuration.md whose first cell is a flag
// ("| `--max-body` | `WSGI_FCGI_MAX_BODY` | ... |"), by flag name.
func readConfigDoc(t *testing.T) map[string]docRow {
	t.Helper()
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]docRow{}
	for i, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			t.Errorf("%s:%d: want the columns flag, environment, default, meaning: %q", configDoc, i+1, line)
			continue
		}
		m := docFlagCell.FindStringSubmatch(strings.TrimSpace(cells[0]))
		if m == nil {
			t.Errorf("%s:%d: want one flag in the first column, as `--name`: %q", configDoc, i+1, cells[0])
			continue
		}
		name := m[1]
		if prev, ok := rows[name]; ok {
			t.Errorf("%s:%d: --%s is documented twice (also line %d)", configDoc, i+1, name, prev.line)
		}
		row := docRow{line: i + 1}
		if env := strings.TrimSpace(cells[1]); env != "—" && env != "" {
			e := docEnvCell.FindStringSubmatch(env)
			if e == nil {
				t.Errorf("%s:%d: --%s: want the environment column as `%s_NAME` or —: %q", configDoc, i+1, name, envPrefix, env)
			} else {
				row.env = e[1]
			}
		}
		rows[name] = row
	}
	return rows
}

// configEnvNames is every environment variable Config reads (its envconfig tags).
func configEnvNames() map[string]bool {
	names := map[string]bool{}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("envconfig"); tag != "" {
			names[tag] = true
		}
	}
	return names
}

// TestConfigurationDoc: docs/configuration.md has one row for every flag settings defines,
// none for a flag that does not exist, and names each flag's environment variable as
// envconfig reads it.
func TestConfigurationDoc(t *testing.T) {
	rows := readConfigDoc(t)
	defined := map[string]bool{}
	for _, s := range settings(&Config{}) {
		defined[s.name] = true
		if _, ok := rows[s.name]; !ok {
			t.Errorf("--%s is defined in settings but has no row in %s", s.name, configDoc)
		}
	}
	envs := configEnvNames()

	documentedEnv := map[string]bool{}
	for name, row := range rows {
		if !defined[name] {
			t.Errorf("%s:%d: --%s is documented but settings defines no such flag", configDoc, row.line, name)
			continue
		}
		want := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		switch {
		case envs[want] && row.env != want:
			t.Errorf("%s:%d: --%s: environment column %q, want %s", configDoc, row.line, name, row.env, want)
		case !envs[want] && row.env != "":
			t.Errorf("%s:%d: --%s: documents %s, which Config does not read", configDoc, row.line, name, row.env)
		}
		documentedEnv[row.env] = true
	}
	for env := range envs {
		if !documentedEnv[env] {
			t.Errorf("%s is read by Config (envconfig) but has no row in %s", env, configDoc)
		}
	}
}
