// Package vectortest helps protocol tests generate and check the test
// vectors under spec/testdata. A package's TestVectors builds its vectors
// from deterministic inputs and calls Golden: with -update the file is
// rewritten (`make vectors`); without it the file must match exactly, so any
// change to an encoding shows up as a failing test and a diff in spec/.
package vectortest

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/parley-chat/parley/spec"
)

var update = flag.Bool("update", false, "rewrite the test vectors under spec/testdata")

// Updating reports whether the test binary runs with -update.
func Updating() bool { return *update }

// Rand returns a deterministic randomness source for vector generation,
// seeded from label so each vector file has its own stream.
func Rand(label string) *rand.ChaCha8 {
	var seed [32]byte
	copy(seed[:], label)
	return rand.NewChaCha8(seed)
}

// File is the common shape of a vector file.
type File[V any] struct {
	Description string `json:"description"`
	Spec        string `json:"spec"`
	Vectors     []V    `json:"vectors"`
}

// Golden writes f to spec/testdata/name with -update; otherwise it fails the
// test unless the committed file has exactly f's JSON encoding.
func Golden[V any](t testing.TB, name string, f File[V]) {
	t.Helper()
	got, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatalf("encoding vectors %s: %v", name, err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(filepath.Join(dir(), name), got, 0o644); err != nil {
			t.Fatalf("writing vectors: %v", err)
		}
		return
	}
	want, err := spec.Testdata.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("vectors %s missing (run make vectors): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("vectors %s differ from what the code generates; if the change is intended, run make vectors and update the spec", name)
	}
}

// Load decodes spec/testdata/name into a File.
func Load[V any](t testing.TB, name string) File[V] {
	t.Helper()
	var f File[V]
	if *update {
		// The embedded copy predates this run's rewrite: read the new file.
		b, err := os.ReadFile(filepath.Join(dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
	} else if err := spec.Load(name, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("vectors %s: no vectors", name)
	}
	return f
}

// dir is spec/testdata in the source tree.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}
