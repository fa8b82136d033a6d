package daemon

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

const reportUsage = `usage: parleyd report verify FILE --node PEER_ID [--at TIME] [--quiet]

Verifies a disclosure (a report, spec/05-disclosures.md) offline: FILE holds
its encoding, binary or base64 ("-" reads standard input); PEER_ID is the
stamping node, the accused sender's home node, which you know from elsewhere
(never from the file). Prints each check and whether it passed; exits 0 if
the disclosure verifies and 1 if not. --at checks as of TIME (RFC 3339)
instead of now; --quiet prints only the verdict.
`

// ErrNotVerified is returned by `parleyd report verify` for a disclosure
// that does not verify; the checks have been printed.
var ErrNotVerified = errors.New("the disclosure does not verify")

// verifyChecks are Verify's checks in order, with the words the command
// prints (spec 05-disclosures §4).
var verifyChecks = []struct {
	check disclosure.Check
	what  string
}{
	{disclosure.CheckMalformed, "structure (§2, §4.1)"},
	{disclosure.CheckRecipient, "every message was sent to the reporter (§4.2)"},
	{disclosure.CheckCommitment, "plaintexts and franking keys open the commitments (§4.3)"},
	{disclosure.CheckStamp, "the stamping node stamped every header (§4.4)"},
	{disclosure.CheckStampTime, "no stamp lies in the future (§4.5)"},
	{disclosure.CheckAge, "no stamp is older than the reportable age (§4.5)"},
	{disclosure.CheckSignature, "the reporter's signature (§4.6)"},
	{disclosure.CheckTime, "the disclosure's time is not in the future (§4.7)"},
}

func cmdReport(e Env) error {
	if len(e.Args) < 2 || e.Args[1] != "verify" {
		fmt.Fprint(e.Stderr, reportUsage)
		return ErrUsage
	}
	fl := flag.NewFlagSet("report verify", flag.ContinueOnError)
	fl.SetOutput(e.Stderr)
	fl.Usage = func() { fmt.Fprint(e.Stderr, reportUsage) }
	nodeText := fl.String("node", "", "the stamping node's peer ID (required)")
	at := fl.String("at", "", "verify as of this time (RFC 3339; default now)")
	quiet := fl.Bool("quiet", false, "print only the verdict")
	pos, err := parseInterspersed(fl, e.Args[2:])
	if err != nil {
		return ErrUsage
	}
	if len(pos) != 1 || *nodeText == "" {
		fmt.Fprint(e.Stderr, reportUsage)
		return ErrUsage
	}
	node, err := keys.ParseNodeID(*nodeText)
	if err != nil {
		return fmt.Errorf("--node %q is not a node's peer ID: %w", *nodeText, err)
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("--at: %w", err)
		}
	}
	raw, err := readDisclosureFile(pos[0])
	if err != nil {
		return err
	}
	return verifyReport(e.Stdout, raw, node, now, *quiet)
}

// maxReportFile bounds what `report verify` reads: a disclosure of the
// largest size in base64, with line breaks.
const maxReportFile = wire.MaxDisclosureSize/3*4 + wire.MaxDisclosureSize/32 + 16

// readDisclosureFile reads path ("-": standard input), at most
// maxReportFile bytes, and decodes base64 if the whole file is base64.
func readDisclosureFile(path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path) // #nosec G304 -- the operator names the file to check
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxReportFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxReportFile {
		return nil, fmt.Errorf("%s is larger than any disclosure (%d bytes at most, in base64)", path, maxReportFile)
	}
	return DecodeDisclosureText(b), nil
}

// DecodeDisclosureText returns b decoded if it is base64 (standard or URL
// alphabet, padded or not, whitespace ignored), else b itself: a binary
// disclosure starts with its version byte 1, never a base64 character.
func DecodeDisclosureText(b []byte) []byte {
	text := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, string(b))
	if text == "" {
		return b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(text); err == nil {
			return d
		}
	}
	return b
}

// verifyReport parses and verifies raw and prints the checks.
func verifyReport(w io.Writer, raw []byte, node keys.NodeID, now time.Time, quiet bool) error {
	var buf bytes.Buffer
	d, err := disclosure.Parse(raw)
	var failed *disclosure.VerifyError
	if err != nil {
		failed = &disclosure.VerifyError{Check: disclosure.CheckMalformed, Item: -1, Err: err}
	} else {
		room, ticket := d.Accused()
		fmt.Fprintf(&buf, "disclosure of %d message(s), reason %s, signed %s\n  reporter: %s\n  room:     %s\n  accused:  %s\n  stamping node: %s\n  checked as of %s\n",
			len(d.Items), d.Reason, time.UnixMilli(d.Time).UTC().Format(time.RFC3339), d.Reporter, room, ticket, node, now.UTC().Format(time.RFC3339))
		if err := disclosure.Verify(d, node, now); err != nil && !errors.As(err, &failed) {
			return err
		}
	}
	passed := true
	for _, c := range verifyChecks {
		status := "ok  "
		switch {
		case failed != nil && c.check == failed.Check:
			status = "FAIL"
			passed = false
		case !passed:
			status = "--  "
		}
		fmt.Fprintf(&buf, "%s %s\n", status, c.what)
		if status == "FAIL" {
			where := ""
			if failed.Item >= 0 {
				where = fmt.Sprintf(" (item %d)", failed.Item)
			}
			fmt.Fprintf(&buf, "     %s%s: %v\n", failed.Check, where, failed.Err)
		}
	}
	if failed == nil {
		fmt.Fprintf(&buf, "VERIFIED: node %s stamped these messages to the reporter, and the reporter signed this report\n", node)
		for i, it := range d.Items {
			fmt.Fprintf(&buf, "\nmessage %d (seq %d, stamped %s):\n  %s\n", i+1, it.Header.Seq, it.Stamp.TimeOf().UTC().Format(time.RFC3339), strings.ToValidUTF8(string(it.Plaintext), "\uFFFD"))
		}
	} else {
		fmt.Fprintf(&buf, "NOT VERIFIED: %s\n", failed.Check)
	}
	if quiet {
		buf.Reset()
		if failed == nil {
			fmt.Fprintln(&buf, "VERIFIED")
		} else {
			fmt.Fprintf(&buf, "NOT VERIFIED: %s\n", failed.Check)
		}
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	if failed != nil {
		return fmt.Errorf("%w: %s", ErrNotVerified, failed.Check)
	}
	return nil
}
