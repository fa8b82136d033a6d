package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// TimeFormat is how the API writes times (UTC, milliseconds), as the
// client API does.
const TimeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Account is an account as the API shows it.
type Account struct {
	ID            string `json:"id"`
	Username      string `json:"username"`
	Created       string `json:"created"`
	Suspended     bool   `json:"suspended"`
	SuspendReason string `json:"suspend_reason,omitempty"`
	// Moderation is the account's moderation state; only GET
	// accounts/{ref} sets it, and only on a node with moderation.
	Moderation *ModerationStatus `json:"moderation,omitempty"`
}

func toAccount(a accounts.Account) Account {
	return Account{ID: a.ID.String(), Username: a.Username, Created: formatTime(a.Created), Suspended: a.Suspended, SuspendReason: a.SuspendReason}
}

// AccountList answers GET accounts. Next, when set, is the after= of the
// next page.
type AccountList struct {
	Accounts []Account `json:"accounts"`
	Next     string    `json:"next,omitempty"`
}

// SuspendRequest is the body of POST accounts/{ref}/suspend and
// accounts/{ref}/throttle. By names the operator (default "admin").
type SuspendRequest struct {
	Reason *string `json:"reason"`
	By     string  `json:"by,omitempty"`
}

// ReverseRequest is the optional body of POST accounts/{ref}/unsuspend and
// accounts/{ref}/unthrottle: who reverses, and why.
type ReverseRequest struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SuspendResult answers suspend and unsuspend.
type SuspendResult struct {
	Account         Account `json:"account"`
	SessionsRevoked int     `json:"sessions_revoked"`
}

// Invite answers POST invites. Invite is a secret for the invitee.
type Invite struct {
	Invite  string `json:"invite"`
	Expires string `json:"expires"`
}

// ReportSummary is a report in the queue: metadata, never the plaintext.
type ReportSummary struct {
	ID             string `json:"id"`                      // hex
	ReceiptID      string `json:"receipt_id"`              // base64, as the client API's report_id
	Reporter       string `json:"reporter,omitempty"`      // the reporting account, if local
	ReporterNode   string `json:"reporter_node,omitempty"` // the node that forwarded it, if remote
	Received       string `json:"received"`
	Reason         string `json:"reason"`
	AccusedRoom    string `json:"accused_room"`
	AccusedTicket  string `json:"accused_ticket"`
	AccusedAccount string `json:"accused_account,omitempty"` // if the accused is local
	Items          int    `json:"items"`
	State          string `json:"state"` // open or resolved
	Resolved       string `json:"resolved,omitempty"`
	ResolvedBy     string `json:"resolved_by,omitempty"`
	Resolution     string `json:"resolution,omitempty"`
}

// ReportList answers GET reports.
type ReportList struct {
	Reports []ReportSummary `json:"reports"`
}

// ReportItem is one disclosed message: its text, its times and its
// stamped header (header and stamp encodings, so an operator can check the
// stamp elsewhere). The franking key stays in the store.
type ReportItem struct {
	Text         string `json:"text"`          // the plaintext, invalid UTF-8 replaced
	ContentType  uint8  `json:"content_type"`  // the header's content type
	Seq          uint64 `json:"seq"`           // the sender's sequence number
	Sent         string `json:"sent"`          // the header's time (the sender's clock)
	Stamped      string `json:"stamped"`       // the stamp's time (the stamping node's clock)
	StampingNode string `json:"stamping_node"` // the node that stamped it
	HeaderHex    string `json:"header_hex"`    // the header's canonical encoding
	StampHex     string `json:"stamp_hex"`     // the stamp's canonical encoding
}

// Report answers GET reports/{id}: the summary, the reporter's words and
// the disclosed messages.
type Report struct {
	ReportSummary
	Comment string       `json:"comment"`
	Time    string       `json:"signed"`
	Content []ReportItem `json:"content"`
}

// Pair is a drawn pair of ticket IDs.
type Pair struct {
	A string `json:"a"`
	B string `json:"b"`
}

// Audit answers GET lottery/epochs/{n}/audit.
type Audit struct {
	Epoch        uint64   `json:"epoch"`
	Seed         string   `json:"seed"` // hex
	Included     []string `json:"included"`
	Excluded     []string `json:"excluded"`
	Pairs        int      `json:"pairs"`
	Unmatched    int      `json:"unmatched"`
	Rejected     int      `json:"rejected"`
	NotDrawn     []Pair   `json:"not_drawn"` // confirmed here but not drawn: each one is a fault
	NotConfirmed int      `json:"not_confirmed"`
	OK           bool     `json:"ok"`
}

