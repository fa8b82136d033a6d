package admin_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/admin"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  admin.Config
		want []string
	}{
		{"defaults", admin.Config{}, nil},
		{"explicit", admin.Config{MaxBodyBytes: 4096, DefaultLimit: 1000}, nil},
		{"all bad", admin.Config{MaxBodyBytes: 10, DefaultLimit: 1001}, []string{"max_body_bytes 10", "default_limit 1001"}},
		{"negative", admin.Config{MaxBodyBytes: -1, DefaultLimit: -1}, []string{"max_body_bytes -1", "default_limit -1"}},
	} {
		err := tc.cfg.Validate()
		if len(tc.want) == 0 && err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tc.name, err)
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate() = %v, want it to mention %q", tc.name, err, w)
			}
		}
	}
	if d := admin.DefaultConfig(); d.MaxBodyBytes != 8192 || d.DefaultLimit != 100 {
		t.Errorf("DefaultConfig() = %+v, want 8192 and 100", d)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := admin.TokenPath(dir)
	if _, err := admin.LoadToken(path); !errors.Is(err, admin.ErrNoToken) {
		t.Fatalf("LoadToken(missing) = %v, want ErrNoToken", err)
	}
	if err := admin.CreateToken(path, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v, want 0600", st.Mode().Perm(), err)
	}
	tok, err := admin.LoadToken(path)
	if err != nil || !strings.HasPrefix(tok, "pa_") || len(tok) != 3+43 {
		t.Fatalf("LoadToken() = %q, %v, want pa_ and 43 base64url characters", tok, err)
	}
	if err := admin.CreateToken(path, nil); !errors.Is(err, admin.ErrTokenExists) {
		t.Fatalf("CreateToken(again) = %v, want ErrTokenExists", err)
	}
	if again, _ := admin.LoadToken(path); again != tok {
		t.Fatal("CreateToken overwrote the token")
	}

	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{"readable by others", tok + "\n", 0o644},
		{"group", tok + "\n", 0o640},
		{"garbage", "hello\n", 0o600},
		{"wrong prefix", "pt_" + tok[3:], 0o600},
		{"short", tok[:20], 0o600},
		{"too large", strings.Repeat("a", 1000), 0o600},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.LoadTokenHash(p); !errors.Is(err, admin.ErrBadTokenFile) {
			t.Errorf("LoadTokenHash(%s) = %v, want ErrBadTokenFile", tc.name, err)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	other := filepath.Join(t.TempDir(), "other")
	if err := admin.CreateToken(other, nil); err != nil {
		t.Fatal(err)
	}
	wrong, _ := admin.LoadToken(other)
	for _, tc := range []struct {
		name, path, header string
		want               int
	}{
		{"no header", "/admin/v1/accounts", "", 401},
		{"wrong token", "/admin/v1/accounts", "Bearer " + wrong, 401},
		{"malformed token", "/admin/v1/accounts", "Bearer pa_nope", 401},
		{"session token prefix", "/admin/v1/accounts", "Bearer pt_" + e.token[3:], 401},
		{"basic scheme", "/admin/v1/accounts", "Basic " + e.token, 401},
		{"no scheme", "/admin/v1/accounts", e.token, 401},
		{"unknown path hides behind 401", "/admin/v1/nope", "", 401},
		{"right token", "/admin/v1/accounts", "Bearer " + e.token, 200},
		{"right token, unknown path", "/admin/v1/nope", "Bearer " + e.token, 404},
	} {
		r := e.do("GET", tc.path, "", "", "")
		if tc.header != "" {
			r = e.doHeader("GET", tc.path, tc.header)
		}
		if r.status != tc.want {
			t.Errorf("%s: GET %s = %d %s, want %d", tc.name, tc.path, r.status, r.body, tc.want)
		}
		if tc.want == 401 && (errorCode(t, r.body) != "unauthenticated" || r.header.Get("WWW-Authenticate") == "") {
			t.Errorf("%s: 401 body %q, headers %v", tc.name, r.body, r.header)
		}
	}
	if strings.Contains(e.logs.String(), e.token) || strings.Contains(e.logs.String(), e.token[3:]) {
		t.Error("the log holds the admin token")
	}
}

func TestAccountsListAndShow(t *testing.T) {
	e := newEnv(t)
	names := []string{"alice", "bob", "carol"}
	ids := map[string]string{}
	for _, n := range names {
		ids[n] = e.register(n).key.Public().String()
	}
	var all admin.AccountList
	e.call("GET", "/admin/v1/accounts", "", &all)
	if len(all.Accounts) != 3 || all.Next != "" {
		t.Fatalf("GET accounts = %+v, want 3 accounts and no next page", all)
	}
	// Paging: one at a time visits every account once.
	seen := map[string]bool{}
	after := ""
	for range 4 {
		var page admin.AccountList
		e.call("GET", "/admin/v1/accounts?limit=1&after="+after, "", &page)
		if len(page.Accounts) == 0 {
			break
		}
		seen[page.Accounts[0].Username] = true
		after = page.Next
		if after == "" {
			break
		}
	}
	if len(seen) != 3 {
		t.Errorf("paging with limit=1 saw %v, want all three", seen)
	}
	for _, ref := range []string{"bob", ids["bob"]} {
		var a admin.Account
		e.call("GET", "/admin/v1/accounts/"+ref, "", &a)
		if a.Username != "bob" || a.ID != ids["bob"] || a.Suspended || a.Created == "" {
			t.Errorf("GET accounts/%s = %+v, want bob", ref, a)
		}
	}
}

// Suspending revokes every session; a new login shows the flag, which the
// client API uses to refuse pairing and sending.
func TestSuspendRevokesSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mallory := e.register("mallory")
	e.register("alice")
	tok1, tok2 := e.login(mallory), e.login(mallory)
	var res admin.SuspendResult
	e.call("POST", "/admin/v1/accounts/mallory/suspend", `{"reason":"spam"}`, &res)
	if !res.Account.Suspended || res.Account.SuspendReason != "spam" || res.SessionsRevoked != 2 {
		t.Fatalf("suspend = %+v, want suspended for spam with 2 sessions revoked", res)
	}
	for _, tok := range []string{tok1, tok2} {
		if _, err := e.acc.Authenticate(ctx, tok); !errors.Is(err, accounts.ErrUnauthenticated) {
			t.Errorf("Authenticate(old session) = %v, want ErrUnauthenticated", err)
		}
	}
	a, err := e.acc.Authenticate(ctx, e.login(mallory))
	if err != nil || !a.Suspended || a.SuspendReason != "spam" {
		t.Fatalf("Authenticate(new session) = %+v, %v, want the suspension visible", a, err)
	}
	var shown admin.Account
	e.call("GET", "/admin/v1/accounts/"+mallory.key.Public().String(), "", &shown)
	if !shown.Suspended || shown.SuspendReason != "spam" {
		t.Errorf("show after suspend = %+v", shown)
	}
	var alice admin.Account
	e.call("GET", "/admin/v1/accounts/alice", "", &alice)
	if alice.Suspended {
		t.Error("suspending mallory suspended alice")
	}

	var un admin.SuspendResult
	e.call("POST", "/admin/v1/accounts/mallory/unsuspend", "", &un)
	if un.Account.Suspended || un.Account.SuspendReason != "" {
		t.Fatalf("unsuspend = %+v", un)
	}
	if a, err := e.acc.Authenticate(ctx, e.login(mallory)); err != nil || a.Suspended {
		t.Fatalf("Authenticate after unsuspend = %+v, %v", a, err)
	}
	logs := e.logs.String()
	for _, want := range []string{"admin suspended account", "admin unsuspended account", "subsystem=admin"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestInvite(t *testing.T) {
	e := newEnv(t)
	var inv admin.Invite
	e.call("POST", "/admin/v1/invites", "", &inv)
	if !strings.HasPrefix(inv.Invite, "pi_") || inv.Expires == "" {
		t.Fatalf("POST invites = %+v", inv)
	}
	if strings.Contains(e.logs.String(), inv.Invite[3:]) {
		t.Error("the log holds the invite")
	}
}

// The queue shows metadata only; one report's page shows its plaintext.
func TestReports(t *testing.T) {
	e := newEnv(t)
	a, b := e.register("alice"), e.register("bob")
	e.report(a, b)
	r := e.do("GET", "/admin/v1/reports", e.token, "", "")
	if r.status != 200 || strings.Contains(r.body, secretText) || strings.Contains(r.body, hex.EncodeToString([]byte(secretText))) {
		t.Fatalf("GET reports = %d %s, want 200 without the plaintext", r.status, r.body)
	}
	var list admin.ReportList
	e.call("GET", "/admin/v1/reports?limit=10", "", &list)
	if len(list.Reports) != 1 {
		t.Fatalf("GET reports = %+v, want 1", list)
	}
	s := list.Reports[0]
	id := hex.EncodeToString(e.reportID[:])
	if s.ID != id || s.Reporter != a.key.Public().String() || s.Reason != "spam" || s.Items != 1 || s.AccusedTicket == "" || s.AccusedRoom == "" {
		t.Errorf("report summary = %+v", s)
	}
	var rep admin.Report
	e.call("GET", "/admin/v1/reports/"+id, "", &rep)
	if len(rep.Content) != 1 || rep.Content[0].Text != secretText || rep.Comment != "he keeps selling" || rep.Content[0].HeaderHex == "" || rep.Content[0].StampHex == "" {
		t.Fatalf("GET reports/%s = %+v, want the disclosed message", id, rep)
	}
	if strings.Contains(e.logs.String(), secretText) {
		t.Error("the log holds the disclosed plaintext")
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t)
	var a admin.Audit
	e.call("GET", "/admin/v1/lottery/epochs/7/audit", "", &a)
	if a.Epoch != 7 || a.Pairs != 1 || a.OK || len(a.NotDrawn) != 1 || !strings.HasPrefix(a.Seed, "ab") {
		t.Fatalf("audit = %+v", a)
	}
	if r := e.do("GET", "/admin/v1/lottery/epochs/8/audit", e.token, "", ""); r.status != 404 {
		t.Fatalf("audit(unknown epoch) = %d %s, want 404", r.status, r.body)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	const js = "application/json"
	big := `{"reason":"` + strings.Repeat("x", 9000) + `"}`
	for _, tc := range []struct {
		name, method, path, ct, body string
		status                       int
		code                         string
	}{
		{"limit zero", "GET", "/admin/v1/accounts?limit=0", "", "", 400, "bad_request"},
		{"limit huge", "GET", "/admin/v1/accounts?limit=1001", "", "", 400, "bad_request"},
		{"limit text", "GET", "/admin/v1/reports?limit=ten", "", "", 400, "bad_request"},
		{"after not an ID", "GET", "/admin/v1/accounts?after=bob", "", "", 400, "bad_request"},
		{"unknown query", "GET", "/admin/v1/accounts?offset=3", "", "", 400, "bad_request"},
		{"repeated query", "GET", "/admin/v1/accounts?limit=1&limit=2", "", "", 400, "bad_request"},
		{"unknown account", "GET", "/admin/v1/accounts/nobody", "", "", 404, "not_found"},
		{"bad username", "GET", "/admin/v1/accounts/UPPER", "", "", 404, "not_found"},
		{"suspend unknown", "POST", "/admin/v1/accounts/nobody/suspend", js, `{"reason":"x"}`, 404, "not_found"},
		{"suspend no reason", "POST", "/admin/v1/accounts/alice/suspend", js, `{}`, 400, "bad_request"},
		{"suspend null reason", "POST", "/admin/v1/accounts/alice/suspend", js, `{"reason":null}`, 400, "bad_request"},
		{"suspend unknown field", "POST", "/admin/v1/accounts/alice/suspend", js, `{"reason":"x","ban":true}`, 400, "bad_request"},
		{"suspend wrong type", "POST", "/admin/v1/accounts/alice/suspend", js, `{"reason":5}`, 400, "bad_request"},
		{"suspend trailing", "POST", "/admin/v1/accounts/alice/suspend", js, `{"reason":"x"} {}`, 400, "bad_request"},
		{"suspend not JSON", "POST", "/admin/v1/accounts/alice/suspend", js, `reason=x`, 400, "bad_request"},
		{"suspend long reason", "POST", "/admin/v1/accounts/alice/suspend", js, `{"reason":"` + strings.Repeat("x", 1025) + `"}`, 400, "bad_request"},
		{"suspend text body", "POST", "/admin/v1/accounts/alice/suspend", "text/plain", `{"reason":"x"}`, 415, "unsupported_media_type"},
		{"suspend oversized", "POST", "/admin/v1/accounts/alice/suspend", js, big, 413, "too_large"},
		{"unsuspend unknown field", "POST", "/admin/v1/accounts/alice/unsuspend", js, `{"ban":1}`, 400, "bad_request"},
		{"unsuspend text body", "POST", "/admin/v1/accounts/alice/unsuspend", "", `x`, 415, "unsupported_media_type"},
		{"unthrottle not throttled", "POST", "/admin/v1/accounts/alice/unthrottle", "", "", 409, "conflict"},
		{"throttle no reason", "POST", "/admin/v1/accounts/alice/throttle", js, `{}`, 400, "bad_request"},
		{"throttle long by", "POST", "/admin/v1/accounts/alice/throttle", js, `{"reason":"x","by":"` + strings.Repeat("b", 65) + `"}`, 400, "bad_request"},
		{"resolve unknown", "POST", "/admin/v1/reports/" + strings.Repeat("00", 32) + "/resolve", "", "", 404, "not_found"},
		{"resolve bad ID", "POST", "/admin/v1/reports/xyz/resolve", "", "", 400, "bad_request"},
		{"reports bad state", "GET", "/admin/v1/reports?state=closed", "", "", 400, "bad_request"},
		{"invite with body", "POST", "/admin/v1/invites", js, `{"n":2}`, 400, "bad_request"},
		{"report ID short", "GET", "/admin/v1/reports/abcd", "", "", 400, "bad_request"},
		{"report ID not hex", "GET", "/admin/v1/reports/" + strings.Repeat("zz", 32), "", "", 400, "bad_request"},
		{"report unknown", "GET", "/admin/v1/reports/" + strings.Repeat("00", 32), "", "", 404, "not_found"},
		{"epoch not a number", "GET", "/admin/v1/lottery/epochs/x/audit", "", "", 400, "bad_request"},
		{"epoch negative", "GET", "/admin/v1/lottery/epochs/-1/audit", "", "", 400, "bad_request"},
		{"GET suspend", "GET", "/admin/v1/accounts/alice/suspend", "", "", 405, "method_not_allowed"},
		{"DELETE account", "DELETE", "/admin/v1/accounts/alice", "", "", 405, "method_not_allowed"},
		{"GET invites", "GET", "/admin/v1/invites", "", "", 405, "method_not_allowed"},
		{"POST reports", "POST", "/admin/v1/reports", js, `{}`, 405, "method_not_allowed"},
		{"unknown route", "GET", "/admin/v1/accounts/alice/delete", "", "", 404, "not_found"},
	} {
		r := e.do(tc.method, tc.path, e.token, tc.ct, tc.body)
		if r.status != tc.status || errorCode(t, r.body) != tc.code {
			t.Errorf("%s: %s %s = %d %s, want %d %s", tc.name, tc.method, tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	// Nothing changed.
	a, err := e.acc.ByUsername(context.Background(), "alice")
	if err != nil || a.Suspended {
		t.Errorf("alice after bad input = %+v, %v, want unchanged", a, err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.register("alice")
	var l admin.AccountList
	e.call("GET", "/admin/v1/accounts", "", &l)
	e.call("GET", "/admin/v1/accounts", "", &l)
	e.do("GET", "/admin/v1/accounts", "", "", "")
	e.do("GET", "/admin/v1/accounts/nobody", e.token, "", "")
	text := `
# HELP parley_admin_requests_total Admin API requests, by route (a fixed set; unknown and unauthenticated included) and HTTP status.
# TYPE parley_admin_requests_total counter
parley_admin_requests_total{route="accounts_list",status="200"} 2
parley_admin_requests_total{route="accounts_show",status="404"} 1
parley_admin_requests_total{route="unauthenticated",status="401"} 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(text), "parley_admin_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e.reg, "parley_admin_request_duration_seconds"); n != 2 {
		t.Errorf("duration series = %d, want 2", n)
	}
	if probs, err := testutil.GatherAndLint(e.reg); err != nil || len(probs) > 0 {
		t.Errorf("GatherAndLint = %v, %v", probs, err)
	}
}

// spec 10 §3, spec 13 §5: an account's page shows its moderation state
// (counted reports, signals, the record of actions with their evidence);
// throttling, reversing and resolving are recorded with who did it.
func TestModeration(t *testing.T) {
	e := newEnv(t)
	a, b := e.register("alice"), e.register("bob")
	e.report(a, b) // one reporter throttles bob (the test policy)
	id := hex.EncodeToString(e.reportID[:])
	var shown admin.Account
	e.call("GET", "/admin/v1/accounts/bob", "", &shown)
	m := shown.Moderation
	if m == nil || !m.Throttled || m.Reporters != 1 || len(m.Reports) != 1 || m.Reports[0] != id || m.Signals.Rooms != 1 {
		t.Fatalf("show bob = %+v", m)
	}
	if len(m.Actions) != 1 || m.Actions[0].Kind != "throttle" || !m.Actions[0].Automatic || m.Actions[0].Evidence[0] != id {
		t.Fatalf("bob's actions = %+v, want the automatic throttle with the report", m.Actions)
	}
	if r := e.do("GET", "/admin/v1/accounts/bob", e.token, "", ""); strings.Contains(r.body, secretText) {
		t.Error("the account page shows disclosed plaintext")
	}
	var res admin.ThrottleResult
	e.call("POST", "/admin/v1/accounts/bob/unthrottle", `{"by":"carol","reason":"appeal"}`, &res)
	if res.Moderation.Throttled || res.Moderation.Reporters != 0 {
		t.Fatalf("unthrottle = %+v", res.Moderation)
	}
	e.call("POST", "/admin/v1/accounts/bob/throttle", `{"reason":"again","by":"dave"}`, &res)
	if !res.Moderation.Throttled {
		t.Fatalf("throttle = %+v", res.Moderation)
	}
	var sus admin.SuspendResult
	e.call("POST", "/admin/v1/accounts/bob/suspend", `{"reason":"enough","by":"dave"}`, &sus)
	e.call("POST", "/admin/v1/accounts/bob/unsuspend", "", &sus)
	e.call("GET", "/admin/v1/accounts/bob", "", &shown)
	var got []string
	for _, act := range shown.Moderation.Actions {
		got = append(got, act.Kind+"/"+act.By)
	}
	if want := "throttle/policy,unthrottle/carol,throttle/dave,suspend/dave,unsuspend/admin"; strings.Join(got, ",") != want {
		t.Errorf("actions = %v, want %s", got, want)
	}

	var sum admin.ReportSummary
	e.call("POST", "/admin/v1/reports/"+id+"/resolve", `{"by":"carol","note":"bob warned"}`, &sum)
	if sum.State != "resolved" || sum.ResolvedBy != "carol" || sum.Resolution != "bob warned" || sum.AccusedAccount != b.key.Public().String() {
		t.Fatalf("resolve = %+v", sum)
	}
	var open, resolved admin.ReportList
	e.call("GET", "/admin/v1/reports?state=open", "", &open)
	e.call("GET", "/admin/v1/reports?state=resolved", "", &resolved)
	if len(open.Reports) != 0 || len(resolved.Reports) != 1 {
		t.Errorf("open %d, resolved %d, want 0 and 1", len(open.Reports), len(resolved.Reports))
	}
}
