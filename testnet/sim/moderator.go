package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The admin API's answers this package reads (spec 10 §3). The testnet
// speaks to parleyd only over its interfaces, not through node's Go types.
type (
	adminReportList struct {
		Reports []adminReport `json:"reports"`
	}
	adminReport struct {
		ID             string `json:"id"`
		AccusedAccount string `json:"accused_account"`
	}
	adminAccount struct {
		ID        string `json:"id"`
		Suspended bool   `json:"suspended"`
	}
)

// adminPrefix is where the admin API lives on the operator listener.
const adminPrefix = "/admin/v1/"

// moderator plays every node's operator: it reads the node's report queue
// through the admin API (spec 10 §3) and suspends each accused account of
// its own that a verified report names. A node whose moderation policy
// suspends by itself is only observed.
type moderator struct {
	hc *http.Client

	mu        sync.Mutex
	reports   map[string]struct{} // report IDs seen, across nodes
	suspended map[string]struct{} // accounts found or made suspended
	handled   map[string]struct{} // accounts already acted on
}

func newModerator() *moderator {
	return &moderator{hc: &http.Client{Timeout: 5 * time.Second}, reports: map[string]struct{}{},
		suspended: map[string]struct{}{}, handled: map[string]struct{}{}}
}

func (m *moderator) counts() (reports, suspended int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reports), len(m.suspended)
}

// adminCall calls the admin API of n and decodes the answer into out.
func (m *moderator) adminCall(ctx context.Context, n *nodeProc, method, path string, body, out any) error {
	token, err := n.adminToken()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.opAddr+adminPrefix+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// sweep reviews the report queue of every node that is up.
func (m *moderator) sweep(ctx context.Context, nodes []*nodeProc) error {
	for _, n := range nodes {
		if !n.isUp() {
			continue
		}
		var list adminReportList
		if err := m.adminCall(ctx, n, http.MethodGet, "reports?limit=1000", nil, &list); err != nil {
			return err
		}
		for _, r := range list.Reports {
			m.mu.Lock()
			m.reports[r.ID] = struct{}{}
			_, done := m.handled[r.AccusedAccount]
			m.mu.Unlock()
			if r.AccusedAccount == "" || done {
				continue
			}
			var acct adminAccount
			ref := url.PathEscape(r.AccusedAccount)
			if err := m.adminCall(ctx, n, http.MethodGet, "accounts/"+ref, nil, &acct); err != nil {
				return err
			}
			if !acct.Suspended {
				reason := map[string]string{"reason": "testnet operator: verified spam report " + r.ID}
				if err := m.adminCall(ctx, n, http.MethodPost, "accounts/"+ref+"/suspend", reason, nil); err != nil {
					return err
				}
			}
			m.mu.Lock()
			m.handled[r.AccusedAccount] = struct{}{}
			m.suspended[r.AccusedAccount] = struct{}{}
			m.mu.Unlock()
		}
	}
	return nil
}
