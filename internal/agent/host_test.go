package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/httpjson"
	"shoal/internal/testcluster"
	"shoal/modules"
)

// peertest is a test module that uses what the host offers modules for
// talking to each other: calls, streams, the server list, and a Raft
// command whose Term it records.
type peertest struct {
	host  modules.Host
	mu    sync.Mutex
	terms []uint64
}

var errPeertest = httpjson.Errorf(409, "peertest_refused", "refused on purpose")

func init() {
	modules.Register(modules.Info{ID: "peertest", New: func() modules.Module { return new(peertest) }})
}

func (p *peertest) ID() string                      { return "peertest" }
func (p *peertest) Provision(h modules.Host) error  { p.host = h; return nil }
func (p *peertest) Start(ctx context.Context) error { return nil }
func (p *peertest) Stop(ctx context.Context) error  { return nil }
func (p *peertest) Tag() modules.Tag                { return modules.TagTest }
func (p *peertest) Ops() []byte                     { return []byte{1} }
func (p *peertest) ApplyCommand(cmd modules.Command) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.terms = append(p.terms, cmd.Term)
	return nil, nil
}
func (p *peertest) Snapshot() (modules.Snapshot, error) { return emptySnap{}, nil }
func (p *peertest) Restore(io.Reader) error             { return nil }

type emptySnap struct{}

func (emptySnap) Persist(io.Writer) error { return nil }
func (emptySnap) Release()                {}

func (p *peertest) HandlePeer(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	switch method {
	case "whoami":
		return []byte(fmt.Sprintf("%s answers %s: %s", p.host.NodeName(), from, body)), nil
	case "refuse":
		return nil, errPeertest
	default:
		return nil, httpjson.Errorf(404, "no_method", "no method %q", method)
	}
}

func (p *peertest) HandlePeerStream(ctx context.Context, from, name string, conn net.Conn) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	fmt.Fprintf(conn, "%s/%s from %s: %s", p.host.NodeName(), name, from, strings.ToUpper(line))
}

var (
	_ modules.RaftHandler       = (*peertest)(nil)
	_ modules.PeerHandler       = (*peertest)(nil)
	_ modules.PeerStreamHandler = (*peertest)(nil)
)

func peertestOf(t *testing.T, n *testcluster.Node) *peertest {
	t.Helper()
	m, ok := n.Agent().Module("peertest")
	if !ok {
		t.Fatalf("%s runs no peertest module", n.Name)
	}
	return m.(*peertest)
}

// TestHost_ModulesReachEachOther exercises modules.Cluster on a real
// cluster with a cluster secret: the server list and leader, calls to a
// named node and to the leader (errors keep their code), streams, a call
// to a node that is down (not delivered), the leader-only apply, and the
// term in each command.
func TestHost_ModulesReachEachOther(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithClusterSecret(newSecret(t)), testcluster.WithModules("peertest"))
	leader := c.Leader()
	f := c.Followers()[0]
	cl := peertestOf(t, f).host.Cluster()
	ctx := context.Background()

	servers := cl.Servers()
	if len(servers) != 3 {
		t.Fatalf("servers %+v", servers)
	}
	for _, s := range servers {
		if !s.Voter || !s.Alive || s.ClusterAddr == "" || s.Leader != (s.Name == leader.Name) || s.Local != (s.Name == f.Name) {
			t.Fatalf("server %+v (leader %s, local %s)", s, leader.Name, f.Name)
		}
	}
	if l, ok := cl.Leader(); !ok || l.Name != leader.Name {
		t.Fatalf("leader %+v, %v; want %s", l, ok, leader.Name)
	}

	other := c.Followers()[1]
	got, err := cl.Call(ctx, other.Name, "whoami", []byte("hi"))
	if err != nil || string(got) != fmt.Sprintf("%s answers %s: hi", other.Name, f.Name) {
		t.Fatalf("call: %q, %v", got, err)
	}
	got, err = cl.CallLeader(ctx, "whoami", []byte("boss"))
	if err != nil || !strings.HasPrefix(string(got), leader.Name+" answers") {
		t.Fatalf("call the leader: %q, %v", got, err)
	}
	if _, err := cl.Call(ctx, other.Name, "refuse", nil); !errors.Is(err, errPeertest) {
		t.Fatalf("a handler's error: got %v, want its code", err)
	}

	conn, err := cl.OpenStream(ctx, other.Name, "upper")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "stream me\n")
	line, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || line != fmt.Sprintf("%s/upper from %s: STREAM ME\n", other.Name, f.Name) {
		t.Fatalf("stream: %q, %v", line, err)
	}

	// The leader-only apply fails fast on a follower and works on the
	// leader; every node sees the leader's term in the command.
	if _, err := peertestOf(t, f).host.Raft().ApplyOnLeader(ctx, 1, nil); !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("ApplyOnLeader on a follower: %v", err)
	}
	if _, err := peertestOf(t, leader).host.Raft().ApplyOnLeader(ctx, 1, nil); err != nil {
		t.Fatalf("ApplyOnLeader on the leader: %v", err)
	}
	term := leader.Agent().Raft().Stats().Term
	for _, n := range c.Nodes() {
		testcluster.Eventually(t, 10*time.Second, func() error {
			p := peertestOf(t, n)
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.terms) != 1 || p.terms[0] != term {
				return fmt.Errorf("%s saw terms %v, want [%d]", n.Name, p.terms, term)
			}
			return nil
		})
	}

	// A node that is down: the call is not delivered. A call that races
	// the kill on the open connection may be sent and lose its answer
	// (outcome unknown, which is honest); once the connection is known
	// broken, calls fail before they leave.
	c.Kill(other.Index)
	testcluster.Eventually(t, 10*time.Second, func() error {
		ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cl.Call(ctx2, other.Name, "whoami", nil)
		switch {
		case err == nil:
			t.Fatalf("a call to a node that is down succeeded")
		case errors.Is(err, modules.ErrNotDelivered):
			return nil
		case !errors.Is(err, modules.ErrOutcomeUnknown):
			t.Fatalf("a call to a node that is down: %v, want not delivered or outcome unknown", err)
		}
		return fmt.Errorf("still outcome unknown: %v", err)
	})
}

// TestAutopilot_LeavesOutAMemberWithOtherRaftModules: a node that does
// not run every raft module of the cluster would skip commands and
// diverge; autopilot never adds it, and the API says why.
func TestAutopilot_LeavesOutAMemberWithOtherRaftModules(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log", "peertest"))
	odd := c.AddNodeWith(func(cfg *agent.Config) { cfg.Modules = []string{"log"} })
	members := c.Nodes()[:3]
	window := 10 * time.Second
	if testing.Short() {
		window = 3 * time.Second
	}
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		cfg, err := c.LeaderOf(members...).Agent().Raft().Configuration()
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Servers) != 3 {
			t.Fatalf("the member with other raft modules was added: %v", cfg.Servers)
		}
	}
	ms, err := clientOf(t, c.Node(0)).Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		want := ""
		if m.Name == odd.Name {
			want = "it does not run peertest"
		}
		if m.Problem != want {
			t.Fatalf("member %s: problem %q, want %q", m.Name, m.Problem, want)
		}
	}
	c.Stop(odd.Index)
}
