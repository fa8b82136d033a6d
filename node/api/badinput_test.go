package api

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// endpoint is one route of spec 09 with a valid request, from which the
// bad-input table derives its cases.
type endpoint struct {
	method, path string
	auth         bool
	limit        int64 // body limit; 0: the endpoint takes no body
	// body returns a valid body; dup is one of its members, to repeat.
	body func(h *harness) (body, dup string)
	// cases are the endpoint's own bad inputs.
	cases func(h *harness) []badCase
}

type badCase struct {
	name       string
	path       string // default: the endpoint's
	body       string
	wantStatus int
	wantCode   string
}

func endpoints() []endpoint {
	ticket := func() map[string]any {
		k, _ := keys.GenerateTicketKeys(strings.NewReader(strings.Repeat("k", 64)))
		return map[string]any{"sign": k.Public().Sign.String(), "dh": k.Public().DH.String()}
	}
	tag := b64.EncodeToString(make([]byte, 16))
	bad := func(name, body string) badCase {
		return badCase{name: name, body: body, wantStatus: 400, wantCode: "bad_request"}
	}
	return []endpoint{
		{
			method: "POST", path: "/v1/register", limit: 64 << 10,
			body: func(h *harness) (string, string) {
				return mustJSON(h.t, map[string]any{"username": "dave", "identity_key": newUser(h.t, "dave").id.String(), "invite": "x"}), `"username":"eve"`
			},
			cases: func(h *harness) []badCase {
				id := newUser(h.t, "dave").id.String()
				reg := func(user, key any) string {
					return mustJSON(h.t, map[string]any{"username": user, "identity_key": key})
				}
				return []badCase{
					bad("wrong type", reg(12, id)),
					bad("username too short", reg("ab", id)),
					bad("username too long", reg(strings.Repeat("a", 33), id)),
					bad("username in upper case", reg("Dave", id)),
					bad("username starting with a digit", reg("1dave", id)),
					bad("username with a space", reg("da ve", id)),
					bad("missing identity key", `{"username":"dave"}`),
					bad("bad key text", reg("dave", "acct_xyz")),
					bad("key of another kind", reg("dave", "tks_"+id[5:])),
					bad("padded key text", reg("dave", id+"=")),
					bad("invite too long", mustJSON(h.t, map[string]any{"username": "dave", "identity_key": id, "invite": strings.Repeat("i", 257)})),
					bad("invite of the wrong type", mustJSON(h.t, map[string]any{"username": "dave", "identity_key": id, "invite": 1})),
				}
			},
		},
		{
			method: "POST", path: "/v1/login/challenge", limit: 64 << 10,
			body: func(h *harness) (string, string) { return `{"username":"alice"}`, `"username":"bob"` },
			cases: func(h *harness) []badCase {
				return []badCase{bad("wrong type", `{"username":["alice"]}`), bad("bad username", `{"username":"a"}`)}
			},
		},
		{
			method: "POST", path: "/v1/login", limit: 64 << 10,
			body: func(h *harness) (string, string) {
				return mustJSON(h.t, map[string]any{"username": "alice", "nonce": b64.EncodeToString(make([]byte, 32)), "signature": b64.EncodeToString(make([]byte, 64))}), `"username":"bob"`
			},
			cases: func(h *harness) []badCase {
				login := func(nonce, sig any) string {
					return mustJSON(h.t, map[string]any{"username": "alice", "nonce": nonce, "signature": sig})
				}
				n, s := b64.EncodeToString(make([]byte, 32)), b64.EncodeToString(make([]byte, 64))
				return []badCase{
					bad("wrong type", login(32, s)),
					bad("missing signature", mustJSON(h.t, map[string]any{"username": "alice", "nonce": n})),
					bad("bad base64", login("!!!!", s)),
					bad("base64url", login(strings.ReplaceAll(b64.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "+", "-"), s)),
					bad("unpadded base64", login(strings.TrimRight(n, "="), s)),
					bad("base64 with a line break", login(n[:20]+"\n"+n[20:], s)),
					bad("short nonce", login(b64.EncodeToString(make([]byte, 16)), s)),
					bad("long signature", login(n, b64.EncodeToString(make([]byte, 65)))),
					bad("non-canonical base64", login(n, s[:len(s)-3]+"B==")),
				}
			},
		},
		{method: "POST", path: "/v1/logout", auth: true},
		{method: "GET", path: "/v1/account", auth: true},
		{
			method: "POST", path: "/v1/pair", auth: true, limit: 64 << 10,
			body: func(h *harness) (string, string) {
				return mustJSON(h.t, map[string]any{"ticket": ticket(), "interests": []string{tag}}), `"interests":[]`
			},
			cases: func(h *harness) []badCase {
				tk := ticket()
				pair := func(t any, interests any) string {
					return mustJSON(h.t, map[string]any{"ticket": t, "interests": interests})
				}
				nine := make([]string, 9)
				for i := range nine {
					nine[i] = tag
				}
				return []badCase{
					bad("wrong type", pair("tks_", nil)),
					bad("missing ticket key", pair(map[string]any{"sign": tk["sign"]}, nil)),
					bad("bad key text", pair(map[string]any{"sign": "tks_!", "dh": tk["dh"]}, nil)),
					bad("keys swapped", pair(map[string]any{"sign": tk["dh"], "dh": tk["sign"]}, nil)),
					bad("unknown field in the ticket", pair(map[string]any{"sign": tk["sign"], "dh": tk["dh"], "home": "x"}, nil)),
					bad("bad base64 tag", pair(tk, []string{"####"})),
					bad("short tag", pair(tk, []string{b64.EncodeToString(make([]byte, 15))})),
					bad("too many tags", pair(tk, nine)),
					bad("null tag", pair(tk, []any{nil})),
					bad("tags of the wrong type", pair(tk, "x")),
				}
			},
		},
		{method: "DELETE", path: "/v1/pair", auth: true},
		{method: "GET", path: "/v1/rooms", auth: true},
		{
			method: "POST", path: "/v1/rooms/{room}/messages", auth: true, limit: 128 << 10,
			body: func(h *harness) (string, string) {
				_, enc := sealed(h.t, h.room, 0, 1, t0)
				return mustJSON(h.t, map[string]any{"txid": "tx", "envelope": enc}), `"txid":"other"`
			},
			cases: func(h *harness) []badCase {
				e, enc := sealed(h.t, h.room, 0, 1, t0)
				send := func(txid, env any) string { return mustJSON(h.t, map[string]any{"txid": txid, "envelope": env}) }
				stamped := *e
				if err := envelope.StampBatch(h.fake.node, t0, []*envelope.Envelope{&stamped}); err != nil {
					h.t.Fatal(err)
				}
				other := *h.room
				other.id[0] ^= 1
				_, elsewhere := sealed(h.t, &other, 0, 1, t0)
				_, late := sealed(h.t, h.room, 0, 1, t0.Add(-wire.MaxClockSkew-time.Second))
				_, early := sealed(h.t, h.room, 0, 1, t0.Add(wire.MaxClockSkew+time.Second))
				self := *h.room
				self.tickets[1] = self.tickets[0]
				_, selfSent := sealed(h.t, &self, 0, 1, t0)
				raw, _ := e.MarshalBinary()
				return []badCase{
					{name: "bad room in path", path: "/v1/rooms/room_x/messages", body: send("tx", enc), wantStatus: 400, wantCode: "bad_request"},
					bad("wrong type", send(1, enc)),
					bad("empty txid", send("", enc)),
					bad("txid too long", send(strings.Repeat("t", 65), enc)),
					bad("txid with a space", send("t x", enc)),
					bad("txid not ASCII", send("tx\u00e9", enc)),
					bad("bad base64", send("tx", "*"+enc[1:])),
					bad("envelope too large", send("tx", b64.EncodeToString(make([]byte, maxEnvelopeEncoding+1)))),
					{name: "bad envelope", body: send("tx", b64.EncodeToString([]byte("not an envelope"))), wantStatus: 400, wantCode: "bad_envelope"},
					{name: "truncated envelope", body: send("tx", b64.EncodeToString(raw[:len(raw)-1])), wantStatus: 400, wantCode: "bad_envelope"},
					{name: "stamped envelope", body: send("tx", encodeEnvelope(h.t, &stamped)), wantStatus: 400, wantCode: "bad_envelope"},
					{name: "envelope for another room", body: send("tx", elsewhere), wantStatus: 400, wantCode: "bad_envelope"},
					{name: "self-addressed envelope", body: send("tx", selfSent), wantStatus: 400, wantCode: "bad_envelope"},
					{name: "envelope from the past", body: send("tx", late), wantStatus: 400, wantCode: "bad_time"},
					{name: "envelope from the future", body: send("tx", early), wantStatus: 400, wantCode: "bad_time"},
				}
			},
		},
		{method: "POST", path: "/v1/rooms/{room}/leave", auth: true},
		{method: "GET", path: "/v1/sync", auth: true},
		{method: "GET", path: "/v1/sync/ws", auth: true},
		{
			method: "POST", path: "/v1/ack", auth: true, limit: 64 << 10,
			body: func(h *harness) (string, string) { return `{"upto":5}`, `"upto":6` },
			cases: func(h *harness) []badCase {
				return []badCase{
					bad("wrong type", `{"upto":"5"}`),
					bad("negative", `{"upto":-1}`),
					bad("fraction", `{"upto":1.5}`),
					bad("exponent", `{"upto":1e3}`),
					bad("overflow", `{"upto":18446744073709551616}`),
					bad("null", `{"upto":null}`),
				}
			},
		},
		{
			method: "POST", path: "/v1/reports", auth: true, limit: 4 << 20,
			body: func(h *harness) (string, string) {
				return mustJSON(h.t, map[string]any{"disclosure": reportOf(h.t, h.fake, h.room, "x")}), `"disclosure":"AA=="`
			},
			cases: func(h *harness) []badCase {
				return []badCase{
					bad("wrong type", `{"disclosure":{}}`),
					bad("bad base64", `{"disclosure":"A"}`),
					bad("disclosure too large", mustJSON(h.t, map[string]any{"disclosure": b64.EncodeToString(make([]byte, wire.MaxDisclosureSize+1))})),
					{name: "malformed disclosure", body: `{"disclosure":"AAAA"}`, wantStatus: 400, wantCode: "bad_disclosure"},
				}
			},
		},
		{method: "GET", path: "/v1/health"},
	}
}

