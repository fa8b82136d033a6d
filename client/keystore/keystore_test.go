package keystore_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/keystore"
	"github.com/parley-chat/parley/protocol/keys"
)

func TestRoundTrip(t *testing.T) {
	big := full(t)
	big.Rooms["big"] = bytes.Repeat([]byte{1, 2, 3}, 1<<20)
	tests := []struct {
		name string
		c    keystore.Contents
	}{
		{"empty", keystore.Contents{}},
		{"account only", keystore.Contents{NodeURL: "http://127.0.0.1:8080", Username: "bob", AccountSeed: seeded(9)}},
		{"full", full(t)},
		{"3 MiB of rooms", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := create(t, tt.c)
			k := open(t, path)
			if got := k.Contents(); !equal(got, tt.c) {
				t.Fatalf("Open(Create(c)).Contents() differs from c: %s", diff(got, tt.c))
			}
			// Change, save, reopen.
			want := tt.c
			want.SyncPosition += 10
			want.Token = "tok_new"
			if err := k.SetSyncPosition(want.SyncPosition); err != nil {
				t.Fatal(err)
			}
			if err := k.SetSession(want.Token, want.TokenExpires); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); err != nil {
				t.Fatalf("Save() = %v, want nil", err)
			}
			if err := k.Close(); err != nil {
				t.Fatalf("Close() = %v, want nil", err)
			}
			k2 := open(t, path)
			if got := k2.Contents(); !equal(got, want) {
				t.Fatalf("Contents() after Save differs: %s", diff(got, want))
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	path := create(t, full(t))
	k := open(t, path)
	tk := ticketKeys(t, 0x70)
	id, err := k.PutTicket(12, tk)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	_ = k.Close()
	c := open(t, path).Contents()
	got, err := c.Tickets[id].Keys()
	if err != nil {
		t.Fatalf("Ticket.Keys() = %v", err)
	}
	if got.Public() != tk.Public() {
		t.Fatalf("Ticket.Keys().Public() = %v, want %v", got.Public(), tk.Public())
	}
	if e := c.Tickets[id].Epoch; e != 12 {
		t.Fatalf("Ticket.Epoch = %d, want 12", e)
	}
	ak, err := c.AccountKey()
	if err != nil {
		t.Fatalf("AccountKey() = %v", err)
	}
	want, _ := keys.AccountKeyFromSeed(seeded(0x5e))
	if ak.Public() != want.Public() {
		t.Fatalf("AccountKey().Public() = %v, want %v", ak.Public(), want.Public())
	}
	if _, err := (keystore.Contents{}).AccountKey(); !errors.Is(err, keystore.ErrNoAccount) {
		t.Fatalf("Contents{}.AccountKey() = %v, want ErrNoAccount", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	path := create(t, full(t))
	for _, p := range [][]byte{[]byte("wrong"), pass[:len(pass)-1], append(bytes.Clone(pass), 'x'), {}} {
		k, err := keystore.Open(path, p, cheapOpt())
		if !errors.Is(err, keystore.ErrWrongPassphrase) {
			if k != nil {
				_ = k.Close()
			}
			t.Fatalf("Open(%q) = %v, want ErrWrongPassphrase", p, err)
		}
	}
	// The right one still works: a failed Open released the lock.
	open(t, path)
}

func TestOpenMissing(t *testing.T) {
	_, err := keystore.Open(filepath.Join(t.TempDir(), "nope"), pass, cheapOpt())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
}

func isFailure(err error) bool {
	return errors.Is(err, keystore.ErrCorrupt) || errors.Is(err, keystore.ErrWrongPassphrase)
}

// Every header byte is either checked or bound into the AEAD.
func TestTamperedHeader(t *testing.T) {
	path := create(t, full(t))
	orig := readFile(t, path)
	hlen := headerSize(t, orig)
	for i := range hlen {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(orig)
			b[i] ^= mask
			writeFile(t, path, b)
			k, err := keystore.Open(path, pass, cheapOpt())
			if !isFailure(err) {
				if k != nil {
					_ = k.Close()
				}
				t.Fatalf("Open(header byte %d ^ %#x) = %v, want ErrCorrupt or ErrWrongPassphrase", i, mask, err)
			}
			// The magic, version and KDF id are refused before decryption.
			if i < 10 && !errors.Is(err, keystore.ErrCorrupt) {
				t.Errorf("Open(header byte %d ^ %#x) = %v, want ErrCorrupt", i, mask, err)
			}
		}
	}
}

func TestTamperedCiphertext(t *testing.T) {
	path := create(t, full(t))
	orig := readFile(t, path)
	for i := headerSize(t, orig); i < len(orig); i++ {
		b := bytes.Clone(orig)
		b[i] ^= 0x01
		writeFile(t, path, b)
		if _, err := keystore.Open(path, pass, cheapOpt()); !errors.Is(err, keystore.ErrWrongPassphrase) {
			t.Fatalf("Open(ciphertext byte %d flipped) = %v, want ErrWrongPassphrase", i, err)
		}
	}
	for _, extra := range [][]byte{{0}, []byte("trailing")} {
		writeFile(t, path, append(bytes.Clone(orig), extra...))
		if _, err := keystore.Open(path, pass, cheapOpt()); !errors.Is(err, keystore.ErrWrongPassphrase) {
			t.Fatalf("Open(file + %q) = %v, want ErrWrongPassphrase", extra, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	path := create(t, keystore.Contents{})
	orig := readFile(t, path)
	hlen := headerSize(t, orig)
	for n := range len(orig) {
		writeFile(t, path, orig[:n])
		_, err := keystore.Open(path, pass, cheapOpt())
		want := keystore.ErrWrongPassphrase
		if n < hlen+16 { // header and tag
			want = keystore.ErrCorrupt
		}
		if !errors.Is(err, want) {
			t.Fatalf("Open(first %d of %d bytes) = %v, want %v", n, len(orig), err, want)
		}
	}
}

// setParams rewrites the KDF parameters in a file's header.
func setParams(b []byte, p keystore.KDFParams) {
	binary.BigEndian.PutUint32(b[10:], p.Time)
	binary.BigEndian.PutUint32(b[14:], p.MemoryKiB)
	b[18] = p.Threads
}

// A downgraded cost is detected by the associated data alone: with a KDF
// that ignores the cost, the key is the same, and only the header binding
// refuses the file.
func TestDowngradeDetected(t *testing.T) {
	strong := keystore.KDFParams{Time: 4, MemoryKiB: 1024, Threads: 2}
	tests := []struct {
		name string
		kdf  []keystore.Option
	}{
		{"cost-blind KDF", []keystore.Option{keystore.WithKDF(fakeKDF)}},
		{"argon2id", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]keystore.Option{keystore.WithConfig(keystore.Config{KDF: strong})}, tt.kdf...)
			path := filepath.Join(t.TempDir(), "ks")
			if err := keystore.Create(path, pass, full(t), opts...); err != nil {
				t.Fatal(err)
			}
			orig := readFile(t, path)
			k, err := keystore.Open(path, pass, opts...)
			if err != nil {
				t.Fatalf("Open(unchanged) = %v, want nil", err)
			}
			_ = k.Close()
			for _, weak := range []keystore.KDFParams{
				{Time: 1, MemoryKiB: 1024, Threads: 2},
				{Time: 4, MemoryKiB: 16, Threads: 2},
				{Time: 4, MemoryKiB: 1024, Threads: 1},
				{Time: 1, MemoryKiB: 8, Threads: 1},
			} {
				b := bytes.Clone(orig)
				setParams(b, weak)
				writeFile(t, path, b)
				if _, err := keystore.Open(path, pass, opts...); !errors.Is(err, keystore.ErrWrongPassphrase) {
					t.Fatalf("Open(cost downgraded to %+v) = %v, want ErrWrongPassphrase", weak, err)
				}
			}
		})
	}
}

// Hostile or malformed headers are refused before any key derivation.
func TestHostileHeader(t *testing.T) {
	path := create(t, full(t))
	orig := readFile(t, path)
	tests := []struct {
		name   string
		modify func(b []byte) []byte
	}{
		{"1 TiB of memory", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: 1 << 30, Threads: 1})
			return b
		}},
		{"max memory", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: 0xffffffff, Threads: 1})
			return b
		}},
		{"just over the memory bound", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: keystore.MaxKDFMemoryKiB + 1, Threads: 1})
			return b
		}},
		{"memory below 8 per thread", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: 31, Threads: 4})
			return b
		}},
		{"4 billion passes", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 0xffffffff, MemoryKiB: 64, Threads: 1})
			return b
		}},
		{"too many passes", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: keystore.MaxKDFTime + 1, MemoryKiB: 64, Threads: 1})
			return b
		}},
		{"zero passes", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 0, MemoryKiB: 64, Threads: 1})
			return b
		}},
		{"zero threads", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 0})
			return b
		}},
		{"255 threads", func(b []byte) []byte {
			setParams(b, keystore.KDFParams{Time: 1, MemoryKiB: 1 << 16, Threads: 255})
			return b
		}},
		{"short salt", func(b []byte) []byte { b[19] = keystore.MinSaltSize - 1; return b }},
		{"long salt", func(b []byte) []byte { b[19] = keystore.MaxSaltSize + 1; return b }},
		{"salt past the end", func(b []byte) []byte { b[19] = keystore.MaxSaltSize; return b[:20+keystore.MaxSaltSize+10] }},
		{"version 0", func(b []byte) []byte { b[8] = 0; return b }},
		{"version 2", func(b []byte) []byte { b[8] = 2; return b }},
		{"unknown KDF", func(b []byte) []byte { b[9] = 2; return b }},
		{"other magic", func(b []byte) []byte { copy(b, "PARLEYKT"); return b }},
		{"empty", func([]byte) []byte { return nil }},
		{"magic only", func(b []byte) []byte { return b[:8] }},
		{"no ciphertext", func(b []byte) []byte { return b[:headerSize(t, orig)] }},
		{"tag only", func(b []byte) []byte { return b[:headerSize(t, orig)+15] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, path, tt.modify(bytes.Clone(orig)))
			called := false
			kdf := func(p, s []byte, c keystore.KDFParams) []byte { called = true; return fakeKDF(p, s, c) }
			_, err := keystore.Open(path, pass, cheapOpt(), keystore.WithKDF(kdf))
			if !errors.Is(err, keystore.ErrCorrupt) {
				t.Fatalf("Open(%s) = %v, want ErrCorrupt", tt.name, err)
			}
			if called {
				t.Fatalf("Open(%s) derived a key before refusing the file", tt.name)
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		b := append(bytes.Clone(orig), make([]byte, keystore.MaxFileSize)...)
		writeFile(t, path, b)
		if _, err := keystore.Open(path, pass, cheapOpt()); !errors.Is(err, keystore.ErrCorrupt) {
			t.Fatalf("Open(%d-byte file) = %v, want ErrCorrupt", len(b), err)
		}
	})
}

