package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestFrontendFixtures checks the path rule against the params real front ends sent, captured
// into testdata/frontends/ by tests/frontends_test.go (which fails when a front end starts
// sending something else), each with the SCRIPT_NAME/PATH_INFO the app must see per mount.
func TestFrontendFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/frontends/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/frontends (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var fx struct {
				Frontend string            `json:"frontend"`
				Request  string            `json:"request"`
				Params   map[string]string `json:"params"`
				Expect   []struct {
					Mount      string `json:"mount"`
					ScriptName string `json:"SCRIPT_NAME"`
					PathInfo   string `json:"PATH_INFO"`
				} `json:"expect"`
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &fx); err != nil {
				t.Fatal(err)
			}
			if len(fx.Expect) == 0 {
				t.Fatal("fixture has no expectation")
			}
			for _, want := range fx.Expect {
				in := pathInput{mount: []byte(NormalizeMount(want.Mount))}
				// Each param is latin-1 text in the JSON: one rune per byte.
				for name, v := range fx.Params {
					bv := latin1Bytes(t, v)
					switch name {
					case "SCRIPT_NAME":
						in.scriptName = bv
					case "PATH_INFO":
						in.pathInfo = bv
					case "REQUEST_URI":
						in.requestURI = bv
					case "SCRIPT_FILENAME":
						in.scriptFilename = bv
					}
				}
				got := derivePath(in)
				if string(got.script) != string(latin1Bytes(t, want.ScriptName)) || string(got.path) != string(latin1Bytes(t, want.PathInfo)) {
					t.Errorf("%s, %s, mount %q: app sees SCRIPT_NAME %q PATH_INFO %q (by %q), want %q %q",
						fx.Frontend, fx.Request, want.Mount, got.script, got.path, got.rule, want.ScriptName, want.PathInfo)
				}
				if got.conflict != "" {
					t.Errorf("%s, %s, mount %q: reported as a conflict (%s)", fx.Frontend, fx.Request, want.Mount, got.conflict)
				}
			}
		})
	}
}

func latin1Bytes(t *testing.T, s string) []byte {
	t.Helper()
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			t.Fatalf("fixture value %q is not latin-1", s)
		}
		b = append(b, byte(r))
	}
	return b
}
