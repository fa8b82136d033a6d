package reports_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// CorpusDir holds the forged disclosures (spec 13-moderation §6), one
// base64 file each, and corpus.json, which says what every check must
// answer. `go test ./node/reports -run TestForgedCorpus -update` rewrites
// them from deterministic keys.
const corpusDir = "testdata/forged"

// Corpus is corpus.json.
type Corpus struct {
	Description  string       `json:"description"`
	Node         keys.NodeID  `json:"node"`          // the stamping node: the accused's home
	ReporterNode keys.NodeID  `json:"reporter_node"` // the reporter's home, which forwards
	NowMs        int64        `json:"now_ms"`        // verify as of this time
	Room         keys.RoomID  `json:"room"`
	Accused      CorpusSide   `json:"accused"`
	Reporter     CorpusSide   `json:"reporter"`
	Cases        []CorpusCase `json:"cases"`
}

// CorpusSide is one side of the room.
type CorpusSide struct {
	Sign    keys.TicketID  `json:"ticket"`
	DH      keys.DHPublic  `json:"ticket_dh"`
	Account keys.AccountID `json:"account"`
}

// CorpusCase is one disclosure and the answers it must get: Check from
// Verify (or "malformed" if it does not parse; "ok" if valid) at Item,
// Submit from reports.Submit by the reporter's account on the reporter's
// node, and Receive from reports.Receive on the accused's node (each a
// reports.RejectReason, or "ok").
type CorpusCase struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Check   string `json:"check"`
	Item    int    `json:"item"`
	Submit  string `json:"submit"`
	Receive string `json:"receive"`
}

var corpusNow = time.UnixMilli(1_790_000_000_000).UTC()