func TestCreateRefusesOverwrite(t *testing.T) {
	path := create(t, full(t))
	before := readFile(t, path)
	err := keystore.Create(path, []byte("other"), keystore.Contents{}, cheapOpt())
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create(existing) = %v, want ErrExists", err)
	}
	if after := readFile(t, path); !bytes.Equal(after, before) {
		t.Fatal("Create(existing) changed the file")
	}
	// Also while the keystore is open and locked.
	open(t, path)
	if err := keystore.Create(path, pass, keystore.Contents{}, cheapOpt()); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create(existing, open) = %v, want ErrExists", err)
	}
	// A dangling symlink is not replaced either.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(t.TempDir(), "target"), link); err != nil {
		t.Fatal(err)
	}
	if err := keystore.Create(link, pass, keystore.Contents{}, cheapOpt()); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create(dangling symlink) = %v, want ErrExists", err)
	}
}

func TestCreateInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ks")
	tests := []struct {
		name string
		pass []byte
		c    keystore.Contents
		opts []keystore.Option
		want error
	}{
		{"empty passphrase", nil, keystore.Contents{}, nil, keystore.ErrEmptyPassphrase},
		{"short seed", pass, keystore.Contents{AccountSeed: []byte{1, 2}}, nil, keystore.ErrInvalidContents},
		{"bad config", pass, keystore.Contents{}, []keystore.Option{keystore.WithConfig(keystore.Config{KDF: keystore.KDFParams{Time: 99}})}, keystore.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := keystore.Create(path, tt.pass, tt.c, append([]keystore.Option{cheapOpt()}, tt.opts...)...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Create(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Create(%s) left a file: %v", tt.name, err)
			}
		})
	}
}

