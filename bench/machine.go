package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where a benchmark ran, for the report.
type machine struct {
	cpus      int
	cpuModel  string
	kernel    string
	goVersion string // of the toolchain that built shoal and this program
	storage   string // file system holding the data directories
	fsync     string // median 4 KiB write+fdatasync there
	date      time.Time
}

// describeMachine reads the machine's description; unknown parts are
// reported as "unknown", never as an error.
func describeMachine(ctx context.Context, dataDir string) machine {
	m := machine{cpus: runtime.NumCPU(), cpuModel: "unknown", kernel: "unknown",
		goVersion: runtime.Version(), storage: "unknown", date: time.Now().UTC()}
	if out, err := command(ctx, "", "go", "env", "GOVERSION"); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	m.storage = mountOf(dataDir)
	m.fsync = "unknown"
	if d, err := fsyncLatency(dataDir, 200); err == nil {
		m.fsync = ms(d)
	}
	return m
}

// mountOf describes the mount holding path ("ext4 /dev/vda1 on /"): the
// longest mount point of /proc/mounts that contains it.
func mountOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	best, desc := "", "unknown"
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		dev, mnt, fs := f[0], f[1], f[2]
		if (abs == mnt || strings.HasPrefix(abs, strings.TrimSuffix(mnt, "/")+"/")) && len(mnt) > len(best) {
			best, desc = mnt, fmt.Sprintf("%s %s on %s", fs, dev, mnt)
		}
	}
	return desc
}

func (m machine) print(w io.Writer, versions [][2]string) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, Linux %s, %s/%s\n", m.cpus, m.cpuModel, m.kernel, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "data:    %s (4 KiB write+fdatasync: median %s)\n", m.storage, m.fsync)
	fmt.Fprintf(w, "go:      %s\n", m.goVersion)
	for _, v := range versions {
		fmt.Fprintf(w, "%-8s %s\n", v[0]+":", v[1])
	}
	fmt.Fprintf(w, "date:    %s\n", m.date.Format(time.RFC3339))
}
