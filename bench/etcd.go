package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdMember is one member of the benchmark's etcd cluster.
type etcdMember struct {
	name      string
	clientURL string // http://127.0.0.1:port
	peerURL   string
	proc      *proc
}

// etcdCluster is an etcd cluster of members started by the benchmark.
type etcdCluster struct {
	bin     string
	members []*etcdMember
}

// findEtcd returns the path of the etcd server binary, installing Debian's
// etcd-server package when etcd is not on PATH.
func findEtcd(ctx context.Context, out io.Writer) (string, error) {
	return findDebianBinary(ctx, out, "etcd", "etcd-server")
}

// findDebianBinary returns the path of bin, installing the Debian package
// pkg when bin is not on PATH (apt-get update is run only if the first
// install fails).
func findDebianBinary(ctx context.Context, out io.Writer, bin, pkg string) (string, error) {
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	fmt.Fprintf(out, "%s is not on PATH: installing the Debian package %s\n", bin, pkg)
	if _, err := command(ctx, "", "apt-get", "install", "-y", pkg); err != nil {
		if _, uerr := command(ctx, "", "apt-get", "update"); uerr != nil {
			return "", fmt.Errorf("install %s: %w (apt-get update: %w)", pkg, err, uerr)
		}
		if _, err := command(ctx, "", "apt-get", "install", "-y", pkg); err != nil {
			return "", fmt.Errorf("install %s: %w", pkg, err)
		}
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s installed but %s is not on PATH: %w", pkg, bin, err)
	}
	return path, nil
}

// versionLine returns the first line that bin prints when run with args,
// or "unknown".
func versionLine(ctx context.Context, bin string, args ...string) string {
	out, err := command(ctx, "", bin, args...)
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return first
}

// etcdVersion returns the version `etcd --version` prints first.
func etcdVersion(ctx context.Context, bin string) string {
	return strings.TrimPrefix(versionLine(ctx, bin, "--version"), "etcd Version: ")
}

// startEtcd starts an n-member cluster (--initial-cluster-state new) on
// loopback ports with etcd's default settings otherwise. It returns once
// the processes are started: see wait.
func startEtcd(e *env, bin string, n int) (*etcdCluster, error) {
	c := &etcdCluster{bin: bin}
	var initial []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("e%d", i+1)}
		ca, err := e.port()
		if err != nil {
			return nil, err
		}
		pa, err := e.port()
		if err != nil {
			return nil, err
		}
		m.clientURL, m.peerURL = "http://"+ca, "http://"+pa
		initial = append(initial, m.name+"="+m.peerURL)
		c.members = append(c.members, m)
	}
	token := make([]byte, 8)
	_, _ = rand.Read(token) // crypto/rand.Read never fails
	for _, m := range c.members {
		p, err := e.start("etcd-"+m.name, bin,
			"--name", m.name,
			"--data-dir", e.path("data", "etcd-"+m.name),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "shoal-bench-"+hex.EncodeToString(token),
			"--logger", "zap",
			"--log-outputs", "stderr",
		)
		if err != nil {
			return nil, err
		}
		m.proc = p
	}
	return c, nil
}

// endpoints returns the members' client URLs.
func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// client returns a client balanced over the given endpoints (all members
// when none are given). Close it when done.
func (c *etcdCluster) client(endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.endpoints()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// wait polls until every member answers Status with the same leader, or
// fails at the deadline or as soon as a member exits.
func (c *etcdCluster) wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli, err := c.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	var last error
	for {
		last = c.check(ctx, cli)
		if last == nil {
			return nil
		}
		for _, m := range c.members {
			if err := m.proc.exitErr(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster not ready after %v: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *etcdCluster) check(ctx context.Context, cli *clientv3.Client) error {
	leaders := map[uint64]bool{}
	for _, m := range c.members {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("%s: no leader", m.name)
		}
		leaders[st.Leader] = true
	}
	if len(leaders) != 1 {
		return fmt.Errorf("members disagree on the leader")
	}
	return nil
}

// leader returns the index in members of the current leader.
func (c *etcdCluster) leader(ctx context.Context, cli *clientv3.Client) (int, error) {
	for i, m := range c.members {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("find the etcd leader: %w", err)
		}
		if st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return 0, fmt.Errorf("find the etcd leader: no member says it leads")
}
