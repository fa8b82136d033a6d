package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// requestTypes are the request bodies of spec 09, with their body limits.
var requestTypes = []struct {
	name  string
	limit int64
	new   func() any
}{
	{"register", 64 << 10, func() any { return new(registerRequest) }},
	{"challenge", 64 << 10, func() any { return new(challengeRequest) }},
	{"login", 64 << 10, func() any { return new(loginRequest) }},
	{"pair", 64 << 10, func() any { return new(pairRequest) }},
	{"send", 128 << 10, func() any { return new(sendRequest) }},
	{"ack", 64 << 10, func() any { return new(ackRequest) }},
	{"report", 4 << 20, func() any { return new(reportRequest) }},
}

// FuzzDecodeRequest feeds arbitrary bytes to the strict decoder of every
// request type, at its real limit and at a small one: it never panics, and
// every failure is a 400 (bad_request, bad_envelope or bad_disclosure) or,
// only over the limit, a 413.
func FuzzDecodeRequest(f *testing.F) {
	for i, seed := range []string{
		`{"username":"alice","identity_key":"acct_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","invite":"x"}`,
		`{"username":"alice"}`,
		`{"username":"alice","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"ticket":{"sign":"tks_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","dh":"tkx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"interests":["AAAAAAAAAAAAAAAAAAAAAA=="]}`,
		`{"txid":"t","envelope":"AQE="}`,
		`{"upto":1}`,
		`{"disclosure":"AQ=="}`,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Add(uint8(5), []byte(`{"upto":1,"upto":2}`))
	f.Add(uint8(5), []byte(`{"UPTO":1}`))
	f.Add(uint8(3), []byte(`{"ticket":{"sign":null}}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		rt := requestTypes[int(which)%len(requestTypes)]
		for _, limit := range []int64{rt.limit, 64} {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(data))
			req.Header.Set("Content-Type", "application/json")
			b, err := readBody(httptest.NewRecorder(), req, limit)
			if err == nil {
				err = decodeStrict(b, rt.new())
			}
			if err == nil {
				continue
			}
			status, code, _, known := classify(err)
			switch {
			case !known:
				t.Fatalf("decoding a %s request %q = %v, not a mapped error", rt.name, data, err)
			case status == 413 && int64(len(data)) <= limit:
				t.Fatalf("decoding a %s request of %d bytes = 413 under the limit %d", rt.name, len(data), limit)
			case status != 400 && status != 413:
				t.Fatalf("decoding a %s request %q = %d %s, want 400 or 413", rt.name, data, status, code)
			}
		}
	})
}

// FuzzWebSocketClientMessage feeds arbitrary frames to the decoder of a
// sync WebSocket client's messages: it never panics, fails only with
// ErrBadRequest, and what it accepts is exactly one of {"ack": N} and a
// send with a request number, a room, a transaction ID and an unstamped
// envelope, which encodes back to a message that decodes the same.
func FuzzWebSocketClientMessage(f *testing.F) {
	h := &harness{fake: newFakeNode(f)}
	alice, bob := newUser(f, "alice"), newUser(f, "bob")
	r := h.fake.addRoom(alice, bob, "alice-bob")
	_, enc := sealed(f, r, 0, 1, t0)
	for _, seed := range []string{
		`{"ack":1}`, `{"ack": 18446744073709551615}`, `{"ack":-1}`, `{"nack":1}`, `{"ack":1}{}`, `{"ack":1,"ack":2}`, ``, `[]`,
		`{"send":{"req":1,"room":"` + r.id.String() + `","txid":"t-1","envelope":"` + enc + `"}}`,
		`{"send":{"req":1,"room":"` + r.id.String() + `","txid":"t-1"}}`,
		`{"ack":2,"send":{"req":1,"room":"` + r.id.String() + `","txid":"t-1","envelope":"` + enc + `"}}`,
	} {
		f.Add([]byte(seed))
	}
	const limit = 128 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeWSClientMessage(data, limit)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("decodeWSClientMessage(%q) = %v, want ErrBadRequest", data, err)
			}
			return
		}
		var again []byte
		switch {
		case m.Ack != nil && m.Send == nil:
			again = fmt.Appendf(nil, `{"ack":%d}`, *m.Ack)
		case m.Ack == nil && m.Send != nil:
			q := m.Send
			if q.env == nil || q.env.Stamp != nil || q.txid == "" {
				t.Fatalf("decodeWSClientMessage(%q) accepted a send without a valid unstamped envelope and txid", data)
			}
			b, err := q.env.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			again, _ = json.Marshal(map[string]any{"send": map[string]any{"req": *q.Req, "room": q.room.String(), "txid": q.txid, "envelope": b64.EncodeToString(b)}})
		default:
			t.Fatalf("decodeWSClientMessage(%q) accepted a message with ack %v and send %v", data, m.Ack, m.Send)
		}
		m2, err := decodeWSClientMessage(again, limit)
		if err != nil {
			t.Fatalf("decodeWSClientMessage(%q) = %v, but it was accepted as %q", again, err, data)
		}
		if (m.Ack == nil) != (m2.Ack == nil) || (m.Ack != nil && *m.Ack != *m2.Ack) ||
			(m.Send != nil && (m2.Send == nil || *m.Send.Req != *m2.Send.Req || m.Send.room != m2.Send.room || m.Send.txid != m2.Send.txid || m.Send.env.ID() != m2.Send.env.ID())) {
			t.Fatalf("decodeWSClientMessage(%q) and of its re-encoding %q differ", data, again)
		}
	})
}
