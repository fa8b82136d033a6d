package fakenode_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client/internal/fakenode"
	"github.com/parley-chat/parley/protocol/keys"
)

// The fake is as strict as spec 09 §1-2 asks, so the client's tests
// against it show the client sends exactly what the API takes.
func TestStrictness(t *testing.T) {
	n := fakenode.New()
	srv := httptest.NewServer(n)
	defer srv.Close()
	defer n.Close()
	key := keys.AccountID{1}.String()
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"valid", "POST", "/v1/register", "application/json", `{"username":"alice","identity_key":"` + key + `"}`, 201, ""},
		{"unknown field", "POST", "/v1/register", "application/json", `{"username":"bob","identity_key":"` + key + `","x":1}`, 400, "bad_request"},
		{"trailing data", "POST", "/v1/login/challenge", "application/json", `{"username":"alice"} {}`, 400, "bad_request"},
		{"wrong type", "POST", "/v1/login/challenge", "application/json", `{"username":7}`, 400, "bad_request"},
		{"missing field", "POST", "/v1/register", "application/json", `{"username":"carol"}`, 400, "bad_request"},
		{"not JSON", "POST", "/v1/login/challenge", "text/plain", `{"username":"alice"}`, 415, "unsupported_media_type"},
		{"too large", "POST", "/v1/login/challenge", "application/json", `{"username":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "too_large"},
		{"no token", "GET", "/v1/rooms", "", "", 401, "unauthenticated"},
		{"unknown endpoint", "GET", "/v1/nothing", "", "", 404, "not_found"},
		{"wrong method", "GET", "/v1/register", "", "", 405, "method_not_allowed"},
		{"key taken", "POST", "/v1/register", "application/json", `{"username":"dave","identity_key":"` + key + `"}`, 409, "key_taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.status)
			}
			if tc.code == "" {
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &body); err != nil || body.Error.Code != tc.code {
				t.Fatalf("%s %s answered %s, want code %s", tc.method, tc.path, b, tc.code)
			}
		})
	}
}
