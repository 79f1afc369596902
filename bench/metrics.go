package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// promSnapshot holds the samples of one Prometheus text page, keyed by
// series as the page spells it (`name{label="v",...}`).
type promSnapshot map[string]float64

// metricsClient fetches /metrics pages. It has no proxy: every address it
// is given is a loopback address the benchmark started a node on.
var metricsClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}

// getPage fetches http://addr+path with metricsClient and returns the
// body of a 200 answer; the caller closes it.
func getPage(ctx context.Context, addr, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", addr, path, err)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", addr, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("get %s%s: status %s", addr, path, resp.Status)
	}
	return resp.Body, nil
}

// scrape fetches and parses http://addr/metrics.
func scrape(ctx context.Context, addr string) (promSnapshot, error) {
	body, err := getPage(ctx, addr, "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer body.Close()
	snap := promSnapshot{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		snap[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return snap, nil
}

// histDelta is how many observations a histogram series gained between
// two snapshots and their total duration.
type histDelta struct {
	count float64
	sum   float64 // seconds
}

func (d histDelta) mean() time.Duration {
	if d.count == 0 {
		return 0
	}
	return time.Duration(d.sum / d.count * float64(time.Second))
}

func (d *histDelta) add(o histDelta) { d.count += o.count; d.sum += o.sum }

// delta returns what the histogram name{labels} gained from before to
// after (labels as the page spells them, in label-name order).
func delta(before, after promSnapshot, name, labels string) histDelta {
	key := func(suffix string) string { return name + suffix + "{" + labels + "}" }
	return histDelta{
		count: after[key("_count")] - before[key("_count")],
		sum:   after[key("_sum")] - before[key("_sum")],
	}
}
