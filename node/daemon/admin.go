package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
)

const adminUsage = `usage: parleyd admin [--data DIR | --config FILE] [--operator-listen ADDR] [--json] COMMAND

Commands (they call the running node's admin API, spec/10-admin-api.md):
  accounts list [--after ID] [--limit N]   list accounts, in ID order
  accounts show NAME|ID                    show one account, its spam signals and moderation record
  accounts suspend NAME|ID --reason TEXT   suspend an account and end its sessions
  accounts unsuspend NAME|ID [--reason TEXT]
                                           lift a suspension
  accounts throttle NAME|ID --reason TEXT  throttle an account's messages and tickets
  accounts unthrottle NAME|ID [--reason TEXT]
                                           lift a throttle
  invite                                   create an invite token (registration_mode "invite")
  reports list [--limit N] [--state open|resolved|all]
                                           the report queue (no plaintext)
  reports show ID                          one report, with the disclosed messages
  reports resolve ID [--note TEXT]         mark a report resolved
  nodes list                               the nodes this one knows: state, software, last seen, addresses
  nodes show|deny|allow PEER_ID            reports about a remote node's users; defederate it or allow it again
  nodes throttle|unthrottle PEER_ID        hold a node's deliveries to federation.throttled_peer_rate, or lift it
  lottery audit --epoch N                  recompute a past lottery epoch and check its pairs
  blobs show ADDR [--key KEY [--out FILE]] a blob's state; with the key (or link) a verified report
                                           disclosed, decrypt it here and write it to FILE (or stdout)
  blobs takedown ADDR                      take a blob down here and notify the nodes that fetched it
  token                                    create DIR/admin.token if it is missing (no node needed)

The node's address is operator.listen from the configuration; the token is
read from DIR/admin.token. --json prints the API's JSON answer. Actions are
recorded as taken by --by NAME (default $USER, else "admin").
`

// adminTimeout bounds one admin API call.
const adminTimeout = 30 * time.Second

// adminCommand is a parsed `parleyd admin` command line.
type adminCommand struct {
	words  []string // the command and its positional arguments
	json   bool
	reason *string
	epoch  *uint64
	limit  int
	after  string
	by     string
	note   string
	state  string
	key    string
	out    string
}

// parseInterspersed parses fl over args, allowing flags after positional
// arguments (`accounts suspend bob --reason spam`); it returns the
// positional arguments.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		if fl.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
}

// adminFlagsFor lists the command-specific flags each command accepts.
var adminFlagsFor = map[string][]string{
	"accounts list":       {"after", "limit"},
	"accounts suspend":    {"reason", "by"},
	"accounts unsuspend":  {"reason", "by"},
	"accounts throttle":   {"reason", "by"},
	"accounts unthrottle": {"reason", "by"},
	"reports list":        {"limit", "state"},
	"reports resolve":     {"note", "by"},
	"lottery audit":       {"epoch"},
	"blobs show":          {"key", "out"},
	"blobs takedown":      nil,
	"nodes list":          nil,
	"nodes show":          nil,
	"nodes deny":          nil,
	"nodes allow":         nil,
	"nodes throttle":      nil,
	"nodes unthrottle":    nil,
	"accounts show":       nil,
	"invite":              nil,
	"reports show":        nil,
	"token":               nil,
}

// adminArgs is how many positional arguments follow each command.
var adminArgs = map[string]int{
	"accounts show": 1, "accounts suspend": 1, "accounts unsuspend": 1, "accounts throttle": 1, "accounts unthrottle": 1,
	"reports show": 1, "reports resolve": 1, "nodes show": 1, "nodes deny": 1, "nodes allow": 1, "nodes throttle": 1, "nodes unthrottle": 1,
	"blobs show": 1, "blobs takedown": 1,
}

