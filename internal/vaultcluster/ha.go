package vaultcluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowcred/vault-plugin-flowcred/internal/vaulttest"
)

// Active returns the node that is active now (sys/health 200), nil if none
// is. It does not wait; use WaitActive after a kill.
func (c *Cluster) Active() *Node {
	codes := c.healthAll(context.Background())
	for _, n := range c.Nodes {
		if codes[n] == healthActive {
			return n
		}
	}
	return nil
}

// Standbys returns the running, unsealed standby nodes (sys/health 429).
func (c *Cluster) Standbys() []*Node {
	codes := c.healthAll(context.Background())
	var out []*Node
	for _, n := range c.Nodes {
		if codes[n] == healthStandby {
			out = append(out, n)
		}
	}
	return out
}

// Running returns the nodes whose process is running.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// healthAll probes every running node in parallel.
func (c *Cluster) healthAll(ctx context.Context) map[*Node]int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[*Node]int{}
	for _, n := range c.Running() {
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			code := n.health(ctx)
			mu.Lock()
			out[n] = code
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return out
}

// Kill stops a node like a crashed machine: SIGKILL to the vault server and
// the plugin processes it started (they share its process group). Requests
// in flight on it are cut off; its raft data stays for Restart.
func (c *Cluster) Kill(n *Node) {
	n.kill()
}

// Restart starts a stopped node again on its data and ports, unseals it and
// waits until it serves as a standby (or active) and autopilot counts it as
// a healthy voter again, so that the cluster can lose another node.
func (c *Cluster) Restart(n *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if n.Running() {
		return fmt.Errorf("restart %s: it is running", n.Name)
	}
	if err := n.start(c.opts.LogLevel); err != nil {
		return err
	}
	if err := n.waitHealth(ctx, func(code int) bool { return code == healthSealed }); err != nil {
		return fmt.Errorf("restart %s: %w", n.Name, err)
	}
	if err := n.unseal(ctx, c.UnsealKey); err != nil {
		return fmt.Errorf("restart %s: %w", n.Name, err)
	}
	return c.waitHealthy(ctx)
}

// Heal restarts every stopped node and waits until all nodes are healthy
// voters with one active node that the standbys follow.
func (c *Cluster) Heal() error {
	for _, n := range c.Nodes {
		if !n.Running() {
			if err := c.Restart(n); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	return c.waitHealthy(ctx)
}

// WaitActive waits until exactly one running node is active and every other
// running node is an unsealed standby that names it as the leader (so
// requests sent to a standby are forwarded to it), and returns it.
func (c *Cluster) WaitActive() (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	return c.waitActive(ctx)
}

func (c *Cluster) waitActive(ctx context.Context) (*Node, error) {
	last := "no probe yet"
	for {
		active, why := c.settled(ctx)
		if active != nil {
			return active, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for an active node: %s: %w", last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settled returns the active node when the running nodes agree on it, or
// nil and what is still missing.
func (c *Cluster) settled(ctx context.Context) (*Node, string) {
	codes := c.healthAll(ctx)
	var active []*Node
	var states []string
	for n, code := range codes {
		states = append(states, fmt.Sprintf("%s=%d", n.Name, code))
		if code == healthActive {
			active = append(active, n)
		}
	}
	sort.Strings(states)
	if len(active) != 1 {
		return nil, fmt.Sprintf("%d active nodes (sys/health %s)", len(active), strings.Join(states, " "))
	}
	a := active[0]
	for n, code := range codes {
		if n == a {
			continue
		}
		if code != healthStandby {
			return nil, fmt.Sprintf("%s is not a standby (sys/health %s)", n.Name, strings.Join(states, " "))
		}
		l, err := n.Client.Sys().LeaderWithContext(ctx)
		if err != nil {
			return nil, fmt.Sprintf("sys/leader on %s: %v", n.Name, err)
		}
		if l.LeaderAddress != a.Addr {
			return nil, fmt.Sprintf("%s follows %q, not %s", n.Name, l.LeaderAddress, a.Addr)
		}
	}
	return a, ""
}

// waitVoters waits until autopilot reports every node of the cluster as a
// healthy voter.
func (c *Cluster) waitVoters(ctx context.Context) error {
	last := "no probe yet"
	for {
		ok, why := c.allVoters(ctx)
		if ok {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d healthy voters: %s: %w", len(c.Nodes), last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) allVoters(ctx context.Context) (bool, string) {
	a, why := c.settled(ctx)
	if a == nil {
		return false, why
	}
	st, err := a.Client.Sys().RaftAutopilotStateWithContext(ctx)
	if err != nil {
		return false, fmt.Sprintf("autopilot state on %s: %v", a.Name, err)
	}
	if st == nil {
		return false, "no autopilot state yet"
	}
	var notReady []string
	for _, n := range c.Nodes {
		s := st.Servers[n.Name]
		switch {
		case s == nil:
			notReady = append(notReady, n.Name+" not a member")
		case !s.Healthy:
			notReady = append(notReady, n.Name+" unhealthy")
		case s.Status != "voter" && s.Status != "leader":
			notReady = append(notReady, n.Name+" is "+s.Status)
		}
	}
	if len(notReady) > 0 {
		return false, strings.Join(notReady, ", ")
	}
	return true, ""
}

// waitHealthy waits for a settled active node and all nodes healthy voters.
func (c *Cluster) waitHealthy(ctx context.Context) error {
	return c.waitVoters(ctx)
}

// PluginPIDs lists the plugin processes node n runs now (children of its
// vault server whose executable is in PluginDir). Vault starts a plugin when
// a node becomes active and sets up its mounts; a standby runs none.
func (c *Cluster) PluginPIDs(n *Node) ([]int, error) {
	return vaulttest.PluginPIDs(n.PID(), c.PluginDir)
}