// tempFiles lists the files in dir other than the keystore and its lock.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n != "ks" && n != "ks.lock" {
			names = append(names, n)
		}
	}
	return names
}

// After a failed Save the file holds the old contents if the failure came
// before the rename and the new ones after; no temporary file is left.
func TestSaveAtomic(t *testing.T) {
	tests := []struct {
		step    string
		wantNew bool
	}{
		{keystore.StepCreate, false},
		{keystore.StepWrite, false},
		{keystore.StepSync, false},
		{keystore.StepClose, false},
		{keystore.StepRename, false},
		{keystore.StepSyncDir, true},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ks")
			if err := keystore.Create(path, pass, full(t), cheapOpt()); err != nil {
				t.Fatal(err)
			}
			errInjected := errors.New("injected")
			fail := true
			fault := func(step string) error {
				if fail && step == tt.step {
					return errInjected
				}
				return nil
			}
			k := open(t, path, keystore.WithFault(fault))
			if err := k.SetSyncPosition(1000); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); !errors.Is(err, errInjected) {
				t.Fatalf("Save() failing at %s = %v, want the injected error", tt.step, err)
			}
			if names := tempFiles(t, dir); len(names) != 0 {
				t.Fatalf("Save() failing at %s left %v", tt.step, names)
			}
			_ = k.Close()
			want := uint64(42)
			if tt.wantNew {
				want = 1000
			}
			k = open(t, path, keystore.WithFault(fault))
			if got := k.Contents().SyncPosition; got != want {
				t.Fatalf("after Save() failing at %s: SyncPosition = %d, want %d", tt.step, got, want)
			}
			// The next Save works.
			fail = false
			if err := k.SetSyncPosition(2000); err != nil {
				t.Fatal(err)
			}
			if err := k.Save(); err != nil {
				t.Fatalf("Save() after a failure = %v, want nil", err)
			}
			_ = k.Close()
			if got := open(t, path).Contents().SyncPosition; got != 2000 {
				t.Fatalf("SyncPosition after retry = %d, want 2000", got)
			}
		})
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "ks")
	if err := keystore.Create(path, pass, full(t), cheapOpt()); err != nil {
		t.Fatal(err)
	}
	k := open(t, path)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{path, 0o600},
		{path + ".lock", 0o600},
		{dir, 0o700 | os.ModeDir},
		{filepath.Dir(dir), 0o700 | os.ModeDir},
	} {
		st, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode(); got != tt.want {
			t.Errorf("mode of %s = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// Nothing secret appears in the file, in any usual encoding.
func TestNoPlaintextInFile(t *testing.T) {
	c := full(t)
	path := create(t, c)
	k := open(t, path)
	if err := k.Save(); err != nil { // a saved file, too
		t.Fatal(err)
	}
	file := readFile(t, path)
	var secrets [][]byte
	for _, s := range [][]byte{c.AccountSeed, []byte(c.Token), c.Rooms["room_a"], []byte(c.Username), []byte("node.example")} {
		secrets = append(secrets, s,
			[]byte(base64.StdEncoding.EncodeToString(s)),
			[]byte(hex.EncodeToString(s)))
	}
	for _, tk := range c.Tickets {
		secrets = append(secrets, tk.SignSeed, tk.DHSeed, []byte(base64.StdEncoding.EncodeToString(tk.SignSeed)))
	}
	for _, s := range secrets {
		if bytes.Contains(file, s) {
			t.Fatalf("keystore file contains %q", s)
		}
	}
	// The account seed is 32 bytes of 0x5e; no 8-byte run of them either.
	if bytes.Contains(file, bytes.Repeat([]byte{0x5e}, 8)) {
		t.Fatal("keystore file contains a run of the seed")
	}
}

func TestNonceFreshOnEverySave(t *testing.T) {
	path := create(t, full(t))
	k := open(t, path)
	seen := map[string]bool{}
	for range 5 {
		if err := k.Save(); err != nil {
			t.Fatal(err)
		}
		b := readFile(t, path)
		n := headerSize(t, b)
		nonce := string(b[n-24 : n])
		if seen[nonce] {
			t.Fatalf("Save() reused nonce %x", nonce)
		}
		seen[nonce] = true
	}
	bad := open(t, create(t, keystore.Contents{}), keystore.WithRand(strings.NewReader("")))
	if err := bad.Save(); err == nil {
		t.Fatal("Save() with failing randomness = nil, want an error")
	}
}

func TestLocked(t *testing.T) {
	path := create(t, full(t))
	k := open(t, path)
	if _, err := keystore.Open(path, pass, cheapOpt()); !errors.Is(err, keystore.ErrLocked) {
		t.Fatalf("second Open() = %v, want ErrLocked", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	open(t, path)
}

// Concurrent Saves of one Keystore serialise: the file always opens, ends
// with the last state, and no temporary file is left.
func TestConcurrentSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ks")
	if err := keystore.Create(path, pass, keystore.Contents{}, cheapOpt()); err != nil {
		t.Fatal(err)
	}
	k := open(t, path)
	const perWorker = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*perWorker)
	for w := range 2 {
		wg.Go(func() {
			for i := range perWorker {
				name := fmt.Sprintf("w%d-%d", w, i)
				if err := k.PutRoom(name, []byte(name)); err != nil {
					errs <- err
					return
				}
				if err := k.Update(func(c *keystore.Contents) error { c.SyncPosition++; return nil }); err != nil {
					errs <- err
					return
				}
				if err := k.Save(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Save() = %v", err)
	}
	if names := tempFiles(t, dir); len(names) != 0 {
		t.Fatalf("concurrent Saves left %v", names)
	}
	want := k.Contents()
	_ = k.Close()
	got := open(t, path).Contents()
	if !equal(got, want) || got.SyncPosition != 2*perWorker || len(got.Rooms) != 2*perWorker {
		t.Fatalf("after concurrent Saves: SyncPosition %d, %d rooms, want %d and %d", got.SyncPosition, len(got.Rooms), 2*perWorker, 2*perWorker)
	}
}

func TestMutators(t *testing.T) {
	path := create(t, full(t))
	k := open(t, path)
	before := k.Contents()

	// Contents returns a copy.
	c := k.Contents()
	c.AccountSeed[0] ^= 1
	c.Rooms["room_a"][0] ^= 1
	delete(c.Rooms, "room_b")
	if !equal(k.Contents(), before) {
		t.Fatal("changing the result of Contents() changed the keystore")
	}

	errBoom := errors.New("boom")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"sync regress", func() error { return k.SetSyncPosition(41) }, keystore.ErrSyncPositionRegress},
		{"update regress", func() error {
			return k.Update(func(c *keystore.Contents) error { c.SyncPosition = 0; c.Token = "x"; return nil })
		}, keystore.ErrSyncPositionRegress},
		{"update invalid", func() error {
			return k.Update(func(c *keystore.Contents) error { c.AccountSeed = []byte{1}; c.Token = "x"; return nil })
		}, keystore.ErrInvalidContents},
		{"update fails", func() error {
			return k.Update(func(c *keystore.Contents) error { c.Token = "x"; return errBoom })
		}, errBoom},
		{"empty room name", func() error { return k.PutRoom("", []byte("x")) }, keystore.ErrInvalidContents},
		{"long room name", func() error { return k.PutRoom(strings.Repeat("r", keystore.MaxRoomNameSize+1), nil) }, keystore.ErrInvalidContents},
		{"expiry out of range", func() error { return k.SetSession("x", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) }, keystore.ErrInvalidContents},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
		}
		if !equal(k.Contents(), before) {
			t.Fatalf("%s changed the contents", tt.name)
		}
	}

	state := []byte("state")
	if err := k.PutRoom("room_c", state); err != nil {
		t.Fatal(err)
	}
	state[0] = 'X' // PutRoom copied it
	tk := ticketKeys(t, 0x90)
	id, err := k.PutTicket(3, tk)
	if err != nil {
		t.Fatal(err)
	}
	if id != tk.Public().Sign {
		t.Fatalf("PutTicket() = %v, want %v", id, tk.Public().Sign)
	}
	for _, f := range []func() error{
		func() error { return k.DeleteRoom("room_a") },
		func() error { return k.DeleteRoom("no such room") },
		func() error { return k.DeleteTicket(keys.TicketID{}) },
		func() error { return k.SetSyncPosition(42) },
		func() error { return k.SetSyncPosition(50) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	got := k.Contents()
	if string(got.Rooms["room_c"]) != "state" || got.Rooms["room_a"] != nil || len(got.Tickets) != 2 || got.SyncPosition != 50 {
		t.Fatalf("Contents() after mutations = %v", got)
	}
	if err := k.DeleteTicket(id); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Contents().Tickets[id]; ok {
		t.Fatal("DeleteTicket() left the ticket")
	}

	_ = k.Close()
	for name, f := range map[string]func() error{
		"Save":             k.Save,
		"SetSyncPosition":  func() error { return k.SetSyncPosition(60) },
		"PutRoom":          func() error { return k.PutRoom("r", nil) },
		"Update":           func() error { return k.Update(func(*keystore.Contents) error { return nil }) },
		"ChangePassphrase": func() error { return k.ChangePassphrase([]byte("x")) },
	} {
		if err := f(); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("%s() after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestSaveTooLarge(t *testing.T) {
	path := create(t, keystore.Contents{})
	k := open(t, path)
	if err := k.PutRoom("huge", make([]byte, keystore.MaxFileSize)); err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); !errors.Is(err, keystore.ErrTooLarge) {
		t.Fatalf("Save(%d bytes) = %v, want ErrTooLarge", keystore.MaxFileSize, err)
	}
}

func TestChangePassphrase(t *testing.T) {
	path := create(t, full(t))
	k := open(t, path)
	newPass := []byte("new passphrase")
	if err := k.ChangePassphrase(nil); !errors.Is(err, keystore.ErrEmptyPassphrase) {
		t.Fatalf("ChangePassphrase(empty) = %v, want ErrEmptyPassphrase", err)
	}
	if err := k.ChangePassphrase(newPass); err != nil {
		t.Fatal(err)
	}
	if err := k.SetSyncPosition(77); err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	_ = k.Close()
	if _, err := keystore.Open(path, pass, cheapOpt()); !errors.Is(err, keystore.ErrWrongPassphrase) {
		t.Fatalf("Open(old passphrase) = %v, want ErrWrongPassphrase", err)
	}
	k, err := keystore.Open(path, newPass, cheapOpt())
	if err != nil {
		t.Fatalf("Open(new passphrase) = %v", err)
	}
	defer k.Close()
	if got := k.Contents().SyncPosition; got != 77 {
		t.Fatalf("SyncPosition = %d, want 77", got)
	}

	// A failed change keeps the old key: the file still opens with it.
	path2 := create(t, full(t))
	fail := true
	k2 := open(t, path2, keystore.WithFault(func(step string) error {
		if fail && step == keystore.StepRename {
			return errors.New("injected")
		}
		return nil
	}))
	if err := k2.ChangePassphrase(newPass); err == nil {
		t.Fatal("ChangePassphrase() with a failing write = nil, want an error")
	}
	fail = false
	if err := k2.Save(); err != nil {
		t.Fatal(err)
	}
	_ = k2.Close()
	open(t, path2)
}

// Open upgrades a file written with a cheaper cost than configured, and
// never downgrades one.
func TestKDFUpgrade(t *testing.T) {
	strong := keystore.KDFParams{Time: 2, MemoryKiB: 256, Threads: 1}
	params := func(path string) keystore.KDFParams {
		b := readFile(t, path)
		return keystore.KDFParams{
			Time:      binary.BigEndian.Uint32(b[10:]),
			MemoryKiB: binary.BigEndian.Uint32(b[14:]),
			Threads:   b[18],
		}
	}
	path := create(t, full(t))
	k, err := keystore.Open(path, pass, keystore.WithConfig(keystore.Config{KDF: strong}))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	_ = k.Close()
	if got := params(path); got != strong {
		t.Fatalf("cost after Open with a stronger config and Save = %+v, want %+v", got, strong)
	}
	// Opening with the cheap config keeps the strong cost.
	k = open(t, path)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	_ = k.Close()
	if got := params(path); got != strong {
		t.Fatalf("cost after Open with a cheaper config and Save = %+v, want %+v", got, strong)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		c       keystore.Config
		wantErr bool
		count   int // problems reported
	}{
		{"zero is defaults", keystore.Config{}, false, 0},
		{"cheap", keystore.Config{KDF: cheap}, false, 0},
		{"bounds", keystore.Config{KDF: keystore.KDFParams{Time: keystore.MaxKDFTime, MemoryKiB: keystore.MaxKDFMemoryKiB, Threads: keystore.MaxKDFThreads}}, false, 0},
		{"time", keystore.Config{KDF: keystore.KDFParams{Time: keystore.MaxKDFTime + 1}}, true, 1},
		{"memory", keystore.Config{KDF: keystore.KDFParams{MemoryKiB: keystore.MaxKDFMemoryKiB + 1}}, true, 1},
		{"memory per thread", keystore.Config{KDF: keystore.KDFParams{MemoryKiB: 16, Threads: 4}}, true, 1},
		{"all at once", keystore.Config{KDF: keystore.KDFParams{Time: 100, MemoryKiB: 1 << 30, Threads: 100}}, true, 3},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, keystore.ErrInvalidConfig)) {
			t.Fatalf("%s: Validate() = %v, want error %v", tt.name, err, tt.wantErr)
		}
		if err != nil {
			if got := strings.Count(err.Error(), "outside"); got != tt.count {
				t.Fatalf("%s: Validate() reported %d problems, want %d: %v", tt.name, got, tt.count, err)
			}
		}
	}
}

func TestContentsValidate(t *testing.T) {
	tk := ticketKeys(t, 1)
	other := ticketKeys(t, 50)
	tests := []struct {
		name  string
		c     keystore.Contents
		count int // problems reported; 0 for valid
	}{
		{"zero", keystore.Contents{}, 0},
		{"full", full(t), 0},
		{"ftp URL", keystore.Contents{NodeURL: "ftp://x"}, 1},
		{"relative URL", keystore.Contents{NodeURL: "/just/a/path"}, 1},
		{"seed", keystore.Contents{AccountSeed: make([]byte, 33)}, 1},
		{"ticket of another ID", keystore.Contents{Tickets: map[keys.TicketID]keystore.Ticket{other.Public().Sign: keystore.NewTicket(1, tk)}}, 1},
		{"ticket short seed", keystore.Contents{Tickets: map[keys.TicketID]keystore.Ticket{tk.Public().Sign: {SignSeed: []byte{1}, DHSeed: seeded(2)}}}, 1},
		{"empty room name", keystore.Contents{Rooms: map[string][]byte{"": nil}}, 1},
		{"year 10000", keystore.Contents{TokenExpires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, 1},
		{"all at once", keystore.Contents{NodeURL: "x", AccountSeed: []byte{1}, Rooms: map[string][]byte{"": nil}}, 3},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.count == 0 {
			if err != nil {
				t.Fatalf("%s: Validate() = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, keystore.ErrInvalidContents) {
			t.Fatalf("%s: Validate() = %v, want ErrInvalidContents", tt.name, err)
		}
		if got := strings.Count(err.Error(), "\n") + 1; got != tt.count {
			t.Fatalf("%s: Validate() reported %d problems, want %d: %v", tt.name, got, tt.count, err)
		}
	}
}

// The lock holds across processes: a child process (this test binary,
// re-run as a helper) cannot open a keystore this one holds.
func TestLockAcrossProcesses(t *testing.T) {
	if path := os.Getenv("KEYSTORE_TEST_HELPER_OPEN"); path != "" {
		k, err := keystore.Open(path, pass, cheapOpt())
		switch {
		case errors.Is(err, keystore.ErrLocked):
			fmt.Print("locked")
		case err != nil:
			fmt.Print("error: ", err)
		default:
			_ = k.Close()
			fmt.Print("opened")
		}
		return
	}
	path := create(t, full(t))
	child := func() string {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLockAcrossProcesses$")
		cmd.Env = append(os.Environ(), "KEYSTORE_TEST_HELPER_OPEN="+path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helper process: %v", err)
		}
		s := string(out)
		for _, r := range []string{"locked", "opened"} {
			if strings.HasPrefix(s, r) {
				return r
			}
		}
		return s
	}
	k := open(t, path)
	if got := child(); got != "locked" {
		t.Fatalf("Open() in another process while held = %q, want locked", got)
	}
	_ = k.Close()
	if got := child(); got != "opened" {
		t.Fatalf("Open() in another process after Close = %q, want opened", got)
	}
}