// query checks that q holds only the allowed parameters, each at most once.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("query: %v", err)
	}
	for k, v := range q {
		found := false
		for _, a := range allowed {
			found = found || k == a
		}
		if !found {
			return nil, badRequest("unknown query parameter %q", k)
		}
		if len(v) != 1 {
			return nil, badRequest("query parameter %q given %d times", k, len(v))
		}
	}
	return q, nil
}

func (s *Server) limit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return s.cfg.DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badRequest("limit must be an integer from 1 to %d", MaxLimit)
	}
	return n, nil
}

// requireNoBody refuses a body on endpoints that take none.
func requireNoBody(r *http.Request) error {
	if r.ContentLength > 0 {
		return badRequest("this endpoint takes no body")
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
		return badRequest("this endpoint takes no body")
	}
	return nil
}

// decode reads a JSON body of at most MaxBodyBytes into v strictly: JSON
// media type, no unknown fields, nothing after the object.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || (len(params) > 0 && !strings.EqualFold(params["charset"], "utf-8")) || len(params) > 1 {
		return errMediaType
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return errTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return badRequest("reading the body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("trailing data after the JSON object")
	}
	return nil
}

// account resolves the {ref} path value: an account ID (pa1...) or a
// username.
func (s *Server) account(r *http.Request) (accounts.Account, error) {
	ref := r.PathValue("ref")
	if id, err := keys.ParseAccountID(ref); err == nil {
		return s.deps.Accounts.Get(r.Context(), id)
	}
	return s.deps.Accounts.ByUsername(r.Context(), ref)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "after", "limit")
	if err != nil {
		return err
	}
	limit, err := s.limit(q)
	if err != nil {
		return err
	}
	var after keys.AccountID
	if v := q.Get("after"); v != "" {
		if after, err = keys.ParseAccountID(v); err != nil {
			return badRequest("after is not an account ID")
		}
	}
	list, err := s.deps.Accounts.List(r.Context(), after, limit)
	if err != nil {
		return err
	}
	out := AccountList{Accounts: make([]Account, 0, len(list))}
	for _, a := range list {
		out.Accounts = append(out.Accounts, toAccount(a))
	}
	if len(list) == limit {
		out.Next = list[len(list)-1].ID.String()
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

func (s *Server) showAccount(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	a, err := s.account(r)
	if err != nil {
		return err
	}
	out := toAccount(a)
	if s.deps.Moderation != nil {
		st, err := s.deps.Moderation.Status(r.Context(), a.ID)
		if err != nil {
			return err
		}
		out.Moderation = toModeration(st)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// suspend suspends the account and revokes its sessions: its clients must
// log in again and then see that they are suspended.
func (s *Server) suspend(w http.ResponseWriter, r *http.Request) error {
	var req SuspendRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if req.Reason == nil {
		return badRequest("reason is required")
	}
	a, err := s.account(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var n int
	if s.deps.Moderation != nil {
		if n, err = s.deps.Moderation.Suspend(ctx, a.ID, operator(req.By), *req.Reason); err != nil {
			return err
		}
	} else {
		if err := s.deps.Accounts.Suspend(ctx, a.ID, *req.Reason); err != nil {
			return err
		}
		if n, err = s.deps.Accounts.RevokeAll(ctx, a.ID); err != nil {
			return err
		}
	}
	if a, err = s.deps.Accounts.Get(ctx, a.ID); err != nil {
		return err
	}
	s.log.Info("admin suspended account", "account", a.ID.String(), "username", a.Username, "sessions_revoked", n)
	writeJSON(w, http.StatusOK, SuspendResult{Account: toAccount(a), SessionsRevoked: n})
	return nil
}

func (s *Server) unsuspend(w http.ResponseWriter, r *http.Request) error {
	req, err := s.reverseRequest(w, r)
	if err != nil {
		return err
	}
	a, err := s.account(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if s.deps.Moderation != nil {
		err = s.deps.Moderation.Unsuspend(ctx, a.ID, operator(req.By), req.Reason)
	} else {
		err = s.deps.Accounts.Unsuspend(ctx, a.ID)
	}
	if err != nil {
		return err
	}
	if a, err = s.deps.Accounts.Get(ctx, a.ID); err != nil {
		return err
	}
	s.log.Info("admin unsuspended account", "account", a.ID.String(), "username", a.Username)
	writeJSON(w, http.StatusOK, SuspendResult{Account: toAccount(a)})
	return nil
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request) error {
	if err := requireNoBody(r); err != nil {
		return err
	}
	tok, exp, err := s.deps.Accounts.CreateInvite(r.Context())
	if err != nil {
		return err
	}
	s.log.Info("admin created invite", "expires", formatTime(exp)) // never the invite itself
	writeJSON(w, http.StatusCreated, Invite{Invite: tok, Expires: formatTime(exp)})
	return nil
}

func summary(st reports.Stored) ReportSummary {
	d := st.Disclosure
	room, ticket := d.Accused()
	out := ReportSummary{
		ID:            hex.EncodeToString(st.ID[:]),
		ReceiptID:     base64.StdEncoding.EncodeToString(st.ID[:]),
		Received:      formatTime(st.Received),
		Reason:        d.Reason.String(),
		AccusedRoom:   room.String(),
		AccusedTicket: ticket.String(),
		Items:         len(d.Items),
		State:         "open",
	}
	if st.Reporter != (keys.AccountID{}) {
		out.Reporter = st.Reporter.String()
	}
	if st.From != (keys.NodeID{}) {
		out.ReporterNode = st.From.String()
	}
	if st.AccusedLocal {
		out.AccusedAccount = st.Accused.String()
	}
	if st.IsResolved() {
		out.State, out.Resolved, out.ResolvedBy, out.Resolution = "resolved", formatTime(st.Resolved), st.ResolvedBy, st.Resolution
	}
	return out
}

func (s *Server) listReports(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "limit", "state")
	if err != nil {
		return err
	}
	limit, err := s.limit(q)
	if err != nil {
		return err
	}
	state := q.Get("state")
	if state != "" && state != "open" && state != "resolved" && state != "all" {
		return badRequest("state must be open, resolved or all")
	}
	// The filter runs over the first limit reports in ID order: the queue
	// is small, and paging by ID is the next step if it is not.
	list, err := s.deps.Reports.List(r.Context(), limit)
	if err != nil {
		return err
	}
	out := ReportList{Reports: make([]ReportSummary, 0, len(list))}
	for _, st := range list {
		if (state == "open" && st.IsResolved()) || (state == "resolved" && !st.IsResolved()) {
			continue
		}
		out.Reports = append(out.Reports, summary(st))
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// parseReportID accepts the hex ID (64 digits).
func parseReportID(text string) ([32]byte, error) {
	var id [32]byte
	if len(text) != 2*len(id) {
		return id, badRequest("a report ID is 64 hex digits")
	}
	if _, err := hex.Decode(id[:], []byte(text)); err != nil {
		return id, badRequest("a report ID is 64 hex digits")
	}
	return id, nil
}

// showReport is the one place the admin API shows plaintext: what a
// participant chose to disclose.
func (s *Server) showReport(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	id, err := parseReportID(r.PathValue("id"))
	if err != nil {
		return err
	}
	st, err := s.deps.Reports.Get(r.Context(), id)
	if err != nil {
		return err
	}
	d := st.Disclosure
	out := Report{ReportSummary: summary(st), Comment: d.Text, Time: formatTime(time.UnixMilli(d.Time)), Content: make([]ReportItem, 0, len(d.Items))}
	for i := range d.Items {
		it := &d.Items[i]
		hdr, err := it.Header.MarshalBinary()
		if err != nil {
			return err
		}
		stp, err := it.Stamp.MarshalBinary()
		if err != nil {
			return err
		}
		out.Content = append(out.Content, ReportItem{
			Text:         strings.ToValidUTF8(string(it.Plaintext), "\uFFFD"),
			ContentType:  it.Header.ContentType,
			Seq:          it.Header.Seq,
			Sent:         formatTime(time.UnixMilli(it.Header.Time)),
			Stamped:      formatTime(it.Stamp.TimeOf()),
			StampingNode: it.Stamp.Node.String(),
			HeaderHex:    hex.EncodeToString(hdr),
			StampHex:     hex.EncodeToString(stp),
		})
	}
	s.log.Info("admin viewed report", "report", out.ID) // never the plaintext
	writeJSON(w, http.StatusOK, &out)
	return nil
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	n, err := strconv.ParseUint(r.PathValue("n"), 10, 64)
	if err != nil {
		return badRequest("the epoch is a decimal number")
	}
	if s.deps.Lottery == nil {
		return errNotFound
	}
	rep, err := s.deps.Lottery.Audit(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAudit(n, rep))
	return nil
}

func toAudit(epoch uint64, rep *lottery.AuditReport) *Audit {
	res := rep.Result
	out := &Audit{
		Epoch: epoch, Seed: hex.EncodeToString(res.Seed[:]),
		Included: nodeIDs(res.Included), Excluded: nodeIDs(res.Excluded),
		Pairs: len(res.Pairs), Unmatched: len(res.Unmatched), Rejected: len(res.Rejected),
		NotDrawn: make([]Pair, 0, len(rep.NotDrawn)), NotConfirmed: len(rep.NotConfirmed), OK: rep.OK(),
	}
	for _, p := range rep.NotDrawn {
		out.NotDrawn = append(out.NotDrawn, Pair{A: hex.EncodeToString(p.A[:]), B: hex.EncodeToString(p.B[:])})
	}
	return out
}

func nodeIDs(ids []keys.NodeID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}
