package keystore_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client/keystore"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzOpen")

var fuzzPass = []byte("fuzz")

// fuzzOpts open files with a KDF that ignores the cost: the fuzzer explores
// the header and the bounds, not argon2id, and an in-bounds cost it picks
// costs nothing.
func fuzzOpts() []keystore.Option {
	return []keystore.Option{keystore.WithKDF(fakeKDF), keystore.WithConfig(keystore.Config{KDF: cheap})}
}

// FuzzOpen: Open never panics, and every failure on the file's bytes is
// ErrCorrupt or ErrWrongPassphrase. A file that opens saves and reopens to
// the same contents.
func FuzzOpen(f *testing.F) {
	for _, s := range corpusSeeds(f) {
		f.Add(s.data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "ks")
		writeFile(t, path, data)
		k, err := keystore.Open(path, fuzzPass, fuzzOpts()...)
		if err != nil {
			if !isFailure(err) {
				t.Fatalf("Open(%d bytes) = %v, want ErrCorrupt or ErrWrongPassphrase", len(data), err)
			}
			return
		}
		defer k.Close()
		c := k.Contents()
		if err := c.Validate(); err != nil {
			t.Fatalf("Open() gave invalid contents: %v", err)
		}
		if err := k.Save(); err != nil {
			t.Fatalf("Save() = %v", err)
		}
		_ = k.Close()
		k2, err := keystore.Open(path, fuzzPass, fuzzOpts()...)
		if err != nil {
			t.Fatalf("Open() after Save() = %v", err)
		}
		defer k2.Close()
		if got := k2.Contents(); !equal(got, c) {
			t.Fatalf("Open(Save(Open(data))) differs: %s", diff(got, c))
		}
	})
}

type seed struct {
	name  string
	data  []byte
	valid bool
}

// corpusSeeds builds the seed corpus deterministically.
func corpusSeeds(tb testing.TB) []seed {
	tb.Helper()
	build := func(c keystore.Contents, n uint64) []byte {
		path := filepath.Join(tb.TempDir(), "ks")
		r := rand.NewChaCha8([32]byte{byte(n)})
		if err := keystore.Create(path, fuzzPass, c, append(fuzzOpts(), keystore.WithRand(r))...); err != nil {
			tb.Fatal(err)
		}
		return readFile(tb, path)
	}
	empty := build(keystore.Contents{}, 1)
	fullFile := build(full(tb), 2)
	hlen, err := keystore.HeaderSize(empty)
	if err != nil {
		tb.Fatal(err)
	}
	mod := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	return []seed{
		{"valid-empty", empty, true},
		{"valid-full", fullFile, true},
		{"empty", nil, false},
		{"magic", []byte("PARLEYKS"), false},
		{"header-only", empty[:hlen], false},
		{"short-tag", empty[:hlen+15], false},
		{"flipped-tag", mod(empty, func(b []byte) { b[len(b)-1] ^= 1 }), false},
		{"version-2", mod(empty, func(b []byte) { b[8] = 2 }), false},
		{"hostile-memory", mod(empty, func(b []byte) { b[14], b[15] = 0xff, 0xff }), false},
		{"salt-32", mod(empty, func(b []byte) { b[19] = 32 }), false},
	}
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzOpen in step with the format:
// with -update-corpus it rewrites it; without, it checks the valid seeds
// still open.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for _, s := range corpusSeeds(t) {
		file := filepath.Join(dir, s.name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data)))
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !s.valid {
			continue
		}
		text := string(readFile(t, file))
		lit, ok := strings.CutPrefix(strings.TrimSpace(text), "go test fuzz v1\n[]byte(")
		if !ok {
			t.Fatalf("%s: not a fuzz corpus file", file)
		}
		data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		path := filepath.Join(t.TempDir(), "ks")
		writeFile(t, path, []byte(data))
		k, err := keystore.Open(path, fuzzPass, fuzzOpts()...)
		if err != nil {
			t.Fatalf("Open(seed %s) = %v, want nil (rerun with -update-corpus after a format change)", s.name, err)
		}
		_ = k.Close()
	}
}
