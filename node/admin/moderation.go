package admin

import (
	"encoding/hex"
	"net/http"

	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/protocol/keys"
)

// MaxBy bounds the name of who takes an action, in bytes.
const MaxBy = moderation.MaxBy

// DefaultOperator is who an action is recorded as taken by when the
// request names nobody.
const DefaultOperator = "admin"

func operator(by string) string {
	if by == "" {
		return DefaultOperator
	}
	return by
}

// ModerationStatus is an account's moderation state (spec 13 §4, §5).
type ModerationStatus struct {
	Throttled      bool           `json:"throttled"`
	ThrottledUntil string         `json:"throttled_until,omitempty"`
	Reporters      int            `json:"reporters"` // distinct reporters that count now
	Reports        []string       `json:"reports"`   // their last report IDs, hex
	Signals        Signals        `json:"signals"`
	Actions        []ActionRecord `json:"actions"`
}

// Signals are the spam signals with their inputs and the score (spec 13 §4).
type Signals struct {
	Rooms              int     `json:"rooms"`
	RoomsLastHour      int     `json:"rooms_last_hour"`
	Closed             int     `json:"closed"`
	MedianSeconds      float64 `json:"median_seconds"`
	ShortConversations float64 `json:"short_conversations"`
	QuickExits         float64 `json:"quick_exits"`
	Messages           int     `json:"messages"`
	CountedRooms       int     `json:"counted_rooms"`
	Reporters          int     `json:"reporters"`
	Score              float64 `json:"score"`
	Acts               bool    `json:"acts"`
}

// ActionRecord is one recorded moderation action.
type ActionRecord struct {
	Seq       uint64   `json:"seq"`
	Kind      string   `json:"kind"`
	Time      string   `json:"time"`
	Automatic bool     `json:"automatic"`
	By        string   `json:"by"`
	Reason    string   `json:"reason"`
	Evidence  []string `json:"evidence"` // report IDs, hex
}

// ThrottleResult answers throttle and unthrottle.
type ThrottleResult struct {
	Account    Account          `json:"account"`
	Moderation ModerationStatus `json:"moderation"`
}

func hexIDs(ids [][32]byte) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, hex.EncodeToString(id[:]))
	}
	return out
}

func toModeration(st moderation.Status) *ModerationStatus {
	sg := st.Signals
	out := &ModerationStatus{
		Throttled: st.Throttled, Reporters: st.Reporters, Reports: hexIDs(st.Reports),
		Signals: Signals{
			Rooms: sg.Rooms, RoomsLastHour: sg.RoomsLastHour, Closed: sg.Closed, MedianSeconds: sg.MedianSeconds,
			ShortConversations: sg.ShortConversations, QuickExits: sg.QuickExits, Messages: sg.Messages,
			CountedRooms: sg.Counted, Reporters: sg.Reporters, Score: sg.Score, Acts: sg.Acts,
		},
		Actions: make([]ActionRecord, 0, len(st.Actions)),
	}
	if st.Throttled {
		out.ThrottledUntil = formatTime(st.ThrottledUntil)
	}
	for _, a := range st.Actions {
		out.Actions = append(out.Actions, ActionRecord{
			Seq: a.Seq, Kind: a.Kind.String(), Time: formatTime(a.Time), Automatic: a.Automatic,
			By: a.By, Reason: a.Reason, Evidence: hexIDs(a.Evidence),
		})
	}
	return out
}

// reverseRequest reads the optional body of unsuspend and unthrottle.
func (s *Server) reverseRequest(w http.ResponseWriter, r *http.Request) (ReverseRequest, error) {
	var req ReverseRequest
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return req, requireNoBody(r)
	}
	return req, s.decode(w, r, &req)
}

func (s *Server) throttle(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Moderation == nil {
		return errNotFound
	}
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
	if _, err := s.deps.Moderation.Throttle(r.Context(), a.ID, operator(req.By), *req.Reason); err != nil {
		return err
	}
	s.log.Info("admin throttled account", "account", a.ID.String(), "username", a.Username)
	return s.writeThrottle(w, r, a.ID)
}

func (s *Server) unthrottle(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Moderation == nil {
		return errNotFound
	}
	req, err := s.reverseRequest(w, r)
	if err != nil {
		return err
	}
	a, err := s.account(r)
	if err != nil {
		return err
	}
	if err := s.deps.Moderation.Unthrottle(r.Context(), a.ID, operator(req.By), req.Reason); err != nil {
		return err
	}
	s.log.Info("admin unthrottled account", "account", a.ID.String(), "username", a.Username)
	return s.writeThrottle(w, r, a.ID)
}

func (s *Server) writeThrottle(w http.ResponseWriter, r *http.Request, id keys.AccountID) error {
	a, err := s.deps.Accounts.Get(r.Context(), id)
	if err != nil {
		return err
	}
	st, err := s.deps.Moderation.Status(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ThrottleResult{Account: toAccount(a), Moderation: *toModeration(st)})
	return nil
}

// ResolveRequest is the body of POST reports/{id}/resolve.
type ResolveRequest struct {
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`
}

func (s *Server) resolveReport(w http.ResponseWriter, r *http.Request) error {
	id, err := parseReportID(r.PathValue("id"))
	if err != nil {
		return err
	}
	req, err := s.resolveRequest(w, r)
	if err != nil {
		return err
	}
	st, err := s.deps.Reports.Resolve(r.Context(), id, operator(req.By), req.Note)
	if err != nil {
		return err
	}
	s.log.Info("admin resolved report", "report", hex.EncodeToString(id[:]))
	writeJSON(w, http.StatusOK, summary(st))
	return nil
}

func (s *Server) resolveRequest(w http.ResponseWriter, r *http.Request) (ResolveRequest, error) {
	var req ResolveRequest
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return req, requireNoBody(r)
	}
	return req, s.decode(w, r, &req)
}
