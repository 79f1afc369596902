package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// The raft log stores shoal can run on (its --raft-log-store).
var shoalStores = []string{"wal", "bolt"}

// shoalStoreRun is one shoal cluster of the log scenario, on one raft log
// store ("" for shoal's default), and its contender's parts.
type shoalStoreRun struct {
	store   string
	name    string // the contender's name: shoal, or shoal(<store>)
	cluster *shoalCluster
	per     []*shoalNode // the node each client talks to
}

// parseStores parses -shoal-stores: known stores, each at most once; an
// empty list means one cluster on shoal's default store.
func parseStores(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return []string{""}, nil
	}
	var stores []string
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		switch {
		case !slices.Contains(shoalStores, s):
			return nil, fmt.Errorf("-shoal-stores: unknown store %q (want %s)", s, strings.Join(shoalStores, " or "))
		case slices.Contains(stores, s):
			return nil, fmt.Errorf("-shoal-stores: %s given twice", s)
		}
		stores = append(stores, s)
	}
	return stores, nil
}

// startShoalStores starts one 3-node shoal cluster per store, side by
// side; each agent gets --raft-log-store, and the cluster's data
// directories and logs are labelled with the store.
func startShoalStores(e *env, bin string, stores []string) ([]*shoalStoreRun, error) {
	var runs []*shoalStoreRun
	for _, store := range stores {
		r := &shoalStoreRun{store: store, name: "shoal"}
		label := "shoal"
		var extra []string
		if store != "" {
			r.name = "shoal(" + store + ")"
			label += "-" + store
			extra = []string{"--raft-log-store", store}
		}
		c, err := startShoalCluster(e, bin, label, clusterSize, clusterSize, extra...)
		if err != nil {
			return nil, err
		}
		r.cluster = c
		runs = append(runs, r)
	}
	return runs, nil
}

// describeStores says which clusters run on which store, for the report.
func describeStores(runs []*shoalStoreRun) string {
	var parts []string
	for _, r := range runs {
		store := r.store
		if store == "" {
			store = "the default store"
		}
		parts = append(parts, fmt.Sprintf("%s = 3 agents with %s", r.name, store))
	}
	return strings.Join(parts, "; ")
}

// printStoreRatios compares every shoal contender after the first with the
// first one: throughput, p99, and the per-op costs of the cpu table.
func printStoreRatios(out io.Writer, cs []*contender, st map[string]stats) {
	if len(cs) < 2 {
		return
	}
	base := cs[0]
	sb := st[base.name]
	for _, k := range cs[1:] {
		sk := st[k.name]
		if sb.ok == 0 || sk.ok == 0 || sb.p99 == 0 {
			fmt.Fprintf(out, "ratio %s/%s: undefined (a store completed no operation)\n", k.name, base.name)
			continue
		}
		perOp := func(u cpuUse, ops int, f func(cpuUse) float64) float64 { return f(u) / float64(ops) }
		ratio := func(f func(cpuUse) float64) string {
			b := perOp(base.cpu, sb.ok, f)
			if b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f×", perOp(k.cpu, sk.ok, f)/b)
		}
		syncs := "-"
		if base.syncs.err == nil && k.syncs.err == nil && base.syncs.ops > 0 && k.syncs.ops > 0 {
			b := float64(base.syncs.total("")) / float64(base.syncs.ops)
			if b > 0 {
				syncs = fmt.Sprintf("%.2f×", float64(k.syncs.total(""))/float64(k.syncs.ops)/b)
			}
		}
		fmt.Fprintf(out, "ratio %s/%s: throughput %.2f×, p99 %.2f×, server CPU/op %s, disk writes/op %s, fsyncs/op %s\n",
			k.name, base.name, sk.opsPerSec/sb.opsPerSec, float64(sk.p99)/float64(sb.p99),
			ratio(func(u cpuUse) float64 { return float64(u.servers) }),
			ratio(func(u cpuUse) float64 { return float64(u.written) }), syncs)
	}
}