func cmdAdmin(ctx context.Context, e Env) error {
	lf := newLoadFlags("admin", e)
	var c adminCommand
	lf.fl.BoolVar(&c.json, "json", false, "print the API's JSON answer")
	reason := lf.fl.String("reason", "", "suspension reason (accounts suspend)")
	epoch := lf.fl.Uint64("epoch", 0, "lottery epoch (lottery audit)")
	lf.fl.IntVar(&c.limit, "limit", 0, "how many to list (default: the node's admin.default_limit)")
	lf.fl.StringVar(&c.after, "after", "", "list accounts after this account ID (paging)")
	lf.fl.StringVar(&c.by, "by", "", "who takes the action, for the record (default $USER)")
	lf.fl.StringVar(&c.note, "note", "", "resolution note (reports resolve)")
	lf.fl.StringVar(&c.state, "state", "", "open, resolved or all (reports list)")
	lf.fl.StringVar(&c.key, "key", "", "the blob key, or the whole link, a verified report disclosed (blobs show); never sent to the node")
	lf.fl.StringVar(&c.out, "out", "", "write the decrypted blob to this file, created with mode 0600 (blobs show)")
	lf.fl.Usage = func() { fmt.Fprint(e.Stderr, adminUsage) }
	words, err := parseInterspersed(lf.fl, e.Args[1:])
	if err != nil {
		return ErrUsage
	}
	name, nargs := "", 0
	for cmd := range adminFlagsFor {
		n := len(strings.Fields(cmd))
		if len(words) >= n && strings.Join(words[:n], " ") == cmd {
			name, nargs = cmd, len(words)-n
			c.words = words[n:]
		}
	}
	if name == "" || nargs != adminArgs[name] {
		fmt.Fprint(e.Stderr, adminUsage)
		return ErrUsage
	}
	var bad []string
	lf.fl.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "reason":
			c.reason = reason
		case "epoch":
			c.epoch = epoch
		}
		if !isCommonAdminFlag(f.Name) && !contains(adminFlagsFor[name], f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		fmt.Fprintf(e.Stderr, "parleyd admin %s does not take %s\n\n%s", name, strings.Join(bad, ", "), adminUsage)
		return ErrUsage
	}
	if name == "token" {
		return adminToken(e, lf)
	}
	if (name == "accounts suspend" || name == "accounts throttle") && c.reason == nil {
		fmt.Fprintf(e.Stderr, "parleyd admin %s needs --reason TEXT\n", name)
		return ErrUsage
	}
	if c.by == "" {
		c.by = lookupEnv(e.Environ, "USER")
	}
	if len(c.by) > admin.MaxBy {
		c.by = c.by[:admin.MaxBy]
	}
	if name == "blobs show" && c.out != "" && c.key == "" {
		fmt.Fprint(e.Stderr, "parleyd admin blobs show --out needs --key KEY\n")
		return ErrUsage
	}
	if name == "lottery audit" && c.epoch == nil {
		fmt.Fprint(e.Stderr, "parleyd admin lottery audit needs --epoch N\n")
		return ErrUsage
	}
	cfg, err := lf.load(e)
	if err != nil {
		return err
	}
	cl, err := newAdminClient(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	return cl.run(ctx, e.Stdout, name, c)
}

