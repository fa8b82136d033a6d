package blob

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Link is what a client shares to give someone a blob (spec 08-blobs §6):
// where to fetch it, which blob, and the key to open it. Its text form is
//
//	parley://<origin peer ID>/blob/<address>#<key in unpadded base64url>
//
// The key is only in the #fragment, which by URL convention never leaves the
// client: a node is given the Locator, never the Link.
type Link struct {
	Origin  keys.NodeID // the node the blob was uploaded to
	Address Address
	Key     Key
}

// Locator is a Link without its key: what a client may send to a node to
// fetch a blob. Its text form is the link's text up to the '#'.
type Locator struct {
	Origin  keys.NodeID
	Address Address
}

const (
	linkScheme = "parley://"
	linkPath   = "/blob/"
)

var b64 = base64.RawURLEncoding

// keyTextLen is the length of a key's text form in a link's fragment.
var keyTextLen = b64.EncodedLen(KeySize)

// String returns the link's text form, which contains the key.
func (l Link) String() string {
	return l.Locator().String() + "#" + b64.EncodeToString(l.Key[:])
}

// Locator returns the link without its key.
func (l Link) Locator() Locator { return Locator{Origin: l.Origin, Address: l.Address} }

// String returns the locator's text form, parley://<peer ID>/blob/<address>.
func (l Locator) String() string {
	return linkScheme + l.Origin.String() + linkPath + l.Address.String()
}

// ParseLink parses the text form of a Link. It accepts only what String
// returns: at most wire.MaxBlobLink bytes, the exact scheme, an Ed25519
// libp2p peer ID with no userinfo or port, the path /blob/<address>, no
// query, no percent-encoding, and a fragment holding exactly the canonical
// base64url form of a key. Every error is (or wraps) a *wire.ParseError; a
// link without a key (no fragment, or an empty one) also matches ErrNoKey.
func ParseLink(s string) (Link, error) {
	const what = "blob link"
	if len(s) > wire.MaxBlobLink {
		return Link{}, &wire.ParseError{What: what, Reason: fmt.Sprintf("%d bytes exceeds limit %d", len(s), wire.MaxBlobLink)}
	}
	loc, frag, hasFrag := strings.Cut(s, "#")
	l, perr := parseLocator(what, loc)
	if perr != nil {
		return Link{}, perr
	}
	if !hasFrag || frag == "" {
		return Link{}, fmt.Errorf("%w: %w", ErrNoKey, &wire.ParseError{What: what, Field: "key", Offset: len(s), Reason: "no #fragment with the key"})
	}
	keyErr := &wire.ParseError{What: what, Field: "key", Offset: len(loc) + 1, Reason: "not the unpadded base64url form of a 32-byte key"}
	if len(frag) != keyTextLen {
		return Link{}, keyErr
	}
	b, err := b64.Strict().DecodeString(frag)
	if err != nil || len(b) != KeySize {
		return Link{}, keyErr
	}
	var k Key
	copy(k[:], b)
	// The decoder skips line breaks: accept only the canonical form.
	if b64.EncodeToString(k[:]) != frag {
		return Link{}, keyErr
	}
	return Link{Origin: l.Origin, Address: l.Address, Key: k}, nil
}

// ParseLocator parses the text form of a Locator, as strictly as ParseLink
// parses a link's. A fragment is refused: a locator never carries a key.
// Every error is a *wire.ParseError.
func ParseLocator(s string) (Locator, error) {
	const what = "blob locator"
	if len(s) > wire.MaxBlobLink {
		return Locator{}, &wire.ParseError{What: what, Reason: fmt.Sprintf("%d bytes exceeds limit %d", len(s), wire.MaxBlobLink)}
	}
	l, perr := parseLocator(what, s)
	if perr != nil {
		return Locator{}, perr
	}
	return l, nil
}

// parseLocator parses "parley://<peer ID>/blob/<address>", naming what in
// errors. Offsets are byte offsets into s.
func parseLocator(what, s string) (Locator, *wire.ParseError) {
	fail := func(field string, off int, format string, args ...any) (Locator, *wire.ParseError) {
		return Locator{}, &wire.ParseError{What: what, Field: field, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	rest, ok := strings.CutPrefix(s, linkScheme)
	if !ok {
		return fail("scheme", 0, "does not start with %q", linkScheme)
	}
	for i := len(linkScheme); i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '/':
		case c == '?':
			return fail("", i, "query not allowed")
		case c == '@':
			return fail("", i, "userinfo not allowed")
		case c == ':':
			return fail("", i, "port not allowed")
		case c == '%':
			return fail("", i, "percent-encoding not allowed")
		case c == '#':
			return fail("", i, "fragment not allowed: a locator never carries a key")
		default:
			return fail("", i, "character %q not allowed", c)
		}
	}
	origin, _, _ := strings.Cut(rest, "/")
	node, err := keys.ParseNodeID(origin)
	if err != nil || node.String() != origin {
		return fail("origin", len(linkScheme), "not an Ed25519 libp2p peer ID")
	}
	off := len(linkScheme) + len(origin)
	addr, ok := strings.CutPrefix(s[off:], linkPath)
	if !ok {
		return fail("path", off, "path is not %s<address>", linkPath)
	}
	off += len(linkPath)
	var a Address
	if reason := parseAddress(addr, &a); reason != "" {
		return fail("address", off, "%s", reason)
	}
	return Locator{Origin: node, Address: a}, nil
}
