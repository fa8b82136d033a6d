package keystore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/keys"
)

// cheap is a KDF cost that keeps the suite fast.
var cheap = keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func cheapOpt() keystore.Option { return keystore.WithConfig(keystore.Config{KDF: cheap}) }

// fakeKDF ignores the cost parameters: it lets tests and the fuzzer change
// them without paying for them, and shows what the associated data alone
// protects.
func fakeKDF(passphrase, salt []byte, _ keystore.KDFParams) []byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint32(len(passphrase)))
	h.Write(passphrase)
	h.Write(salt)
	return h.Sum(nil)
}

var pass = []byte("correct horse battery staple")

// seeded returns 32 bytes made from b, for fixed keys.
func seeded(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func ticketKeys(t testing.TB, b byte) keys.TicketKeys {
	t.Helper()
	k, err := keys.TicketKeysFromSeeds(seeded(b), seeded(b+1))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// full returns contents with every field set, and secrets that are easy to
// look for in the file.
func full(t testing.TB) keystore.Contents {
	t.Helper()
	tk := ticketKeys(t, 0x41)
	return keystore.Contents{
		NodeURL:      "https://node.example:8443/",
		Username:     "alice-the-user",
		AccountSeed:  seeded(0x5e),
		Token:        "tok_SECRET-session-token-0123456789",
		TokenExpires: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
		Tickets:      map[keys.TicketID]keystore.Ticket{tk.Public().Sign: keystore.NewTicket(7, tk)},
		Rooms: map[string][]byte{
			"room_a": []byte("ROOM-STATE-PLAINTEXT-A"),
			"room_b": bytes.Repeat([]byte{0xAB}, 300),
		},
		SyncPosition: 42,
	}
}

// diff names the fields in which a and b differ (Contents does not print
// its secrets, so test failures name fields instead).
func diff(a, b keystore.Contents) string {
	var d []string
	check := func(name string, x, y keystore.Contents) {
		if !equal(x, y) {
			d = append(d, name)
		}
	}
	check("NodeURL", keystore.Contents{NodeURL: a.NodeURL}, keystore.Contents{NodeURL: b.NodeURL})
	check("Username", keystore.Contents{Username: a.Username}, keystore.Contents{Username: b.Username})
	check("AccountSeed", keystore.Contents{AccountSeed: a.AccountSeed}, keystore.Contents{AccountSeed: b.AccountSeed})
	check("Token", keystore.Contents{Token: a.Token}, keystore.Contents{Token: b.Token})
	check("TokenExpires", keystore.Contents{TokenExpires: a.TokenExpires}, keystore.Contents{TokenExpires: b.TokenExpires})
	check("Tickets", keystore.Contents{Tickets: a.Tickets}, keystore.Contents{Tickets: b.Tickets})
	check("Rooms", keystore.Contents{Rooms: a.Rooms}, keystore.Contents{Rooms: b.Rooms})
	check("SyncPosition", keystore.Contents{SyncPosition: a.SyncPosition}, keystore.Contents{SyncPosition: b.SyncPosition})
	return "fields differ: " + strings.Join(d, ", ")
}

// equal compares contents, times by instant.
func equal(a, b keystore.Contents) bool {
	if !a.TokenExpires.Equal(b.TokenExpires) {
		return false
	}
	a.TokenExpires, b.TokenExpires = time.Time{}, time.Time{}
	norm := func(c *keystore.Contents) {
		if len(c.Tickets) == 0 {
			c.Tickets = nil
		}
		if len(c.Rooms) == 0 {
			c.Rooms = nil
		}
		if len(c.AccountSeed) == 0 {
			c.AccountSeed = nil
		}
	}
	norm(&a)
	norm(&b)
	return reflect.DeepEqual(a, b)
}

// create makes a keystore with the cheap cost in a fresh directory and
// returns its path.
func create(t testing.TB, c keystore.Contents, opts ...keystore.Option) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keystore")
	if err := keystore.Create(path, pass, c, append([]keystore.Option{cheapOpt()}, opts...)...); err != nil {
		t.Fatalf("Create() = %v, want nil", err)
	}
	return path
}

func open(t testing.TB, path string, opts ...keystore.Option) *keystore.Keystore {
	t.Helper()
	k, err := keystore.Open(path, pass, append([]keystore.Option{cheapOpt()}, opts...)...)
	if err != nil {
		t.Fatalf("Open() = %v, want nil", err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// headerSize returns the length of the file's header.
func headerSize(t testing.TB, file []byte) int {
	t.Helper()
	n, err := keystore.HeaderSize(file)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
