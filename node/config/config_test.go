package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/config"
)

type inner struct {
	CacheBytes int64         `toml:"cache_bytes" comment:"Block cache size in bytes."`
	Timeout    time.Duration `toml:"timeout" comment:"How long to wait."`
	Peers      []string      `toml:"peers" comment:"Bootstrap peers."`
	Ratio      float64       `toml:"ratio"`
	Size       uint32        `toml:"size"`
}

type sample struct {
	Name    string `toml:"name" comment:"The node's name.\nSecond line."`
	Verbose bool   `toml:"verbose"`
	Store   inner  `toml:"store" comment:"Storage."`
	Ignored int    // no toml tag: not a setting
}

func defaults() *sample {
	return &sample{Name: "parley", Store: inner{CacheBytes: 64 << 20, Timeout: 30 * time.Second, Peers: []string{"a", "b"}, Ratio: 0.5, Size: 7}}
}

func TestRenderLoadRoundTrip(t *testing.T) {
	want := defaults()
	text := config.Render(want, "Parley test config.")
	for _, s := range []string{"# The node's name.\n# Second line.\nname = \"parley\"", "[store]", "timeout = \"30s\"", "peers = [\"a\", \"b\"]", "# Block cache size in bytes.\ncache_bytes = 67108864"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("Render() lacks %q:\n%s", s, text)
		}
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	got := &sample{}
	if err := config.LoadFile(path, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadFile(Render(x)) = %+v, want %+v", got, want)
	}
}

func TestLoadFileRefusesUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	_ = os.WriteFile(path, []byte("name = \"x\"\n[store]\ncache_byte = 5\n"), 0o600)
	if err := config.LoadFile(path, defaults()); !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), "store.cache_byte") {
		t.Fatalf("LoadFile(misspelt key) = %v, want ErrUnknownKey naming store.cache_byte", err)
	}
	_ = os.WriteFile(path, []byte("name = 5\n"), 0o600)
	if err := config.LoadFile(path, defaults()); err == nil {
		t.Fatal("LoadFile(wrong type) succeeded")
	}
}

func TestEnvAndSet(t *testing.T) {
	c := defaults()
	env := []string{"HOME=/root", "PARLEY_NAME=env", "PARLEY_STORE_TIMEOUT=5s", "PARLEY_STORE_PEERS=x, y", "PARLEY_CONFIG=/etc/p.toml", "PARLEY_STORE_SIZE=9"}
	if err := config.ApplyEnv(c, env, "PARLEY_CONFIG"); err != nil {
		t.Fatal(err)
	}
	if c.Name != "env" || c.Store.Timeout != 5*time.Second || !reflect.DeepEqual(c.Store.Peers, []string{"x", "y"}) || c.Store.Size != 9 {
		t.Fatalf("ApplyEnv = %+v", c)
	}
	// Flags (Set) override env.
	if err := config.Set(c, "store.cache_bytes", "10"); err != nil || c.Store.CacheBytes != 10 {
		t.Fatalf("Set = %v, %d", err, c.Store.CacheBytes)
	}
	bad := []struct{ key, value string }{
		{"store.cache_bytes", "ten"}, {"verbose", "maybe"}, {"store.timeout", "5"}, {"store.size", "-1"}, {"nope", "1"}, {"store", "1"}, {"Ignored", "1"},
	}
	for _, b := range bad {
		if err := config.Set(c, b.key, b.value); err == nil {
			t.Errorf("Set(%s, %q) succeeded", b.key, b.value)
		}
	}
	if err := config.ApplyEnv(c, []string{"PARLEY_STORE_CACHE=1", "PARLEY_VERBOSE=x"}); err == nil || !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), "PARLEY_VERBOSE") {
		t.Fatalf("ApplyEnv(bad) = %v, want both problems", err)
	}
}

func TestKeys(t *testing.T) {
	got := config.Keys(defaults())
	want := []string{"name", "verbose", "store.cache_bytes", "store.timeout", "store.peers", "store.ratio", "store.size"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Keys() = %v, want %v", got, want)
	}
	if config.EnvName("store.cache_bytes") != "PARLEY_STORE_CACHE_BYTES" {
		t.Fatal("EnvName")
	}
}
