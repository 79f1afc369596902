package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The two peers of the files scenario: a raw TCP copy (the physical limit
// of loopback and the page cache: one sender streams every file to each
// receiver, sendfile on the sending side, no checksums, no fsync) and an
// rsync daemon serving the same tree to two concurrent pulls.

// rawCopy streams the files of tree (under src) to len(dsts) receivers
// over loopback TCP concurrently and returns the time from the first dial
// until every receiver has written its last file (closed, not fsynced).
func rawCopy(ctx context.Context, src string, tree []treeFile, dsts []string, fsync bool) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("raw copy: listen: %w", err)
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(dsts))
	wg.Go(func() { // the sender: one goroutine per accepted receiver
		var sg sync.WaitGroup
		defer sg.Wait()
		for range dsts {
			conn, err := ln.Accept()
			if err != nil {
				errs <- fmt.Errorf("raw copy: accept: %w", err)
				return
			}
			sg.Go(func() {
				defer conn.Close()
				if err := rawSend(conn.(*net.TCPConn), src, tree); err != nil {
					errs <- fmt.Errorf("raw copy: send: %w", err)
				}
			})
		}
	})
	start := time.Now()
	for _, dst := range dsts {
		wg.Go(func() {
			if err := rawReceive(ctx, ln.Addr().String(), dst, fsync); err != nil {
				errs <- fmt.Errorf("raw copy: receive into %s: %w", dst, err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return took, nil
}

// rawSend writes, per file, a uint16 path length, the path, a uint64 size
// and the content (io.Copy from the file: sendfile).
func rawSend(conn *net.TCPConn, src string, tree []treeFile) error {
	hdr := make([]byte, 0, 2+1024+8)
	for _, f := range tree {
		hdr = binary.BigEndian.AppendUint16(hdr[:0], uint16(len(f.path)))
		hdr = append(hdr, f.path...)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(f.size))
		if _, err := conn.Write(hdr); err != nil {
			return err
		}
		in, err := os.Open(filepath.Join(src, filepath.FromSlash(f.path)))
		if err != nil {
			return err
		}
		n, err := io.Copy(conn, in)
		_ = in.Close()
		if err != nil {
			return err
		}
		if n != f.size {
			return fmt.Errorf("%s: sent %d bytes, want %d", f.path, n, f.size)
		}
	}
	return conn.CloseWrite()
}

// rawReceive reads what rawSend writes until EOF and writes the files
// under dst, fsyncing each one if fsync is set.
func rawReceive(ctx context.Context, addr, dst string, fsync bool) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Unbuffered: io.CopyN from the connection to the file splices.
	r := conn
	var lenBuf [8]byte
	for {
		if _, err := io.ReadFull(r, lenBuf[:2]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		name := make([]byte, binary.BigEndian.Uint16(lenBuf[:2]))
		if _, err := io.ReadFull(r, name); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
			return err
		}
		size := int64(binary.BigEndian.Uint64(lenBuf[:]))
		p := filepath.Join(dst, filepath.FromSlash(string(name)))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, r, size)
		if err == nil && fsync {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// rsyncDaemon is an rsync daemon on 127.0.0.1 serving one directory as
// the module "tree".
type rsyncDaemon struct {
	bin  string
	addr string // 127.0.0.1:port
	proc *proc
}

// startRsyncDaemon starts `rsync --daemon --no-detach` on a loopback port
// serving src read-only, running as the current user, and waits until it
// accepts connections.
func startRsyncDaemon(ctx context.Context, e *env, bin, src string) (*rsyncDaemon, error) {
	addr, err := e.port()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir := e.path("rsyncd")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`use chroot = no
uid = %d
gid = %d
pid file = %s
lock file = %s
max connections = 8
[tree]
path = %s
read only = yes
`, os.Getuid(), os.Getgid(), filepath.Join(dir, "rsyncd.pid"), filepath.Join(dir, "rsyncd.lock"), src)
	confPath := filepath.Join(dir, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o640); err != nil {
		return nil, err
	}
	p, err := e.start("rsyncd", bin, "--daemon", "--no-detach", "--config="+confPath,
		"--address=127.0.0.1", "--port="+port, "--log-file="+filepath.Join(dir, "rsyncd.log"))
	if err != nil {
		return nil, err
	}
	err = pollReady(ctx, 10*time.Second, "rsync daemon not listening", []*proc{p}, func(ctx context.Context) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return nil, err
	}
	return &rsyncDaemon{bin: bin, addr: addr, proc: p}, nil
}

// rsyncReceived matches the bytes a pull received, in --stats output.
var rsyncReceived = regexp.MustCompile(`Total bytes received: ([0-9,.]+)`)

// pull runs `rsync -a --stats rsync://addr/tree/ dst/` (with --fsync if
// fsync is set) for every dst concurrently and returns the time until the
// last one exited and the bytes they received over the wire (summed).
func (d *rsyncDaemon) pull(ctx context.Context, dsts []string, fsync bool) (time.Duration, int64, error) {
	args := []string{"-a", "--stats"}
	if fsync {
		args = append(args, "--fsync")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	var firstErr error
	for _, dst := range dsts {
		if err := os.MkdirAll(dst, 0o750); err != nil {
			return 0, 0, err
		}
	}
	start := time.Now()
	for _, dst := range dsts {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, d.bin, append(args, "rsync://"+d.addr+"/tree/", dst+"/")...)
			out, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("rsync into %s: %w\n%s", dst, err, strings.TrimSpace(string(out)))
				}
				return
			}
			if m := rsyncReceived.FindSubmatch(out); m != nil {
				n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(string(m[1])), 10, 64)
				total += n
			}
		})
	}
	wg.Wait()
	return time.Since(start), total, firstErr
}
