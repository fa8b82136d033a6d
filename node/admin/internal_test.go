package admin

import (
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

type nopAccounts struct{ Accounts }
type nopReports struct{ Reports }

// The token check compares hashes with crypto/subtle, for right and wrong
// tokens alike.
func TestTokenComparedInConstantTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFileName)
	if err := CreateToken(path, nil); err != nil {
		t.Fatal(err)
	}
	tok, _ := LoadToken(path)
	hash, _ := LoadTokenHash(path)
	s, err := New(Config{}, Deps{Accounts: nopAccounts{}, Reports: nopReports{}}, hash)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	s.equal = func(x, y []byte) int { calls++; return subtle.ConstantTimeCompare(x, y) }
	for _, tc := range []struct {
		auth string
		want bool
	}{
		{"Bearer " + tok, true},
		{"Bearer pa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"Bearer junk", false},
	} {
		before := calls
		r := httptest.NewRequest(http.MethodGet, Prefix+"accounts", nil)
		r.Header.Set("Authorization", tc.auth)
		if got := s.authorized(r); got != tc.want || calls != before+1 {
			t.Errorf("authorized(%q) = %v with %d compares, want %v with 1", tc.auth[:12], got, calls-before, tc.want)
		}
	}
}
