package keystore_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client/keystore"
)

// secretStrings returns what must never be printed for c.
func secretStrings(c keystore.Contents) []string {
	s := []string{c.Token, string(c.Rooms["room_a"]), base64.StdEncoding.EncodeToString(c.AccountSeed),
		fmt.Sprint(c.AccountSeed), fmt.Sprintf("%x", c.AccountSeed), "ROOM-STATE"}
	for _, t := range c.Tickets {
		s = append(s, fmt.Sprint(t.SignSeed), fmt.Sprintf("%x", t.DHSeed), base64.StdEncoding.EncodeToString(t.SignSeed))
	}
	return s
}

func TestContentsRedacted(t *testing.T) {
	c := full(t)
	c.NodeURL = "https://user:hunter2pw@node.example/"
	secrets := append(secretStrings(c), "hunter2pw")
	var tk keystore.Ticket
	for _, v := range c.Tickets {
		tk = v
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, tk),
			fmt.Sprintf(verb, []keystore.Contents{c}), fmt.Sprintf(verb, c.Tickets))
	}
	outputs = append(outputs, c.String(), c.GoString(), tk.String(), tk.GoString())
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("contents", "contents", c, "ticket", tk, "tickets", c.Tickets)
	}
	outputs = append(outputs, logs.String())
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("printed contents %q contain secret %q", out, s)
			}
		}
	}
	if got := c.String(); !strings.Contains(got, "alice-the-user") || !strings.Contains(got, "SyncPosition:42") {
		t.Errorf("Contents.String() = %q, want the username and sync position", got)
	}
	if _, err := json.Marshal(c); err == nil {
		t.Error("json.Marshal(Contents) = nil error, want a refusal")
	}
	if _, err := json.Marshal(tk); err == nil {
		t.Error("json.Marshal(Ticket) = nil error, want a refusal")
	}
}

// Errors never carry the passphrase or the contents.
func TestErrorsCarryNoSecrets(t *testing.T) {
	c := full(t)
	path := create(t, c)
	secrets := append(secretStrings(c), string(pass), "wrong-passphrase-xyz")
	var errs []error
	_, err := keystore.Open(path, []byte("wrong-passphrase-xyz"), cheapOpt())
	errs = append(errs, err)
	bad := c
	bad.AccountSeed = []byte("short")
	bad.NodeURL = "https://u:hunter2pw@"
	errs = append(errs,
		keystore.Create(filepath.Join(t.TempDir(), "ks"), pass, bad, cheapOpt()),
		bad.Validate())
	secrets = append(secrets, "hunter2pw")
	for _, err := range errs {
		if err == nil {
			t.Fatal("want an error")
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("error %q contains secret %q", err, s)
			}
		}
	}
	if !errors.Is(errs[0], keystore.ErrWrongPassphrase) {
		t.Fatalf("Open(wrong) = %v, want ErrWrongPassphrase", errs[0])
	}
}
