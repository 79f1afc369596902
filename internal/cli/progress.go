package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressInterval is how often a progress line is redrawn at most.
const progressInterval = 200 * time.Millisecond

// terminal is implemented by writers that know whether they are a
// terminal; tests use it to stand in for one.
type terminal interface {
	IsTerminal() bool
}

// isTerminal reports whether w is a terminal: a character device (a file
// descriptor check that needs no terminal library), or a writer that says
// it is one.
func isTerminal(w io.Writer) bool {
	switch t := w.(type) {
	case terminal:
		return t.IsTerminal()
	case *os.File:
		fi, err := t.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	default:
		return false
	}
}

// progress shows how far a long operation is on stderr, as one line
// redrawn in place at most every progressInterval, when stderr is a
// terminal; otherwise it prints nothing, so scripts and logs stay clean.
// Its methods are safe for concurrent use (an upload's body is read on the
// HTTP transport's goroutine).
type progress struct {
	w     io.Writer // nil: silent
	label string
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time // when the line was last drawn
	width int       // length of the line on screen, to blank it
}

// progress returns the progress line of an operation named label ("put
// big.iso"), silent unless c's stderr is a terminal.
func (c *cmdline) progress(label string) *progress {
	return newProgress(c.stderr, label)
}

// newProgress returns the progress line of an operation named label,
// drawn on w if w is a terminal.
func newProgress(w io.Writer, label string) *progress {
	p := &progress{label: label, now: time.Now}
	if isTerminal(w) {
		p.w = w
	}
	p.start = p.now()
	return p
}

// show draws text as the progress line, unless the last draw is more
// recent than progressInterval and force is false.
func (p *progress) show(text string, force bool) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !force && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	line := p.label + ": " + text
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
}

// status shows a free-form state ("waiting: no leader elected"), with the
// time elapsed since the operation started.
func (p *progress) status(text string) {
	if p == nil {
		return
	}
	p.show(fmt.Sprintf("%s (%s)", text, humanDuration(p.now().Sub(p.start).Truncate(time.Second))), false)
}

// bytes shows how many bytes of total (-1: unknown) are done, with the
// rate so far.
func (p *progress) bytes(done, total int64) {
	if p == nil || p.w == nil {
		return
	}
	elapsed := p.now().Sub(p.start)
	rate := ""
	if elapsed > 0 {
		rate = ", " + formatBytes(int64(float64(done)/elapsed.Seconds())) + "/s"
	}
	if total >= 0 {
		pct := 100.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		p.show(fmt.Sprintf("%s of %s (%.0f%%)%s", formatBytes(done), formatBytes(total), pct, rate), done == total)
		return
	}
	p.show(formatBytes(done)+rate, false)
}

// done blanks the progress line, if one was drawn, so the command's own
// output starts on a clean line.
func (p *progress) done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// reader returns r counting what is read from it into the progress line;
// total is r's size, -1 if unknown.
func (p *progress) reader(r io.Reader, total int64) io.Reader {
	if p == nil || p.w == nil {
		return r
	}
	return &progressReader{r: r, p: p, total: total}
}

type progressReader struct {
	r     io.Reader
	p     *progress
	total int64
	mu    sync.Mutex
	n     int64
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.mu.Lock()
	pr.n += int64(n)
	done := pr.n
	pr.mu.Unlock()
	pr.p.bytes(done, pr.total)
	return n, err
}

// writer returns w counting what is written to it into the progress line.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil || p.w == nil {
		return w
	}
	return &progressWriter{w: w, p: p}
}

type progressWriter struct {
	w io.Writer
	p *progress
	n int64
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.n += int64(n)
	pw.p.bytes(pw.n, -1)
	return n, err
}
