package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A node that left the cluster for good (shoal leave) must not come back
// by itself with its old data: a container restart policy would restart
// it, it would rejoin gossip, and autopilot would make it a voter again.
// So a leave leaves a marker in the data directory, and a node that finds
// one refuses to start unless told to rejoin.

// leftMarker is the file a leave writes in the data directory.
const leftMarker = "left"

// ErrLeft is wrapped by the error a node that left returns at start.
var ErrLeft = errors.New("this node left its cluster")

// checkLeft refuses to start on the data of a node that left, unless
// rejoin is set, in which case the marker is removed.
func checkLeft(dataDir string, rejoin bool, logf func(msg string, args ...any)) error {
	path := filepath.Join(dataDir, leftMarker)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the leave marker: %w", err)
	}
	if !rejoin {
		return fmt.Errorf("%w (%s): its data must not rejoin by itself; wipe %s to join as a new node, or start it with --rejoin to bring it back with its data",
			ErrLeft, string(b), dataDir)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the leave marker: %w", err)
	}
	logf("rejoining: this node had left its cluster", "marker", string(b))
	return nil
}

// markLeft records in the data directory that this node left, fsynced.
func markLeft(dataDir string) error {
	path := filepath.Join(dataDir, leftMarker)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write the leave marker: %w", err)
	}
	if _, err := fmt.Fprintf(f, "left with shoal leave at %s", time.Now().UTC().Format(time.RFC3339)); err != nil {
		f.Close()
		return fmt.Errorf("write the leave marker: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write the leave marker: %w", err)
	}
	return f.Close()
}
