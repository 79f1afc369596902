package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"shoal/client"
	"shoal/consensus"
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "snapshot", "Back up and restore every Raft module's state (logs, locks, objects, files' metadata)\n"+
		"and kv's keys (see docs/operations.md)", []subcommand{
		{"save", "write a backup of the cluster's state to FILE", runSnapshotSave},
		{"inspect", "check a backup file and print its header", runSnapshotInspect},
		{"restore", "replace the cluster's state with a backup's, through Raft", runSnapshotRestore},
	}, args, stdout, stderr)
}

// snapshotTimeout bounds saving and restoring by default: a backup of a
// large log takes a while.
const snapshotTimeout = 30 * time.Minute

func runSnapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("snapshot save", "FILE", "Write a backup of every Raft module's state, as the node holds it after a read\n"+
		"barrier, to FILE (written beside it and renamed once complete and checked).", snapshotTimeout, stdout, stderr)
	out := c.outputFlag("lines")
	return c.run(ctx, args, exactlyOne("file"), func(ctx context.Context, cl *client.Client, pos []string) int {
		path := pos[0]
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
		if err != nil {
			return c.fail(err)
		}
		defer os.Remove(tmp.Name())
		p := c.progress("snapshot save")
		n, err := cl.SaveSnapshot(ctx, &progressWriter{w: tmp, p: p})
		p.done()
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return c.fail(err)
		}
		info, err := inspectFile(tmp.Name())
		if err != nil {
			return c.fail(fmt.Errorf("the backup received does not check: %w", err))
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return c.fail(err)
		}
		info.Size = n
		return printSnapshotInfo(c.cmdline, out.json(), "saved "+path, info)
	})
}

func runSnapshotInspect(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("snapshot inspect", "FILE", "Check a backup file's checksum and print its header.", stdout, stderr)
	out := c.outputFlag("lines")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if msg := exactlyOne("file")(pos); msg != "" {
		return c.usageError("%s", msg)
	}
	info, err := inspectFile(pos[0])
	if err != nil {
		return c.fail(err)
	}
	return printSnapshotInfo(c, out.json(), pos[0], info)
}

func runSnapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("snapshot restore", "FILE", "Replace the state of every Raft module, on every node, with the backup in FILE.\n"+
		"The file is checked first; the leader installs it through Raft. Writes made\n"+
		"since the backup are lost: stop writers first.", snapshotTimeout, stdout, stderr)
	out := c.outputFlag("lines")
	return c.run(ctx, args, exactlyOne("file"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if _, err := inspectFile(pos[0]); err != nil {
			return c.fail(err)
		}
		info, err := cl.RestoreSnapshot(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		return printSnapshotInfo(c.cmdline, out.json(), "restored "+pos[0], info)
	})
}

// inspectFile checks a backup file.
func inspectFile(path string) (client.SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return client.SnapshotInfo{}, err
	}
	defer f.Close()
	info, err := consensus.InspectBackup(f)
	if err != nil {
		return client.SnapshotInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	b, _ := json.Marshal(info)
	var out client.SnapshotInfo
	_ = json.Unmarshal(b, &out)
	if fi, err := f.Stat(); err == nil {
		out.Size = fi.Size() // the file's, header and checksum included
	}
	return out, nil
}

func printSnapshotInfo(c *cmdline, asJSON bool, what string, info client.SnapshotInfo) int {
	if asJSON {
		b, err := json.Marshal(info)
		if err != nil {
			return c.fail(err)
		}
		return c.printJSON(b)
	}
	mods := make([]string, 0, len(info.Modules))
	for name := range info.Modules {
		mods = append(mods, name)
	}
	sort.Strings(mods)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\n", what)
	fmt.Fprintf(tw, "node\t%s\n", info.Node)
	fmt.Fprintf(tw, "raft index\t%d (term %d)\n", info.Index, info.Term)
	fmt.Fprintf(tw, "created\t%s\n", info.Created.Format(time.RFC3339))
	fmt.Fprintf(tw, "version\t%s\n", info.Version)
	fmt.Fprintf(tw, "modules\t%s\n", strings.Join(mods, ", "))
	if len(info.Sections) > 0 {
		fmt.Fprintf(tw, "sections\t%s\n", strings.Join(info.Sections, ", "))
	}
	if info.Size > 0 {
		fmt.Fprintf(tw, "size\t%s\n", formatBytes(info.Size))
	}
	if info.SHA256 != "" {
		fmt.Fprintf(tw, "sha256\t%s\n", info.SHA256)
	}
	_ = tw.Flush()
	return exitOK
}
