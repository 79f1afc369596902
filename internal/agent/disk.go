package agent

import (
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/membership"
)

// The disk alarm, as etcd's NOSPACE alarm. A node whose data directory has
// less than --min-free-disk free raises it and announces it in gossip;
// while any alive member has it raised, every node refuses client writes
// with 507 disk_full (a write accepted anywhere lands on every server's
// disk), and reads and streams go on. Refusing early, before the disk is
// actually full, keeps Raft from failing its own writes and churning
// through elections. The alarm clears by itself once space is freed: no
// restart.

// diskCheckEvery is how often a node looks at its free space.
const diskCheckEvery = time.Second

// DiskFreeFunc returns the bytes free for the agent in the directory
// holding path (statfs's available blocks).
type DiskFreeFunc func(path string) (uint64, error)

// statfsFree is the production DiskFreeFunc.
func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskAlarm watches this node's free space.
type diskAlarm struct {
	free     DiskFreeFunc
	min      uint64
	raised   atomic.Bool
	lastFree atomic.Uint64
	// cluster is the members with the alarm raised, this node included,
	// as of the last check: the write gate reads it on every write, so it
	// is derived once a second here, not from the member list per request.
	cluster atomic.Pointer[[]string]
}

// watchDisk checks the free space every diskCheckEvery until the agent
// stops, and announces each change of the alarm in gossip.
func (a *Agent) watchDisk() {
	defer a.wg.Done()
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		a.checkDisk()
		a.refreshAlarms()
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) checkDisk() {
	d := a.disk
	free, err := d.free(a.cfg.DataDir)
	if err != nil {
		a.logger.Warn("cannot read the data directory's free space", "err", err)
		return
	}
	d.lastFree.Store(free)
	low := free < d.min
	if low == d.raised.Load() {
		return
	}
	d.raised.Store(low)
	if low {
		a.logger.Error("disk alarm raised: the data directory is nearly full; the cluster refuses writes until space is freed",
			"free_bytes", free, "min_free_bytes", d.min, "dir", a.cfg.DataDir)
	} else {
		a.logger.Info("disk alarm cleared: writes resume", "free_bytes", free)
	}
	if err := a.members.UpdateMeta(func(m *membership.Meta) { m.DiskFull = low }); err != nil {
		a.logger.Warn("announce the disk alarm", "err", err)
		d.raised.Store(!low) // try again at the next check
	}
}

// refreshAlarms recomputes the members whose disk alarm is raised.
func (a *Agent) refreshAlarms() {
	var out []string
	if a.disk.raised.Load() {
		out = append(out, a.cfg.NodeName)
	}
	if g := a.gossip.Load(); g != nil {
		for _, m := range g.Members() {
			if m.Name != a.cfg.NodeName && m.Up() && m.Meta.DiskFull {
				out = append(out, m.Name)
			}
		}
	}
	sort.Strings(out)
	a.disk.cluster.Store(&out)
}

// DiskAlarms lists the members whose disk alarm is raised, this node
// included, sorted (empty when none), as of the last check (at most
// diskCheckEvery old). It is cheap: the API's write gate calls it on
// every write.
func (a *Agent) DiskAlarms() []string {
	if a.disk == nil {
		return nil
	}
	if p := a.disk.cluster.Load(); p != nil {
		return *p
	}
	return nil
}

// registerDiskMetrics exports the alarm and the free space.
func (a *Agent) registerDiskMetrics() error {
	d := a.disk
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_disk_alarm",
			Help: "1 while this node's data directory has less than --min-free-disk free."},
			func() float64 {
				if d.raised.Load() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_disk_free_bytes",
			Help: "Bytes free in the data directory's file system, as last checked."},
			func() float64 { return float64(d.lastFree.Load()) }),
	} {
		if err := a.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