// generateCorpus builds the corpus from deterministic keys.
func generateCorpus(t *testing.T) (Corpus, map[string][]byte) {
	t.Helper()
	rnd := vectortest.Rand("forged disclosures")
	node, _ := keys.GenerateNodeKey(rnd)
	other, _ := keys.GenerateNodeKey(rnd)
	reporterNode, _ := keys.GenerateNodeKey(rnd)
	alice, _ := keys.GenerateTicketKeys(rnd)   // the accused sender
	bob, _ := keys.GenerateTicketKeys(rnd)     // the reporter
	mallory, _ := keys.GenerateTicketKeys(rnd) // a third party
	acctA, _ := keys.GenerateAccountKey(rnd)
	acctB, _ := keys.GenerateAccountKey(rnd)
	ra, err := room.Derive(alice, bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := room.Derive(bob, alice.Public())

	// send seals text from alice, has k stamp it at at, and opens it as bob.
	send := func(text string, k keys.NodeKey, at time.Time) disclosure.Item {
		e, err := ra.Seal(envelope.ContentText, []byte(text), at.Add(-time.Second), rnd)
		if err != nil {
			t.Fatal(err)
		}
		if err := envelope.StampBatch(k, at, []*envelope.Envelope{e}); err != nil {
			t.Fatal(err)
		}
		o, err := rb.Open(e, k.Public())
		if err != nil {
			t.Fatal(err)
		}
		it, err := disclosure.ItemFromOpened(e, o)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	stamped := corpusNow.Add(-time.Hour)
	old := send("an old insult", node, corpusNow.Add(-wire.MaxDisclosureAge-time.Hour))
	m1 := send("send me your password", node, stamped)
	m2 := send("or else", node, stamped.Add(time.Second))
	foreign := send("stamped by someone else", other, stamped)
	signed := corpusNow.Add(-time.Minute)

	sign := func(by keys.TicketKeys, at time.Time, items ...disclosure.Item) *disclosure.Disclosure {
		d := &disclosure.Disclosure{Reporter: bob.Public().Sign, Reason: disclosure.ReasonHarassment, Text: "threats", Time: at.UnixMilli(), Items: items}
		if by.Public().Sign != bob.Public().Sign {
			d.Reporter = by.Public().Sign
		}
		b, _ := d.MarshalBinary()
		d.Sig = by.Sign(wire.LabelDisclosure, b[:len(b)-keys.SignatureSize])
		return d
	}
	valid := sign(bob, signed, m1, m2)
	tampered := sign(bob, signed, m1, m2)
	tampered.Items[0].Plaintext = []byte("send me a cake recipe")
	tampered = sign(bob, signed, tampered.Items...)
	wrongKey := sign(bob, signed, m1, m2)
	wrongKey.Items[1].FrankingKey = m1.FrankingKey
	wrongKey = sign(bob, signed, wrongKey.Items...)
	// Bob's disclosure with another key's signature over the same bytes.
	resigned := sign(bob, signed, m1, m2)
	unsigned, _ := resigned.MarshalBinary()
	resigned.Sig = mallory.Sign(wire.LabelDisclosure, unsigned[:len(unsigned)-keys.SignatureSize])
	validEnc, _ := valid.MarshalBinary()

	cases := []struct {
		c   CorpusCase
		d   *disclosure.Disclosure
		raw []byte
	}{
		{CorpusCase{Name: "valid", Check: "ok", Item: -1, Submit: "ok", Receive: "ok"}, valid, nil},
		{CorpusCase{Name: "tampered-plaintext", Check: "bad_commitment", Item: 0, Submit: "bad_commitment", Receive: "bad_commitment"}, tampered, nil},
		{CorpusCase{Name: "wrong-franking-key", Check: "bad_commitment", Item: 1, Submit: "bad_commitment", Receive: "bad_commitment"}, wrongKey, nil},
		{CorpusCase{Name: "stamp-from-another-node", Check: "bad_stamp", Item: 0, Submit: "bad_stamp", Receive: "bad_stamp"}, sign(bob, signed, foreign), nil},
		{CorpusCase{Name: "reporter-not-recipient", Check: "not_recipient", Item: 0, Submit: "not_reporter", Receive: "not_reporter"}, sign(mallory, signed, m1, m2), nil},
		{CorpusCase{Name: "expired", Check: "expired", Item: 0, Submit: "expired", Receive: "expired"}, sign(bob, signed, old), nil},
		{CorpusCase{Name: "truncated", Check: "malformed", Item: -1, Submit: "malformed", Receive: "malformed"}, nil, validEnc[:len(validEnc)/2]},
		{CorpusCase{Name: "re-signed", Check: "bad_signature", Item: -1, Submit: "bad_signature", Receive: "bad_signature"}, resigned, nil},
		{CorpusCase{Name: "signed-in-the-future", Check: "from_future", Item: -1, Submit: "from_future", Receive: "from_future"}, sign(bob, corpusNow.Add(time.Hour), m1), nil},
	}
	c := Corpus{
		Description:  "Forged disclosures: each must be refused, with its reason, by Verify, by the reporter's node (Submit) and by the accused's node (Receive).",
		Node:         node.Public(),
		ReporterNode: reporterNode.Public(),
		NowMs:        corpusNow.UnixMilli(),
		Room:         ra.ID(),
		Accused:      CorpusSide{Sign: alice.Public().Sign, DH: alice.Public().DH, Account: acctA.Public()},
		Reporter:     CorpusSide{Sign: bob.Public().Sign, DH: bob.Public().DH, Account: acctB.Public()},
	}
	files := map[string][]byte{}
	for _, k := range cases {
		raw := k.raw
		if raw == nil {
			if raw, err = k.d.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
		k.c.File = k.c.Name + ".b64"
		files[k.c.File] = raw
		c.Cases = append(c.Cases, k.c)
	}
	return c, files
}

func loadCorpus(t *testing.T) (Corpus, map[string][]byte) {
	t.Helper()
	if vectortest.Updating() {
		c, files := generateCorpus(t)
		if err := os.MkdirAll(corpusDir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, raw := range files {
			text := base64.StdEncoding.EncodeToString(raw) + "\n"
			if err := os.WriteFile(filepath.Join(corpusDir, name), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(filepath.Join(corpusDir, "corpus.json"), append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(corpusDir, "corpus.json"))
	if err != nil {
		t.Fatalf("corpus missing (go test -run TestForgedCorpus -update): %v", err)
	}
	var c Corpus
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, k := range c.Cases {
		text, err := os.ReadFile(filepath.Join(corpusDir, k.File))
		if err != nil {
			t.Fatal(err)
		}
		if files[k.File], err = base64.StdEncoding.DecodeString(string(text[:len(text)-1])); err != nil {
			t.Fatal(err)
		}
	}
	return c, files
}

// corpusNode is one node's store holding the corpus room, from the
// reporter's side (reporterSide) or the accused's.
func corpusNode(t *testing.T, c Corpus, reporterSide bool) (*store.Store, *rooms.Rooms) {
	t.Helper()
	w := setup(t)
	accused := rooms.Side{Ticket: keys.TicketPublic{Sign: c.Accused.Sign, DH: c.Accused.DH}, Home: c.Node}
	reporter := rooms.Side{Ticket: keys.TicketPublic{Sign: c.Reporter.Sign, DH: c.Reporter.DH}, Home: c.ReporterNode}
	if reporterSide {
		reporter.Local, reporter.Account = true, c.Reporter.Account
	} else {
		accused.Local, accused.Account = true, c.Accused.Account
	}
	b := w.st.NewBatch()
	if err := w.rs.Put(b, rooms.Record{ID: c.Room, Created: corpusNow.Add(-40 * 24 * time.Hour), Sides: [2]rooms.Side{accused, reporter}}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return w.st, w.rs
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return reports.RejectReason(err)
}

// spec 13-moderation §6, spec 05 §4, §5: every forged disclosure of the
// corpus is refused with its reason by Verify, by the reporter's node and
// by the accused's node; the valid one passes all three.
func TestForgedCorpus(t *testing.T) {
	c, files := loadCorpus(t)
	ctx := context.Background()
	now := func() time.Time { return time.UnixMilli(c.NowMs) }
	for _, k := range c.Cases {
		t.Run(k.Name, func(t *testing.T) {
			raw := files[k.File]
			d, perr := disclosure.Parse(raw)
			check, item := "malformed", -1
			if perr == nil {
				check = "ok"
				var ve *disclosure.VerifyError
				if err := disclosure.Verify(d, c.Node, now()); errors.As(err, &ve) {
					check, item = ve.Check.String(), ve.Item
				} else if err != nil {
					t.Fatalf("Verify = %v, not a *VerifyError", err)
				}
			}
			if check != k.Check || item != k.Item {
				t.Errorf("Verify = %s/%d, want %s/%d", check, item, k.Check, k.Item)
			}

			st, rs := corpusNode(t, c, true)
			r := reports.New(st, rs, now)
			submit := "malformed"
			if perr == nil {
				_, err := r.Submit(ctx, c.Reporter.Account, d)
				submit = outcome(err)
			}
			if submit != k.Submit {
				t.Errorf("Submit = %s, want %s", submit, k.Submit)
			}

			st, rs = corpusNode(t, c, false)
			r = reports.New(st, rs, now)
			_, err := r.Receive(ctx, c.ReporterNode, raw)
			if got := outcome(err); got != k.Receive {
				t.Errorf("Receive = %s (%v), want %s", got, err, k.Receive)
			}
			list, _ := r.List(ctx, 0)
			if want := btoi(k.Receive == "ok"); len(list) != want {
				t.Errorf("accused's node stored %d reports, want %d", len(list), want)
			}
		})
	}
	if t.Failed() {
		return
	}
	// The corpus is what the generator makes.
	gen, genFiles := generateCorpus(t)
	gb, _ := json.Marshal(gen)
	cb, _ := json.Marshal(c)
	if string(gb) != string(cb) {
		t.Error("corpus.json differs from the generator's output: run with -update")
	}
	for name, raw := range genFiles {
		if string(files[name]) != string(raw) {
			t.Errorf("%s differs from the generator's output: run with -update", name)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
