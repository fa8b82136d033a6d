package blob_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

func testLink(t testing.TB) blob.Link {
	t.Helper()
	nk, err := keys.GenerateNodeKey(vectortest.Rand("link origin"))
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, "link key")
	m, _ := encrypt(t, key, pattern(1000))
	return blob.Link{Origin: nk.Public(), Address: m.Address(), Key: key}
}

// spec 08-blobs §6: the link text form round-trips, carries the key only
// after '#', and its locator is the text before the '#'.
func TestLinkRoundTrip(t *testing.T) {
	l := testLink(t)
	s := l.String()
	loc := l.Locator().String()
	want := "parley://" + l.Origin.String() + "/blob/" + l.Address.String()
	if loc != want {
		t.Errorf("Locator().String() = %q, want %q", loc, want)
	}
	before, frag, ok := strings.Cut(s, "#")
	if !ok || before != loc || len(frag) != 43 {
		t.Errorf("Link.String() = %q, want the locator, '#', 43 base64url characters", s)
	}
	if len(s) > wire.MaxBlobLink {
		t.Errorf("len(Link.String()) = %d > MaxBlobLink", len(s))
	}
	back, err := blob.ParseLink(s)
	if err != nil || back != l {
		t.Errorf("ParseLink(%q) = %v, want the link back", s, err)
	}
	bl, err := blob.ParseLocator(loc)
	if err != nil || bl != l.Locator() {
		t.Errorf("ParseLocator(%q) = %v, %v, want the locator back", loc, bl, err)
	}
	if strings.Contains(loc, frag) {
		t.Error("the locator contains the key's text")
	}
}

// spec 08-blobs §6: ParseLink accepts only the exact grammar.
func TestParseLinkStrict(t *testing.T) {
	l := testLink(t)
	s := l.String()
	loc := l.Locator().String()
	peer := l.Origin.String()
	addr := l.Address.String()
	_, frag, _ := strings.Cut(s, "#")
	var zero blob.Key
	zeroFrag := strings.TrimPrefix(blob.Link{Origin: l.Origin, Address: l.Address, Key: zero}.String(), loc+"#")
	tests := []struct {
		name  string
		in    string
		noKey bool
	}{
		{"empty", "", false},
		{"no fragment", loc, true},
		{"empty fragment", loc + "#", true},
		{"https scheme", "https://" + strings.TrimPrefix(s, "parley://"), false},
		{"upper-case scheme", "PARLEY://" + strings.TrimPrefix(s, "parley://"), false},
		{"one slash", "parley:/" + strings.TrimPrefix(s, "parley://"), false},
		{"no scheme", strings.TrimPrefix(s, "parley://"), false},
		{"leading space", " " + s, false},
		{"trailing space", s + " ", false},
		{"trailing newline", s + "\n", false},
		{"userinfo", "parley://user@" + strings.TrimPrefix(s, "parley://"), false},
		{"port", "parley://" + peer + ":4001/blob/" + addr + "#" + frag, false},
		{"query", loc + "?x=1#" + frag, false},
		{"empty query", loc + "?#" + frag, false},
		{"percent-encoded", "parley://" + peer + "/blo%62/" + addr + "#" + frag, false},
		{"bad peer ID", "parley://12D3KooWxxxxxxxx/blob/" + addr + "#" + frag, false},
		{"empty peer ID", "parley:///blob/" + addr + "#" + frag, false},
		{"peer ID with extra 1", "parley://1" + peer + "/blob/" + addr + "#" + frag, false},
		{"RSA-style peer ID", "parley://QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/blob/" + addr + "#" + frag, false},
		{"no path", "parley://" + peer + "#" + frag, false},
		{"other path", "parley://" + peer + "/file/" + addr + "#" + frag, false},
		{"upper-case path", "parley://" + peer + "/BLOB/" + addr + "#" + frag, false},
		{"double slash", "parley://" + peer + "//blob/" + addr + "#" + frag, false},
		{"trailing slash", loc + "/#" + frag, false},
		{"extra segment", loc + "/x#" + frag, false},
		{"bad address", "parley://" + peer + "/blob/" + addr[:len(addr)-1] + "#" + frag, false},
		{"upper-case address", "parley://" + peer + "/blob/" + strings.ToUpper(addr) + "#" + frag, false},
		{"address without prefix", "parley://" + peer + "/blob/" + addr[5:] + "#" + frag, false},
		{"short key", loc + "#" + frag[:42], false},
		{"long key", loc + "#" + frag + "A", false},
		{"padded key", loc + "#" + frag + "=", false},
		{"standard base64 key", loc + "#" + strings.NewReplacer("-", "+", "_", "/").Replace(frag), false},
		{"non-canonical key", loc + "#" + zeroFrag[:42] + "B", false},
		{"second fragment", s + "#" + frag, false},
		{"key with newline", loc + "#" + frag[:20] + "\n" + frag[20:42], false},
		{"oversize", s + strings.Repeat("a", wire.MaxBlobLink), false},
		{"oversize without fragment", loc + strings.Repeat("a", wire.MaxBlobLink), false},
		{"non-ASCII", "parley://" + peer + "/blob/" + addr + "é#" + frag, false},
	}
	for _, tt := range tests {
		got, err := blob.ParseLink(tt.in)
		var pe *wire.ParseError
		if !errors.As(err, &pe) || got != (blob.Link{}) {
			t.Errorf("%s: ParseLink(%q) = %v, want a *wire.ParseError", tt.name, tt.in, err)
			continue
		}
		if errors.Is(err, blob.ErrNoKey) != tt.noKey {
			t.Errorf("%s: ParseLink(%q) = %v, want ErrNoKey %v", tt.name, tt.in, err, tt.noKey)
		}
		if !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: ParseLink error %v does not match wire.ErrMalformed", tt.name, err)
		}
	}
	// The standard-base64 case is a failure case only if the key's text has
	// a '-' or '_'.
	if !strings.ContainsAny(frag, "-_") {
		t.Errorf("test key text %q has no URL-specific characters; pick another", frag)
	}
}

// spec 08-blobs §6: a locator never carries a key, and parses as strictly.
func TestParseLocatorStrict(t *testing.T) {
	l := testLink(t)
	loc := l.Locator().String()
	for _, in := range []string{
		l.String(), // a full link: refused, not stripped
		loc + "#",
		loc + "?a",
		loc + "/",
		"parley://" + strings.Repeat("1", 600),
		"https://" + strings.TrimPrefix(loc, "parley://"),
	} {
		got, err := blob.ParseLocator(in)
		var pe *wire.ParseError
		if !errors.As(err, &pe) || got != (blob.Locator{}) {
			t.Errorf("ParseLocator(%q) = %v, %v, want a *wire.ParseError", in, got, err)
		}
	}
}
