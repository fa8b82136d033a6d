package api

import (
	"bytes"
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
// ErrBadRequest, and what it accepts is exactly {"ack": N}.
func FuzzWebSocketClientMessage(f *testing.F) {
	for _, seed := range []string{`{"ack":1}`, `{"ack": 18446744073709551615}`, `{"ack":-1}`, `{"nack":1}`, `{"ack":1}{}`, `{"ack":1,"ack":2}`, ``, `[]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeWSClientMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("decodeWSClientMessage(%q) = %v, want ErrBadRequest", data, err)
			}
			return
		}
		again, err := decodeWSClientMessage(fmt.Appendf(nil, `{"ack":%d}`, n))
		if err != nil || again != n {
			t.Fatalf("decodeWSClientMessage(%q) = %d, but {\"ack\":%d} decodes to %d, %v", data, n, n, again, err)
		}
	})
}
