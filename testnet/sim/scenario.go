package sim

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// scenario runs cfg.Scenario while the users load the network, and
// returns when the load period is over (or ctx ended).
func (r *run) scenario(ctx, uctx context.Context, uwg *sync.WaitGroup) error {
	load := time.Now()
	// at waits until the given fraction of the load period; false if ctx
	// ended first.
	at := func(frac float64) bool {
		t := time.NewTimer(time.Until(load.Add(time.Duration(float64(r.cfg.Duration) * frac))))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	nodes := r.nodeList()
	var victim *nodeProc
	if len(nodes) > 1 {
		// Never the first node: it holds the spammer and a reporter.
		victim = nodes[1+r.rng.IntN(len(nodes)-1)]
	}
	switch r.cfg.Scenario {
	case ScenarioKill:
		if !at(1.0 / 3) {
			return nil
		}
		victim.kill()
		r.event("SIGKILL node%d under load", victim.idx)
		if !at(1.0/3 + 0.05) {
			return nil
		}
		if err := victim.start(ctx); err != nil {
			return fmt.Errorf("restarting node%d: %w", victim.idx, err)
		}
		r.event("node%d restarted", victim.idx)
	case ScenarioPartition:
		if !at(1.0 / 4) {
			return nil
		}
		r.setCut(victim.idx, true)
		r.event("node%d cut off from the network (transport)", victim.idx)
		if !at(3.0 / 5) {
			return nil
		}
		r.setCut(victim.idx, false)
		r.event("node%d's cut healed", victim.idx)
	case ScenarioChurn:
		if !at(1.0 / 5) {
			return nil
		}
		n, err := r.addNode(ctx, len(nodes))
		if err != nil {
			return err
		}
		n.configure(r.cfg.Epoch, r.bootstrapFor(n))
		if err := n.start(ctx); err != nil {
			return err
		}
		r.writeTargets()
		newcomers := max(2, r.cfg.Users/len(nodes))
		before := len(r.userList())
		if err := r.addUsers(ctx, newcomers, []*nodeProc{n}, false); err != nil {
			return err
		}
		r.startUsers(uctx, uwg, r.userList()[before:])
		r.event("node%d joined with %d new users", n.idx, newcomers)
		if !at(2.0 / 5) {
			return nil
		}
		if err := victim.stop(); err != nil {
			return fmt.Errorf("node%d did not leave cleanly: %w", victim.idx, err)
		}
		r.event("node%d left (graceful stop)", victim.idx)
		if !at(3.0 / 5) {
			return nil
		}
		if err := victim.start(ctx); err != nil {
			return fmt.Errorf("node%d rejoining: %w", victim.idx, err)
		}
		r.event("node%d came back", victim.idx)
	}
	at(1)
	return nil
}

// setCut cuts node i off (or heals it) on every proxy.
func (r *run) setCut(i int, cut bool) {
	r.mu.Lock()
	r.cutSet[i] = cut
	r.mu.Unlock()
	for _, n := range r.nodeList() {
		n.proxy.apply()
	}
}
