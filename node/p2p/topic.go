package p2p

import (
	"context"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Validator judges one gossip message on a joined topic before it is
// delivered or forwarded (spec 11-federation §4.3). It returns
// pubsub.ValidationAccept, pubsub.ValidationReject (the message is invalid:
// it is dropped and costs the peer that sent it score) or
// pubsub.ValidationIgnore (not invalid, but not wanted: a duplicate, a
// stale record; dropped without penalty). msg.GetFrom() is the message's
// author, authenticated by its signature (strict signing);
// msg.ReceivedFrom is the peer that forwarded it. A validator must not
// block: ctx ends after a few seconds.
type Validator func(ctx context.Context, msg *pubsub.Message) pubsub.ValidationResult

// Topic is a joined gossip topic of this node's network.
type Topic struct {
	name  string
	full  string
	t     *pubsub.Topic
	relay pubsub.RelayCancelFunc
}

// Name returns the topic's short name ("nodes").
func (t *Topic) Name() string { return t.name }

// String returns the topic's full name ("parley/<network>/nodes").
func (t *Topic) String() string { return t.full }

// Publish publishes data on the topic, signed by this node. The local
// validator checks it first, like any message.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	return t.t.Publish(ctx, data)
}

// Subscribe returns a subscription delivering the messages the validator
// accepted. Cancel it when done.
func (t *Topic) Subscribe(opts ...pubsub.SubOpt) (*pubsub.Subscription, error) {
	return t.t.Subscribe(opts...)
}

// Peers returns the peers known to be in the topic.
func (t *Topic) Peers() []peer.ID { return t.t.ListPeers() }

// Raw returns the pubsub topic.
func (t *Topic) Raw() *pubsub.Topic { return t.t }

func (t *Topic) close() {
	if t.relay != nil {
		t.relay()
	}
}

// Join joins Topic(name) with validator v, the network's topic score
// parameters, and relaying on, so this node forwards the topic's messages
// whether or not anything subscribes. Each name may be joined once.
func (x *Host) Join(name string, v Validator) (*Topic, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: topic %q", ErrName, name)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	if _, ok := x.topics[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrJoined, name)
	}
	full := x.Topic(name)
	gossip := x.m.gossip
	wrapped := func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		r := v(ctx, msg)
		switch r {
		case pubsub.ValidationAccept:
			gossip.WithLabelValues(name, resultAccept).Inc()
		case pubsub.ValidationIgnore:
			gossip.WithLabelValues(name, resultIgnore).Inc()
		default:
			r = pubsub.ValidationReject
			gossip.WithLabelValues(name, resultReject).Inc()
		}
		return r
	}
	for _, r := range []string{resultAccept, resultReject, resultIgnore} {
		gossip.WithLabelValues(name, r)
	}
	if err := x.ps.RegisterTopicValidator(full, pubsub.ValidatorEx(wrapped), pubsub.WithValidatorTimeout(validateTimeout)); err != nil {
		return nil, fmt.Errorf("p2p: validator for %s: %w", full, err)
	}
	pt, err := x.ps.Join(full)
	if err != nil {
		_ = x.ps.UnregisterTopicValidator(full)
		return nil, fmt.Errorf("p2p: joining %s: %w", full, err)
	}
	if err := pt.SetScoreParams(topicScoreParams()); err != nil {
		_ = pt.Close()
		_ = x.ps.UnregisterTopicValidator(full)
		return nil, fmt.Errorf("p2p: score parameters for %s: %w", full, err)
	}
	relay, err := pt.Relay()
	if err != nil {
		_ = pt.Close()
		_ = x.ps.UnregisterTopicValidator(full)
		return nil, fmt.Errorf("p2p: relaying %s: %w", full, err)
	}
	t := &Topic{name: name, full: full, t: pt, relay: relay}
	x.topics[name] = t
	return t, nil
}
