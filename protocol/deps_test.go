package protocol_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The dependency rules of protocol/ (STYLE.md, "a pure core, I/O at the
// edges"): the packages import only the standard library, golang.org/x/crypto
// and protocol itself, and never reach for the network, the filesystem, the
// clock or a source of randomness; time and randomness are arguments.
// Test files are exempt: they may use spec/, os, testing helpers and so on.

// allowedPrefixes are the non-standard-library import paths protocol/ may
// use, each together with its subpackages.
var allowedPrefixes = []string{
	"golang.org/x/crypto",
	"github.com/parley-chat/parley/protocol",
}

// forbiddenStd are standard-library packages protocol/ must not import, each
// together with its subpackages, and why.
var forbiddenStd = []struct{ path, why string }{
	{"net", "network I/O belongs in node/"},
	{"os", "filesystem and process access belong in node/ or cmd/"},
	{"io/ioutil", "filesystem access belongs in node/ or cmd/"},
	{"database/sql", "storage belongs in node/"},
	{"syscall", "system calls belong in node/"},
	{"crypto/rand", "randomness is an argument: take an io.Reader"},
	{"math/rand", "randomness is an argument: take an io.Reader"},
	{"unsafe", "protocol/ must stay memory-safe and portable"},
	{"C", "cgo would break portable (browser) builds"},
	{"log", "protocol/ returns errors; logging belongs in node/ or client/"},
}

// forbiddenTime are the functions of package time that read or wait on the
// clock. Types and pure helpers (time.Time, time.Duration, time.UnixMilli)
// are fine.
var forbiddenTime = map[string]bool{
	"Now":       true,
	"Since":     true,
	"Until":     true,
	"Sleep":     true,
	"After":     true,
	"AfterFunc": true,
	"Tick":      true,
	"NewTimer":  true,
	"NewTicker": true,
}

const timeWhy = "time is an argument in protocol/: take a now time.Time"

// hasPathPrefix reports whether path is prefix or one of its subpackages.
func hasPathPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// isStd reports whether path is in the standard library: its first element
// has no dot.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// importProblem returns why path may not be imported by protocol/, or "" if
// it may.
func importProblem(path string) string {
	if !isStd(path) {
		for _, p := range allowedPrefixes {
			if hasPathPrefix(path, p) {
				return ""
			}
		}
		return "protocol/ may import only the standard library, golang.org/x/crypto and protocol/..."
	}
	for _, f := range forbiddenStd {
		if hasPathPrefix(path, f.path) {
			return f.why
		}
	}
	return ""
}

// checkDeps parses every non-test Go file under root (skipping testdata and
// the directories the go tool ignores) and returns the rule violations,
// sorted, and the number of files checked.
func checkDeps(root string) (problems []string, files int, err error) {
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		problems = append(problems, checkFile(fset, rel, f)...)
		return nil
	})
	slices.Sort(problems)
	return problems, files, err
}

// checkFile returns the violations in one parsed file, named rel in messages.
func checkFile(fset *token.FileSet, rel string, f *ast.File) []string {
	var problems []string
	var timeNames []string // the names the file binds package time to
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: bad import %s", rel, imp.Path.Value))
			continue
		}
		if why := importProblem(path); why != "" {
			problems = append(problems, fmt.Sprintf("%s imports %q (forbidden: %s)", rel, path, why))
		}
		if path != "time" {
			continue
		}
		switch {
		case imp.Name == nil:
			timeNames = append(timeNames, "time")
		case imp.Name.Name == ".":
			problems = append(problems, fmt.Sprintf("%s dot-imports %q (forbidden: its clock calls could not be checked)", rel, path))
		case imp.Name.Name != "_":
			timeNames = append(timeNames, imp.Name.Name)
		}
	}
	if len(timeNames) == 0 {
		return problems
	}
	// Any use of a clock function counts, called or not: passing time.Now
	// as a value reads the clock just the same.
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if ok && slices.Contains(timeNames, x.Name) && forbiddenTime[sel.Sel.Name] {
			line := fset.Position(sel.Pos()).Line
			problems = append(problems, fmt.Sprintf("%s:%d uses time.%s (forbidden: %s)", rel, line, sel.Sel.Name, timeWhy))
		}
		return true
	})
	return problems
}

func TestDependencies(t *testing.T) {
	problems, files, err := checkDeps(".")
	if err != nil {
		t.Fatalf("checkDeps(protocol/): %v", err)
	}
	// doc.go alone is one file; finding none would mean the walk is broken.
	if files == 0 {
		t.Fatal("checkDeps(protocol/) checked no files")
	}
	for _, p := range problems {
		t.Error("protocol/" + p)
	}
}