// TestBadInput runs the bad-input table over every endpoint (spec 09 §1,
// §2): each bad request gets its 4xx status and stable code, and no
// subsystem is called, so nothing changes.
func TestBadInput(t *testing.T) {
	h := newHarness(t, noLimits)
	for _, ep := range endpoints() {
		path := strings.ReplaceAll(ep.path, "{room}", h.room.id.String())
		var cases []badCase
		// Generic JSON cases, for every endpoint with a body.
		if ep.limit > 0 {
			valid, dup := ep.body(h)
			cases = append(cases,
				badCase{name: "malformed JSON", body: `{"upto":`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "not JSON", body: `upto=1`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "empty body|ct=application/json", body: ``, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "null", body: `null`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "array", body: `[` + valid + `]`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "trailing garbage", body: valid + `x`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "trailing value", body: valid + ` {}`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "unknown field", body: `{"zzz":1,` + valid[1:], wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "field in upper case", body: `{` + strings.ToUpper(dup) + `,` + valid[1:], wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "duplicated field", body: `{` + dup + `,` + valid[1:], wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "missing fields", body: `{}`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "nested too deeply", body: `{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "oversized", body: `{"pad":"` + strings.Repeat("a", int(ep.limit)) + `"}`, wantStatus: 413, wantCode: "too_large"},
			)
			if ep.cases != nil {
				cases = append(cases, ep.cases(h)...)
			}
			for _, c := range []struct{ name, ct string }{
				{"wrong content type", "text/plain"},
				{"form content type", "application/x-www-form-urlencoded"},
				{"other charset", "application/json; charset=latin1"},
				{"extra parameter", "application/json; v=1"},
			} {
				cases = append(cases, badCase{name: c.name + "|ct=" + c.ct, body: valid, wantStatus: 415, wantCode: "unsupported_media_type"})
			}
			cases = append(cases, badCase{name: "no content type|noct", body: valid, wantStatus: 415, wantCode: "unsupported_media_type"})
		} else if ep.method == "POST" || ep.method == "DELETE" {
			cases = append(cases, badCase{name: "a body", body: `{}`, wantStatus: 400, wantCode: "bad_request"})
		}
		switch ep.path {
		case "/v1/sync":
			for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=1.5", "wait=-1", "after=1&after=2", "after=%zz", "since=1", "after=0x10", "after=+1"} {
				cases = append(cases, badCase{name: "query " + q, path: path + "?" + q, wantStatus: 400, wantCode: "bad_request"})
			}
		case "/v1/sync/ws":
			cases = append(cases,
				badCase{name: "no upgrade", wantStatus: 400, wantCode: "bad_request"},
				badCase{name: "query", path: path + "?after=1&limit=2", wantStatus: 400, wantCode: "bad_request"})
		case "/v1/rooms/{room}/leave":
			cases = append(cases, badCase{name: "bad room in path", path: "/v1/rooms/room_/leave", wantStatus: 400, wantCode: "bad_request"})
		}
		// Authentication, for every endpoint that needs it (spec 09 §1).
		if ep.auth {
			for _, c := range []struct{ name, header string }{
				{"no token", ""},
				{"unknown token", "Bearer pt_unknown"},
				{"empty token", "Bearer "},
				{"other scheme", "Basic " + h.alice.token},
				{"no scheme", h.alice.token},
				{"token with a space", "Bearer " + h.alice.token + " x"},
				{"token too long", "Bearer " + strings.Repeat("t", maxToken+1)},
			} {
				cases = append(cases, badCase{name: "auth " + c.name + "|auth=" + c.header, wantStatus: 401, wantCode: "unauthenticated"})
			}
		}
		// A method the route does not take (spec 09 §2).
		cases = append(cases, badCase{name: "wrong method|method=PUT", wantStatus: 405, wantCode: "method_not_allowed"})

		for _, c := range cases {
			name, opts, _ := strings.Cut(c.name, "|")
			t.Run(ep.method+" "+ep.path+"/"+name, func(t *testing.T) {
				q := request{method: ep.method, path: path, body: c.body}
				if c.path != "" {
					q.path = c.path
				}
				if ep.auth {
					q.token = h.alice.token
				}
				switch k, v, _ := strings.Cut(opts, "="); k {
				case "ct":
					q.contentType = v
				case "noct":
					q.noCT = true
				case "auth":
					q.token = ""
					if v != "" {
						q.header = http.Header{"Authorization": {v}}
					}
				case "method":
					q.method = v
				}
				h.fake.ResetCalls()
				status, hdr, body := h.do(q)
				if status != c.wantStatus || errorCode(body) != c.wantCode {
					t.Fatalf("%s %s %.80q = %d %s, want %d %s", q.method, q.path, q.body, status, body, c.wantStatus, c.wantCode)
				}
				if calls := h.fake.Calls(); len(calls) != 0 {
					t.Errorf("%s %s %.80q called %v, want no subsystem call", q.method, q.path, q.body, calls)
				}
				if status == 405 && hdr.Get("Allow") == "" {
					t.Errorf("%s %s = 405 without an Allow header", q.method, q.path)
				}
			})
		}
	}
}

// TestBodyLimitWithoutLength sends oversized bodies without a
// Content-Length (chunked), so the limit is enforced while reading.
func TestBodyLimitWithoutLength(t *testing.T) {
	h := newHarness(t, nil)
	for _, tt := range []struct {
		path  string
		limit int
	}{
		{"/v1/ack", 64 << 10},
		{"/v1/rooms/" + h.room.id.String() + "/messages", 128 << 10},
	} {
		body := `{"upto":1,"pad":"` + strings.Repeat("a", tt.limit) + `"}`
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+tt.path, io.MultiReader(strings.NewReader(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+h.alice.token)
		h.fake.ResetCalls()
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(b) != "too_large" {
			t.Errorf("POST %s with %d chunked bytes = %d %s, want 413 too_large", tt.path, len(body), resp.StatusCode, b)
		}
		if calls := h.fake.Calls(); len(calls) != 0 {
			t.Errorf("POST %s with an oversized body called %v, want none", tt.path, calls)
		}
	}
}

// TestUnknownPaths checks that paths outside the API are 404 not_found in
// JSON (spec 09 §2).
func TestUnknownPaths(t *testing.T) {
	h := newHarness(t, noLimits)
	for _, p := range []string{"/", "/v1", "/v1/", "/v2/health", "/v1/nope", "/v1/rooms/x/y", "/v1/rooms/" + h.room.id.String(), "/v1/health/x", "/metrics"} {
		for _, m := range []string{"GET", "POST"} {
			status, hdr, body := h.do(request{method: m, path: p, token: h.alice.token})
			if status != 404 || errorCode(body) != "not_found" || hdr.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("%s %s = %d %s (%s), want 404 not_found in JSON", m, p, status, body, hdr.Get("Content-Type"))
			}
		}
	}
	if calls := h.fake.Calls(); len(calls) != 0 {
		t.Errorf("unknown paths called %v, want none", calls)
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error; "" for success
	}{
		{`{"upto":1}`, ""},
		{` {"upto":1} ` + "\n", ""},
		{`{"upto":1,"upto":2}`, "appears twice"},
		{`{"Upto":1}`, "unknown field"},
		{`{"upſo":1}`, "unknown field"},
		{`{"upto":1}{}`, "trailing"},
		{`{"upto":1}]`, "malformed JSON"},
		{`{"upto":1`, "truncated"},
		{`{"upto":"1"}`, `field "upto": wrong type, want non-negative integer`},
		{`{}`, `missing field "upto"`},
		{`"x"`, "must be a JSON object"},
		{``, "empty body"},
		{`{"upto":1,"x":{"a":1,"a":2}}`, "appears twice"},
		{`{"x":[{"a":1},{"a":1}],"upto":1}`, "unknown field"},
	}
	for _, tt := range tests {
		var q ackRequest
		err := decodeStrict([]byte(tt.in), &q)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("decodeStrict(%q) = %v, want nil", tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("decodeStrict(%q) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
}
