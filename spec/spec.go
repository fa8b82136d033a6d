// Package spec holds Parley's normative protocol description (the numbered
// Markdown files in this folder) and its test vectors (testdata/*.json),
// embedded so Go tests and clients can load them. Vectors are generated from
// the code by `make vectors` and checked by the protocol packages' tests; a
// client in another language checks itself against the same files. The JSON
// layout of each file is described in testdata/README.md.
package spec

import (
	"embed"
	"encoding/json"
	"fmt"
)

// Testdata holds the test vector files, under "testdata/".
//
//go:embed testdata
var Testdata embed.FS

// Load decodes the vector file testdata/name into v.
func Load(name string, v any) error {
	b, err := Testdata.ReadFile("testdata/" + name)
	if err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("spec: decoding %s: %w", name, err)
	}
	return nil
}
