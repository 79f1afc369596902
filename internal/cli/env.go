package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// envPrefix is the prefix of every environment variable shoal reads.
const envPrefix = "SHOAL"

// BindEnv fills every flag of fs that was not given on the command line
// from the environment variable named prefix, an underscore, and the flag
// name upper-cased with dashes turned into underscores: with prefix
// "SHOAL", --raft-addr falls back to SHOAL_RAFT_ADDR. A flag given on the
// command line always wins; unset and empty variables are ignored.
//
// Call it after fs.Parse. It returns every value the flags rejected,
// naming the variable, so a bad environment fails startup clearly.
func BindEnv(fs *flag.FlagSet, prefix string) error {
	return bindEnv(fs, prefix, nil)
}

// bindEnv is BindEnv restricted to the flags named in only (all when nil).
func bindEnv(fs *flag.FlagSet, prefix string, only []string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || (only != nil && !slices.Contains(only, f.Name)) {
			return
		}
		key := EnvName(prefix, f.Name)
		v, ok := os.LookupEnv(key)
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s=%q for flag --%s: %w", key, v, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// EnvName returns the environment variable BindEnv reads for the flag
// called name: EnvName("SHOAL", "raft-addr") is "SHOAL_RAFT_ADDR".
func EnvName(prefix, name string) string {
	key := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	prefix = strings.TrimRight(prefix, "_")
	if prefix == "" {
		return key
	}
	return prefix + "_" + key
}
