package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Scenarios Run knows.
const (
	ScenarioSteady    = "steady"    // nodes stay up; users pair, talk, spam and report
	ScenarioKill      = "kill"      // SIGKILL a node under load, then restart it
	ScenarioPartition = "partition" // cut a node off at the transport, then heal the cut
	ScenarioChurn     = "churn"     // a node joins with new users; another leaves and comes back
)

// Config is one testnet run. The zero value of each field takes the
// default named in its comment.
type Config struct {
	// Nodes is how many parleyd processes start. Default 3; 1 to 64.
	Nodes int
	// Users is how many simulated users take part: one spammer, about one
	// in eight reporters, the rest chatters. Default 30; 2 to 10000.
	Users int
	// Duration is how long users keep starting conversations; the run then
	// drains (users finish their conversations, every acknowledged message
	// must arrive) for at most DrainTimeout. Default 30s.
	Duration time.Duration
	// DrainTimeout bounds the drain at the end. Default 60s.
	DrainTimeout time.Duration
	// Seed makes the users' choices (roles, message counts, pauses) and the
	// scenario's victim reproducible. Default 1.
	Seed int64
	// Dir holds the nodes' data directories, the generated Prometheus
	// config and the users' keystores. Required (the command makes a
	// temporary one when none is given).
	Dir string
	// Scenario is steady, kill, partition or churn. Default steady.
	Scenario string
	// Parleyd is the parleyd binary. Required (the command builds it).
	Parleyd string
	// Network is the network ID. Default "parley-testnet".
	Network string
	// Epoch is the lottery's epoch length. Default 500ms.
	Epoch time.Duration
	// Messages is the most messages a chatter sends in one conversation
	// (it sends 1 to Messages, then says goodbye). Default 8.
	Messages int
	// Pause is the longest pause between two messages of a chatter (each
	// pause is uniform in [0, Pause]). Default 400ms.
	Pause time.Duration
	// BothLeave makes both sides of a conversation leave once they have
	// exchanged goodbyes, so that their close notices cross (what people
	// do). When false, only one side leaves and the other waits for the
	// room to close. Default false.
	BothLeave bool
	// Prometheus is the prometheus binary to start beside the nodes, or
	// empty for none (the command looks it up in PATH).
	Prometheus string
	// PrometheusConfig is the Prometheus configuration to write in Dir
	// (testnet/prometheus/prometheus.yml, which scrapes the targets in
	// Dir/targets.json), or empty for none.
	PrometheusConfig []byte
	// SummaryEvery is how often the live summary is printed; negative for
	// never. Default 2s.
	SummaryEvery time.Duration
	// OnDrained, when set, is called after the drain with the operator
	// addresses of the nodes, still running (a test seam: the tests scrape
	// the nodes' metrics there).
	OnDrained func(opAddrs []string)
	// Out receives the live summary and the final report. Default discard.
	Out io.Writer
	// Logger receives the details (node exits, user errors). Default discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Nodes, 3)
	def(&c.Users, 30)
	def(&c.Messages, 8)
	defD(&c.Duration, 30*time.Second)
	defD(&c.DrainTimeout, 60*time.Second)
	defD(&c.Epoch, 500*time.Millisecond)
	defD(&c.Pause, 400*time.Millisecond)
	defD(&c.SummaryEvery, 2*time.Second)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioSteady
	}
	if c.Network == "" {
		c.Network = "parley-testnet"
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c (after defaults) at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Nodes < 1 || c.Nodes > 64 {
		errs = append(errs, fmt.Errorf("nodes is %d, want 1 to 64", c.Nodes))
	}
	if c.Users < 2 || c.Users > 10000 {
		errs = append(errs, fmt.Errorf("users is %d, want 2 to 10000", c.Users))
	}
	if c.Duration < 0 || c.DrainTimeout < 0 || c.Epoch < 0 || c.Pause < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.Messages < 1 || c.Messages > 1000 {
		errs = append(errs, fmt.Errorf("messages is %d, want 1 to 1000", c.Messages))
	}
	switch c.Scenario {
	case ScenarioSteady, ScenarioKill, ScenarioPartition, ScenarioChurn:
	default:
		errs = append(errs, fmt.Errorf("scenario %q is not steady, kill, partition or churn", c.Scenario))
	}
	if (c.Scenario == ScenarioKill || c.Scenario == ScenarioPartition || c.Scenario == ScenarioChurn) && c.Nodes < 2 {
		errs = append(errs, fmt.Errorf("scenario %s needs at least 2 nodes", c.Scenario))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is required"))
	}
	if c.Parleyd == "" {
		errs = append(errs, errors.New("parleyd (the binary) is required"))
	}
	return errors.Join(errs...)
}
