package keystore_test

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/client/keystore"
)

// BenchmarkOpenDefaultParams measures Open (and Close) of a keystore with
// the default argon2id cost: the time a person waits after typing the
// passphrase. The key derivation is nearly all of it.
func BenchmarkOpenDefaultParams(b *testing.B) {
	path := filepath.Join(b.TempDir(), "ks")
	if err := keystore.Create(path, pass, full(b)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		k, err := keystore.Open(path, pass)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(keystore.DefaultKDFMemoryKiB)/1024, "kdf-MiB")
}

// BenchmarkSave measures a Save with the key already derived.
func BenchmarkSave(b *testing.B) {
	path := filepath.Join(b.TempDir(), "ks")
	if err := keystore.Create(path, pass, full(b), cheapOpt()); err != nil {
		b.Fatal(err)
	}
	k, err := keystore.Open(path, pass, cheapOpt())
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	for b.Loop() {
		if err := k.Save(); err != nil {
			b.Fatal(err)
		}
	}
}