// TestCheckDeps runs the checker over a tree of deliberately bad sources, so
// that TestDependencies cannot pass because the checker sees nothing.
func TestCheckDeps(t *testing.T) {
	root := t.TempDir()
	sources := map[string]string{
		// Allowed imports and pure uses of time: no problems.
		"good/good.go": `package good

import (
	"crypto/sha256"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"github.com/parley-chat/parley/protocol/wire"
)

var _ = chacha20poly1305.KeySize
var _ = wire.ErrMalformed
var _ = sha256.Size
var _ io.Reader

func Expired(now, at time.Time, ttl time.Duration) bool { return now.After(at.Add(ttl)) }
`,
		"bad/bad.go": `package bad

import (
	"crypto/rand"
	"net/http"
	"os"
	"time"

	"github.com/parley-chat/parley/node"
	"github.com/example/thing"
)

func F() {
	_ = os.Getenv("X")
	_ = time.Now()
	time.Sleep(time.Second)
	f := time.Since
	_ = f
}
`,
		// A renamed import of time is still tracked; a local called time
		// that is not the package is not confused with it here because
		// the package is bound to another name.
		"bad/renamed.go": `package bad

import clock "time"

func G() clock.Time { return clock.Now().Add(clock.Until(clock.Time{})) }
`,
		"bad/rand.go": `package bad

import (
	mrand "math/rand/v2"
	"log/slog"
	"unsafe"
)

var _ = mrand.Int
var _ = slog.Info
var _ = unsafe.Sizeof(0)
`,
		"bad/dot.go": `package bad

import . "time"

var _ = Now
`,
		// Test files and testdata are not checked.
		"bad/bad_test.go": `package bad

import "os"

var _ = os.Getenv
`,
		"bad/testdata/x.go": `package x

import "os"
`,
	}
	for name, src := range sources {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got, files, err := checkDeps(root)
	if err != nil {
		t.Fatalf("checkDeps: %v", err)
	}
	if files != 5 {
		t.Errorf("checkDeps checked %d files, want 5", files)
	}
	want := []string{
		`bad/bad.go imports "crypto/rand" (forbidden: randomness is an argument: take an io.Reader)`,
		`bad/bad.go imports "github.com/example/thing" (forbidden: protocol/ may import only the standard library, golang.org/x/crypto and protocol/...)`,
		`bad/bad.go imports "github.com/parley-chat/parley/node" (forbidden: protocol/ may import only the standard library, golang.org/x/crypto and protocol/...)`,
		`bad/bad.go imports "net/http" (forbidden: network I/O belongs in node/)`,
		`bad/bad.go imports "os" (forbidden: filesystem and process access belong in node/ or cmd/)`,
		`bad/bad.go:15 uses time.Now (forbidden: ` + timeWhy + `)`,
		`bad/bad.go:16 uses time.Sleep (forbidden: ` + timeWhy + `)`,
		`bad/bad.go:17 uses time.Since (forbidden: ` + timeWhy + `)`,
		`bad/dot.go dot-imports "time" (forbidden: its clock calls could not be checked)`,
		`bad/rand.go imports "log/slog" (forbidden: protocol/ returns errors; logging belongs in node/ or client/)`,
		`bad/rand.go imports "math/rand/v2" (forbidden: randomness is an argument: take an io.Reader)`,
		`bad/rand.go imports "unsafe" (forbidden: protocol/ must stay memory-safe and portable)`,
		`bad/renamed.go:5 uses time.Now (forbidden: ` + timeWhy + `)`,
		`bad/renamed.go:5 uses time.Until (forbidden: ` + timeWhy + `)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkDeps(bad tree) =\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestImportProblem(t *testing.T) {
	tests := []struct {
		path    string
		allowed bool
	}{
		{"bytes", true},
		{"crypto/ed25519", true},
		{"crypto/hkdf", true},
		{"encoding/binary", true},
		{"time", true},
		{"io", true},
		{"golang.org/x/crypto", true},
		{"golang.org/x/crypto/curve25519", true},
		{"github.com/parley-chat/parley/protocol", true},
		{"github.com/parley-chat/parley/protocol/wire", true},
		{"network", true}, // only net and its subpackages
		{"osutil", true},  // only os and its subpackages
		{"net", false},
		{"net/http", false},
		{"net/netip", false},
		{"os", false},
		{"os/exec", false},
		{"os/signal", false},
		{"io/ioutil", false},
		{"database/sql", false},
		{"crypto/rand", false},
		{"math/rand", false},
		{"math/rand/v2", false},
		{"syscall", false},
		{"unsafe", false},
		{"log", false},
		{"log/slog", false},
		{"golang.org/x/cryptography", false},
		{"golang.org/x/net/http2", false},
		{"github.com/parley-chat/parley/node", false},
		{"github.com/parley-chat/parley/spec", false},
		{"github.com/parley-chat/parley/protocolx", false},
	}
	for _, tt := range tests {
		why := importProblem(tt.path)
		if got := why == ""; got != tt.allowed {
			t.Errorf("importProblem(%q) = %q, want allowed %v", tt.path, why, tt.allowed)
		}
	}
}
