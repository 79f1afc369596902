package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. utime and stime are fields 14, 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read cpu time of %d: malformed /proc stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu time of %d: malformed /proc stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read cpu time of %d: malformed /proc stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procWriteBytes returns the bytes process pid caused to be sent to the
// storage layer so far (write_bytes of /proc/pid/io: page-cache writeback
// and direct writes, so it shows write amplification that write sizes do
// not).
func procWriteBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, fmt.Errorf("read io of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read io of %d: %w", pid, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("read io of %d: no write_bytes", pid)
}

// selfCPU returns the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns the busy and total CPU time of the whole machine,
// summed over all CPUs, from /proc/stat (idle and iowait count as idle).
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	var idle, all uint64
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest times are already counted in user time
			break
		}
		all += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	toDur := func(t uint64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return toDur(all - idle), toDur(all)
}

// cpuMeter measures the CPU used during a phase by a set of processes, by
// this program and by the whole machine, and what the processes wrote to
// storage.
type cpuMeter struct {
	pids          []int
	servers, self time.Duration
	busy, total   time.Duration
	written       int64
	err           error
}

func startCPU(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, self: selfCPU()}
	m.busy, m.total = machineCPU()
	m.servers, m.written, m.err = sumCPU(pids)
	return m
}

// cpuUse is the CPU time used during a phase.
type cpuUse struct {
	servers time.Duration // by the system's server processes
	client  time.Duration // by the load generator (this program)
	busy    time.Duration // by the whole machine
	total   time.Duration // machine CPU time available (wall time × CPUs)
	written int64         // bytes the server processes sent to storage
	err     error
}

func (u *cpuUse) add(o cpuUse) {
	u.servers += o.servers
	u.client += o.client
	u.busy += o.busy
	u.total += o.total
	u.written += o.written
	if u.err == nil {
		u.err = o.err
	}
}

func (m *cpuMeter) stop() cpuUse {
	servers, written, err := sumCPU(m.pids)
	if m.err != nil {
		err = m.err
	}
	busy, total := machineCPU()
	return cpuUse{servers: servers - m.servers, client: selfCPU() - m.self,
		busy: busy - m.busy, total: total - m.total, written: written - m.written, err: err}
}

// sumCPU returns the CPU time and storage writes of processes pids.
func sumCPU(pids []int) (cpu time.Duration, written int64, err error) {
	for _, pid := range pids {
		d, err := procCPU(pid)
		if err != nil {
			return 0, 0, err
		}
		w, err := procWriteBytes(pid)
		if err != nil {
			return 0, 0, err
		}
		cpu += d
		written += w
	}
	return cpu, written, nil
}

// fsyncLatency measures the median time of writing 4 KiB at the end of a
// file in dir and fdatasync'ing it, as a log append does: the floor under
// any durable commit on this disk. It stops after n syncs or one second.
func fsyncLatency(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []time.Duration
	deadline := time.Now().Add(time.Second)
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		lat = append(lat, time.Since(t0))
		if time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}
