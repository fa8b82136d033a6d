package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// DefaultPassphraseEnv is the environment variable Passphrase reads when
// given no other name.
const DefaultPassphraseEnv = "PARLEY_PASSPHRASE" //nolint:gosec // G101: the name of a variable, not a credential

// maxPassphraseFileSize bounds what Passphrase reads from a file.
const maxPassphraseFileSize = 64 << 10

var (
	// ErrNoPassphrase is returned by Passphrase when no source has one.
	ErrNoPassphrase = errors.New("keystore: no passphrase given (use a passphrase file, " + DefaultPassphraseEnv + " or a terminal)")
	// ErrNoTerminal is returned by TerminalPrompt's prompt when its file
	// descriptor is not a terminal.
	ErrNoTerminal = errors.New("keystore: not a terminal")
)

// Passphrase returns the passphrase from the first source that is set:
//
//  1. the file flagFile, if not empty: its first line, without the line
//     ending ("\n" or "\r\n"); a file that cannot be read is an error, not
//     a reason to try the next source;
//  2. the environment variable envVar (DefaultPassphraseEnv if empty), if
//     set and not empty;
//  3. prompt, if not nil.
//
// It fails with ErrNoPassphrase when none is set and ErrEmptyPassphrase when
// the source it used gave an empty passphrase. The caller should clear the
// returned slice when done with it.
func Passphrase(flagFile, envVar string, prompt func() ([]byte, error)) ([]byte, error) {
	if flagFile != "" {
		return passphraseFile(flagFile)
	}
	if envVar == "" {
		envVar = DefaultPassphraseEnv
	}
	if v := os.Getenv(envVar); v != "" {
		return []byte(v), nil
	}
	if prompt == nil {
		return nil, ErrNoPassphrase
	}
	p, err := prompt()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, ErrEmptyPassphrase
	}
	return p, nil
}

func passphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: passphrase file: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: passphrase file: %w", err)
	}
	line, _, found := bytes.Cut(b, []byte("\n"))
	if !found && len(b) > maxPassphraseFileSize {
		clear(b)
		return nil, fmt.Errorf("keystore: passphrase file %s: first line longer than %d bytes", path, maxPassphraseFileSize)
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	p := bytes.Clone(line)
	clear(b)
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: passphrase file %s", ErrEmptyPassphrase, path)
	}
	return p, nil
}

// TerminalPrompt returns a prompt for Passphrase that writes label to
// standard error and reads a line from the terminal fd without echo. The
// prompt fails with ErrNoTerminal if fd is not a terminal.
func TerminalPrompt(fd int, label string) func() ([]byte, error) {
	return func() ([]byte, error) {
		if !term.IsTerminal(fd) {
			return nil, ErrNoTerminal
		}
		fmt.Fprint(os.Stderr, label)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("keystore: reading passphrase: %w", err)
		}
		return p, nil
	}
}
