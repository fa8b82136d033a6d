package keystore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client/keystore"
)

func TestPassphrase(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(content))
		return p
	}
	lf := file("lf", "from-file\nsecond line\n")
	crlf := file("crlf", "from-file\r\n")
	bare := file("bare", "from-file")
	spaces := file("spaces", "  inner spaces kept  \n")
	empty := file("empty", "")
	emptyLine := file("empty-line", "\nsecond")
	long := file("long", strings.Repeat("x", 70<<10))
	missing := filepath.Join(dir, "missing")

	errPrompt := errors.New("prompt failed")
	prompt := func(p string, err error) func() ([]byte, error) {
		return func() ([]byte, error) { return []byte(p), err }
	}
	tests := []struct {
		name    string
		file    string
		envVar  string
		env     map[string]string
		prompt  func() ([]byte, error)
		want    string
		wantErr error
	}{
		{"file first", lf, "", map[string]string{"PARLEY_PASSPHRASE": "from-env"}, prompt("from-prompt", nil), "from-file", nil},
		{"file CRLF", crlf, "", nil, nil, "from-file", nil},
		{"file without newline", bare, "", nil, nil, "from-file", nil},
		{"file keeps spaces", spaces, "", nil, nil, "  inner spaces kept  ", nil},
		{"empty file", empty, "", map[string]string{"PARLEY_PASSPHRASE": "from-env"}, nil, "", keystore.ErrEmptyPassphrase},
		{"empty first line", emptyLine, "", nil, nil, "", keystore.ErrEmptyPassphrase},
		{"missing file does not fall through", missing, "", map[string]string{"PARLEY_PASSPHRASE": "from-env"}, nil, "", os.ErrNotExist},
		{"long file", long, "", nil, nil, "", nil},
		{"env second", "", "", map[string]string{"PARLEY_PASSPHRASE": "from-env"}, prompt("from-prompt", nil), "from-env", nil},
		{"env named", "", "MY_PASS", map[string]string{"MY_PASS": "mine", "PARLEY_PASSPHRASE": "from-env"}, nil, "mine", nil},
		{"named env unset", "", "MY_PASS", map[string]string{"PARLEY_PASSPHRASE": "from-env"}, prompt("from-prompt", nil), "from-prompt", nil},
		{"empty env is unset", "", "", map[string]string{"PARLEY_PASSPHRASE": ""}, prompt("from-prompt", nil), "from-prompt", nil},
		{"prompt last", "", "", nil, prompt("from-prompt", nil), "from-prompt", nil},
		{"prompt error", "", "", nil, prompt("", errPrompt), "", errPrompt},
		{"prompt empty", "", "", nil, prompt("", nil), "", keystore.ErrEmptyPassphrase},
		{"nothing", "", "", nil, nil, "", keystore.ErrNoPassphrase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"PARLEY_PASSPHRASE", "MY_PASS"} {
				t.Setenv(name, tt.env[name])
			}
			got, err := keystore.Passphrase(tt.file, tt.envVar, tt.prompt)
			if tt.name == "long file" {
				if err == nil || errors.Is(err, keystore.ErrEmptyPassphrase) {
					t.Fatalf("Passphrase(70 KiB line) = %v, want a length error", err)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Passphrase(%q, %q) = %q, %v, want error %v", tt.file, tt.envVar, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tt.want)) {
				t.Fatalf("Passphrase(%q, %q) = %q, %v, want %q", tt.file, tt.envVar, got, err, tt.want)
			}
		})
	}
}

func TestTerminalPromptNotTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_, err = keystore.TerminalPrompt(int(r.Fd()), "Passphrase: ")()
	if !errors.Is(err, keystore.ErrNoTerminal) {
		t.Fatalf("TerminalPrompt(pipe)() = %v, want ErrNoTerminal", err)
	}
	// Through Passphrase, with nothing else set.
	t.Setenv("PARLEY_PASSPHRASE", "")
	if _, err := keystore.Passphrase("", "", keystore.TerminalPrompt(int(r.Fd()), "")); !errors.Is(err, keystore.ErrNoTerminal) {
		t.Fatalf("Passphrase(pipe prompt) = %v, want ErrNoTerminal", err)
	}
}
