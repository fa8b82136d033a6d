package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/daemon"
)

// corpus is the forged-disclosure corpus of node/reports (spec
// 13-moderation §6).
const corpus = "../reports/testdata/forged"

// spec 13-moderation §6, spec 05 §4: `parleyd report verify` passes the
// valid disclosure and refuses every forgery, naming the failed check, from
// base64 or binary files.
func TestReportVerifyCorpus(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(corpus, "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Node  string `json:"node"`
		NowMs int64  `json:"now_ms"`
		Cases []struct {
			Name, File, Check string
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(c.NowMs).UTC().Format(time.RFC3339)
	bin := t.TempDir()
	for _, k := range c.Cases {
		path := filepath.Join(corpus, k.File)
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
		if err != nil {
			t.Fatal(err)
		}
		binPath := filepath.Join(bin, k.Name+".bin")
		if err := os.WriteFile(binPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, binPath} {
			out, _, err := run(context.Background(), t, nil, "report", "verify", p, "--node", c.Node, "--at", at)
			if k.Check == "ok" {
				if err != nil || !strings.Contains(out, "VERIFIED:") || strings.Contains(out, "FAIL") || !strings.Contains(out, "send me your password") {
					t.Errorf("report verify %s = %v\n%s", p, err, out)
				}
				continue
			}
			if !errors.Is(err, daemon.ErrNotVerified) || !strings.Contains(out, "NOT VERIFIED: "+k.Check) || strings.Count(out, "FAIL ") != 1 {
				t.Errorf("report verify %s = %v\n%s\nwant NOT VERIFIED: %s", p, err, out, k.Check)
			}
		}
	}
	// The wrong node: the stamps do not verify.
	out, _, err := run(context.Background(), t, nil, "report", "verify", filepath.Join(corpus, "valid.b64"), "--quiet", "--at", at,
		"--node", "12D3KooWGh8PnquzMGPm2Gwb7ctpuoN3GBw9fntb5mWgjG9G3WLV")
	if !errors.Is(err, daemon.ErrNotVerified) || out != "NOT VERIFIED: bad_stamp\n" {
		t.Errorf("report verify with another node = %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"report"},
		{"report", "verify"},
		{"report", "verify", "x.b64"},
		{"report", "check", "x", "--node", c.Node},
	} {
		if _, _, err := run(context.Background(), t, nil, args...); !errors.Is(err, daemon.ErrUsage) {
			t.Errorf("%q = %v, want ErrUsage", args, err)
		}
	}
	if _, _, err := run(context.Background(), t, nil, "report", "verify", "x", "--node", "nope"); err == nil || errors.Is(err, daemon.ErrUsage) {
		t.Errorf("a bad --node = %v", err)
	}
}
