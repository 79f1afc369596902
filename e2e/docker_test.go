//go:build e2e

package e2e

// This file runs docker and docker compose commands: bounded in time, with
// their output kept for the error message, and with an environment that no
// SHOAL_* or COMPOSE_* variable of the developer leaks into.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// cmdResult is the outcome of one command.
type cmdResult struct {
	args           []string
	stdout, stderr string
	code           int // -1: did not run or was killed at its deadline
}

func (r cmdResult) String() string {
	return fmt.Sprintf("%s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code,
		strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
}

// errCmd is returned for a command that ran and exited non-zero.
var errCmd = errors.New("command failed")

// run runs name with args, at most timeout, with env added to the cleaned
// environment. err is nil only for exit status 0; a non-zero exit wraps
// errCmd and carries the output.
func run(timeout time.Duration, env []string, name string, args ...string) (cmdResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cmdResult{args: append([]string{name}, args...), stdout: stdout.String(), stderr: stderr.String(), code: -1}
	if cmd.ProcessState != nil {
		res.code = cmd.ProcessState.ExitCode()
	}
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: no answer within %v", strings.Join(res.args, " "), timeout)
	case err != nil && res.code > 0:
		return res, fmt.Errorf("%w: %s", errCmd, res)
	case err != nil:
		return res, fmt.Errorf("%s: %w", strings.Join(res.args, " "), err)
	}
	return res, nil
}

// cleanEnv returns the process environment without SHOAL_*, COMPOSE_* and
// DOCKER_BUILDKIT (the Dockerfile is built by the classic builder, which
// needs no frontend image), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SHOAL_") || strings.HasPrefix(kv, "COMPOSE_") || strings.HasPrefix(kv, "DOCKER_BUILDKIT=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// docker runs a docker command with the default bound of 60 s.
func docker(args ...string) (cmdResult, error) {
	return run(60*time.Second, nil, "docker", args...)
}

// dockerAvailable reports whether a Docker engine answers.
func dockerAvailable() error {
	_, err := run(20*time.Second, nil, "docker", "info", "--format", "{{.ServerVersion}}")
	return err
}

// compose is how docker compose is invoked here: the v1 binary
// docker-compose, else the v2 plugin "docker compose".
type compose struct {
	bin  string
	pre  []string
	args []string // -p, --env-file and -f, in front of every command
	env  []string
}

// findCompose picks docker-compose (v1, what Debian ships) if it is on
// PATH, else docker compose (v2).
func findCompose() (compose, error) {
	if p, err := exec.LookPath("docker-compose"); err == nil {
		if _, err := run(20*time.Second, nil, p, "version"); err == nil {
			return compose{bin: p}, nil
		}
	}
	if _, err := run(20*time.Second, nil, "docker", "compose", "version"); err == nil {
		return compose{bin: "docker", pre: []string{"compose"}}, nil
	}
	return compose{}, errors.New("neither docker-compose nor docker compose is available")
}

// run runs a compose command on the project.
func (c compose) run(timeout time.Duration, args ...string) (cmdResult, error) {
	all := append(append(append([]string{}, c.pre...), c.args...), args...)
	return run(timeout, c.env, c.bin, all...)
}

func (c compose) String() string {
	return strings.Join(append(append([]string{c.bin}, c.pre...), c.args...), " ")
}
