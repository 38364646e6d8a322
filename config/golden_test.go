package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/errors from the current messages")

// TestErrorGoldens loads every testdata/errors/NAME.yaml (a gateway file
// when NAME starts with gw-) and compares the problems with NAME.golden.
// Each file holds one kind of mistake (five-mistakes holds five), so the
// goldens pin the exact message a field engineer sees for each kind.
func TestErrorGoldens(t *testing.T) {
	t.Setenv("WEFT_TEST_SET", "127.0.0.1")
	os.Unsetenv("WEFT_TEST_UNSET")
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d golden files; the suite pins at least 25 kinds of mistake", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(name, "gw-") {
				_, err = LoadGateway(file)
			} else {
				_, err = LoadAgent(file)
			}
			problems := AsErrors(err)
			if problems == nil {
				t.Fatalf("want problems, got %v", err)
			}
			for _, p := range problems {
				if p.Line < 1 || p.Col < 1 || p.File != file {
					t.Errorf("problem without a position in %s: %v", file, p)
				}
			}
			got := problems.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -run TestErrorGoldens -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestFiveMistakes is the acceptance check of issue 2: a file with five
// different mistakes yields exactly five FILE:LINE:COL problems.
func TestFiveMistakes(t *testing.T) {
	_, err := LoadAgent("testdata/errors/five-mistakes.yaml")
	problems := AsErrors(err)
	if len(problems) != 5 {
		t.Fatalf("want 5 problems, got %d:\n%v", len(problems), err)
	}
	lines := map[int]bool{}
	for _, p := range problems {
		lines[p.Line] = true
	}
	if len(lines) != 5 {
		t.Errorf("want five problems on five lines, got lines %v", lines)
	}
}