func isCommonAdminFlag(name string) bool {
	if _, ok := shortcuts[name]; ok {
		return true
	}
	return name == "data" || name == "config" || name == "set" || name == "json"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// adminToken creates the admin token file if it is missing. It needs no
// running node: only the data directory.
func adminToken(e Env, lf *loadFlags) error {
	dir := *lf.dir
	if cfg, err := lf.load(e); err == nil {
		dir = cfg.DataDir
	} else if dir == "" {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	path := admin.TokenPath(abs)
	err = admin.CreateToken(path, nil)
	switch {
	case errors.Is(err, admin.ErrTokenExists):
		fmt.Fprintf(e.Stdout, "admin token %s already exists; kept it\n", path)
		return nil
	case err != nil:
		return fmt.Errorf("parleyd admin token: %w", err)
	}
	fmt.Fprintf(e.Stdout, "created admin token %s (mode 0600); a running node reads it at its next start\n", path)
	return nil
}

// adminClient calls a running node's admin API.
type adminClient struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

func newAdminClient(cfg node.Config) (*adminClient, error) {
	host, port, err := net.SplitHostPort(cfg.Operator.Listen)
	if err != nil {
		return nil, fmt.Errorf("operator.listen %q: %w", cfg.Operator.Listen, err)
	}
	if port == "0" {
		return nil, fmt.Errorf("operator.listen %q has port 0: give the running node's operator address with --operator-listen HOST:PORT", cfg.Operator.Listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	tok, err := admin.LoadToken(cfg.AdminTokenFile())
	if errors.Is(err, admin.ErrNoToken) {
		return nil, fmt.Errorf("no admin token at %s: create one with `parleyd admin token --data %s` and restart the node", cfg.AdminTokenFile(), cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}
	return &adminClient{base: "http://" + net.JoinHostPort(host, port), token: tok, http: &http.Client{}}, nil
}

// do calls the API and decodes a 2xx answer into out; raw is the body.
func (c *adminClient) do(ctx context.Context, method, path string, body any, out any) (raw []byte, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+admin.Prefix+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the node's admin API at %s (is the node running?): %w", c.base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var eb admin.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			return nil, fmt.Errorf("admin API: %s: %s (HTTP %d)", eb.Error.Code, eb.Error.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("admin API: bad answer: %w", err)
	}
	return raw, nil
}

func (c *adminClient) run(ctx context.Context, w io.Writer, name string, cmd adminCommand) error {
	var (
		raw []byte
		err error
		out func()
	)
	esc := func(s string) string { return url.PathEscape(s) }
	switch name {
	case "accounts list":
		q := url.Values{}
		if cmd.limit != 0 {
			q.Set("limit", strconv.Itoa(cmd.limit))
		}
		if cmd.after != "" {
			q.Set("after", cmd.after)
		}
		path := "accounts"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var l admin.AccountList
		raw, err = c.do(ctx, http.MethodGet, path, nil, &l)
		out = func() { printAccounts(w, l) }
	case "accounts show":
		var a admin.Account
		raw, err = c.do(ctx, http.MethodGet, "accounts/"+esc(cmd.words[0]), nil, &a)
		out = func() { printAccount(w, a) }
	case "accounts suspend":
		var r admin.SuspendResult
		raw, err = c.do(ctx, http.MethodPost, "accounts/"+esc(cmd.words[0])+"/suspend", admin.SuspendRequest{Reason: cmd.reason, By: cmd.by}, &r)
		out = func() {
			fmt.Fprintf(w, "suspended %s (%s); %d session(s) revoked\n", r.Account.Username, r.Account.ID, r.SessionsRevoked)
		}
	case "accounts unsuspend":
		var r admin.SuspendResult
		raw, err = c.do(ctx, http.MethodPost, "accounts/"+esc(cmd.words[0])+"/unsuspend", admin.ReverseRequest{By: cmd.by, Reason: deref(cmd.reason)}, &r)
		out = func() { fmt.Fprintf(w, "unsuspended %s (%s)\n", r.Account.Username, r.Account.ID) }
	case "accounts throttle", "accounts unthrottle":
		verb := strings.TrimPrefix(name, "accounts ")
		var body any = admin.ReverseRequest{By: cmd.by, Reason: deref(cmd.reason)}
		if verb == "throttle" {
			body = admin.SuspendRequest{Reason: cmd.reason, By: cmd.by}
		}
		var r admin.ThrottleResult
		raw, err = c.do(ctx, http.MethodPost, "accounts/"+esc(cmd.words[0])+"/"+verb, body, &r)
		out = func() {
			fmt.Fprintf(w, "%sd %s (%s)", verb, r.Account.Username, r.Account.ID)
			if r.Moderation.Throttled {
				fmt.Fprintf(w, " until %s", r.Moderation.ThrottledUntil)
			}
			fmt.Fprintln(w)
		}
	case "reports resolve":
		var r admin.ReportSummary
		raw, err = c.do(ctx, http.MethodPost, "reports/"+esc(cmd.words[0])+"/resolve", admin.ResolveRequest{By: cmd.by, Note: cmd.note}, &r)
		out = func() { fmt.Fprintf(w, "resolved report %s (by %s)\n", r.ID, r.ResolvedBy) }
	case "invite":
		var r admin.Invite
		raw, err = c.do(ctx, http.MethodPost, "invites", nil, &r)
		out = func() { fmt.Fprintf(w, "invite: %s\nexpires: %s\n", r.Invite, r.Expires) }
	case "reports list":
		q := url.Values{}
		if cmd.limit != 0 {
			q.Set("limit", strconv.Itoa(cmd.limit))
		}
		if cmd.state != "" {
			q.Set("state", cmd.state)
		}
		path := "reports"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var l admin.ReportList
		raw, err = c.do(ctx, http.MethodGet, path, nil, &l)
		out = func() { printReports(w, l) }
	case "reports show":
		var r admin.Report
		raw, err = c.do(ctx, http.MethodGet, "reports/"+esc(cmd.words[0]), nil, &r)
		out = func() { printReport(w, r) }
	case "nodes list":
		var l admin.PeerList
		raw, err = c.do(ctx, http.MethodGet, "nodes", nil, &l)
		out = func() { printPeers(w, l) }
	case "nodes show", "nodes deny", "nodes allow", "nodes throttle", "nodes unthrottle":
		method, path := http.MethodGet, "nodes/"+esc(cmd.words[0])
		if name != "nodes show" {
			method, path = http.MethodPost, path+"/"+strings.TrimPrefix(name, "nodes ")
		}
		var n admin.Node
		raw, err = c.do(ctx, method, path, nil, &n)
		out = func() {
			state := "allowed"
			if n.Denied {
				state = "denied"
			}
			if n.Throttled {
				state += ", throttled"
			}
			fmt.Fprintf(w, "node:    %s\nstate:   %s\nreports: %d about its users (%d open)\n", n.ID, state, n.Reports, n.Open)
		}
	case "blobs show":
		return c.showBlob(ctx, w, cmd)
	case "blobs takedown":
		var t admin.Takedown
		raw, err = c.do(ctx, http.MethodPost, "blobs/"+esc(cmd.words[0])+"/takedown", nil, &t)
		out = func() { fmt.Fprintf(w, "took down %s; notifying %d node(s) that fetched it\n", t.Address, t.Notified) }
	case "lottery audit":
		var a admin.Audit
		raw, err = c.do(ctx, http.MethodGet, "lottery/epochs/"+strconv.FormatUint(*cmd.epoch, 10)+"/audit", nil, &a)
		out = func() { printAudit(w, a) }
	default:
		return fmt.Errorf("parleyd admin: unknown command %q", name)
	}
	if err != nil {
		return err
	}
	if cmd.json {
		var buf bytes.Buffer
		if json.Indent(&buf, raw, "", "  ") != nil {
			buf.Reset()
			buf.Write(raw)
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	out()
	return nil
}

func status(a admin.Account) string {
	if a.Suspended {
		return "suspended"
	}
	return "active"
}

func printAccounts(w io.Writer, l admin.AccountList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSTATUS\tCREATED\tID")
	for _, a := range l.Accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Username, status(a), a.Created, a.ID)
	}
	_ = tw.Flush()
	if l.Next != "" {
		fmt.Fprintf(w, "more: parleyd admin accounts list --after %s\n", l.Next)
	}
}

func printAccount(w io.Writer, a admin.Account) {
	fmt.Fprintf(w, "username: %s\nid:       %s\ncreated:  %s\nstatus:   %s\n", a.Username, a.ID, a.Created, status(a))
	if a.Suspended {
		fmt.Fprintf(w, "reason:   %s\n", a.SuspendReason)
	}
	m := a.Moderation
	if m == nil {
		return
	}
	if m.Throttled {
		fmt.Fprintf(w, "throttled until %s\n", m.ThrottledUntil)
	}
	s := m.Signals
	acts := "no: too few rooms to act on"
	if s.Acts {
		acts = "yes"
	}
	fmt.Fprintf(w, "\nspam score: %.2f (acts: %s)\n", s.Score, acts)
	fmt.Fprintf(w, "  rooms in the signal window:     %d (%d in the last hour)\n", s.Rooms, s.RoomsLastHour)
	fmt.Fprintf(w, "  closed rooms:                   %d, median length %.0fs\n", s.Closed, s.MedianSeconds)
	fmt.Fprintf(w, "  short conversations:            %.0f%%\n", 100*s.ShortConversations)
	fmt.Fprintf(w, "  partner left within seconds:    %.0f%%\n", 100*s.QuickExits)
	fmt.Fprintf(w, "  messages counted:               %d in %d room(s)\n", s.Messages, s.CountedRooms)
	fmt.Fprintf(w, "  distinct reporters (counting):  %d\n", m.Reporters)
	for _, id := range m.Reports {
		fmt.Fprintf(w, "    report %s\n", id)
	}
	if len(m.Actions) == 0 {
		fmt.Fprintln(w, "\nno moderation actions")
		return
	}
	fmt.Fprintln(w, "\nmoderation actions:")
	for _, act := range m.Actions {
		fmt.Fprintf(w, "  %s  %-10s by %s: %s\n", act.Time, act.Kind, act.By, act.Reason)
		for _, id := range act.Evidence {
			fmt.Fprintf(w, "      evidence: report %s\n", id)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func printReports(w io.Writer, l admin.ReportList) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRECEIVED\tREASON\tITEMS\tREPORTER\tACCUSED")
	for _, r := range l.Reports {
		reporter, accused := r.Reporter, r.AccusedAccount
		if reporter == "" {
			reporter = "node " + r.ReporterNode
		}
		if accused == "" {
			accused = "remote ticket " + r.AccusedTicket
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.State, r.Received, r.Reason, r.Items, reporter, accused)
	}
	_ = tw.Flush()
}

func printReport(w io.Writer, r admin.Report) {
	reporter := r.Reporter
	if reporter == "" {
		reporter = "a user of node " + r.ReporterNode
	}
	fmt.Fprintf(w, "report:   %s\nstate:    %s\nreceived: %s\nreporter: %s\nreason:   %s\ncomment:  %s\nroom:     %s\naccused:  %s\n",
		r.ID, r.State, r.Received, reporter, r.Reason, r.Comment, r.AccusedRoom, r.AccusedTicket)
	if r.AccusedAccount != "" {
		fmt.Fprintf(w, "account:  %s\n", r.AccusedAccount)
	}
	if r.State == "resolved" {
		fmt.Fprintf(w, "resolved: %s by %s: %s\n", r.Resolved, r.ResolvedBy, r.Resolution)
	}
	for i, it := range r.Content {
		fmt.Fprintf(w, "\nmessage %d (seq %d, sent %s, stamped %s by %s):\n  %s\n", i+1, it.Seq, it.Sent, it.Stamped, it.StampingNode, it.Text)
	}
}

func printAudit(w io.Writer, a admin.Audit) {
	verdict := "ok: every pair confirmed here was drawn"
	if !a.OK {
		verdict = fmt.Sprintf("FAULT: %d confirmed pair(s) were not drawn", len(a.NotDrawn))
	}
	fmt.Fprintf(w, "epoch %d: %s\nseed:      %s\nincluded:  %d node(s)\nexcluded:  %d node(s)\npairs:     %d drawn, %d not confirmed here\nunmatched: %d ticket(s), %d rejected\n",
		a.Epoch, verdict, a.Seed, len(a.Included), len(a.Excluded), a.Pairs, a.NotConfirmed, a.Unmatched, a.Rejected)
	for _, id := range a.Excluded {
		fmt.Fprintf(w, "  excluded: %s\n", id)
	}
	for _, p := range a.NotDrawn {
		fmt.Fprintf(w, "  not drawn: %s %s\n", p.A, p.B)
	}
}

// printPeers prints the nodes list, one node a line.
func printPeers(w io.Writer, l admin.PeerList) {
	if len(l.Nodes) == 0 {
		fmt.Fprintln(w, "no other nodes known")
		return
	}
	for _, n := range l.Nodes {
		seen := n.LastSeen
		if seen == "" {
			seen = "-"
		}
		soft := n.Software
		if soft == "" {
			soft = "-"
		}
		fmt.Fprintf(w, "%s  %-9s  %s  last seen %s  %s\n", n.ID, n.State, soft, seen, strings.Join(n.Addrs, ","))
	}
}
