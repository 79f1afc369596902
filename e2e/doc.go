//go:build e2e

// Package e2e is shoal's end-to-end suite: black-box tests of the real
// image on a real docker compose cluster, with faults injected the way
// they happen in production.
//
// Run it with a Docker engine and docker-compose (v1) or docker compose
// (v2) on the machine:
//
//	go test -tags e2e -timeout 15m -count=1 ./e2e/...   (or: make e2e)
//
// The suite builds the static binary and the FROM-scratch image of
// deploy/docker/Dockerfile (tagged shoal:e2e-<run>), starts
// deploy/compose/docker-compose.yml under a unique project name with the
// HTTP APIs published on free ports of 127.0.0.1, and drives the cluster
// through the Go client and, for a node cut off from the network, through
// `docker exec <node> /shoal ...`. Faults are docker kill, docker network
// disconnect, docker pause and docker restart (the machines have no netem).
// Every operation of the clients is recorded with its invoke and return
// times and checked: the log and the semaphores with porcupine's
// linearizability checker, and the logs every node holds against what the
// clients were told.
//
// Everything is torn down at the end, also on failure: containers,
// network, volumes, and the image. On failure the docker logs of every
// container and porcupine's HTML visualisations are kept in a directory
// the test log names.
//
// Environment:
//
//	SHOAL_E2E_IMAGE      use this image instead of building one (it is not removed)
//	SHOAL_E2E_ARTIFACTS  keep logs and visualisations here instead of a temporary directory
//
// This package must never import the server side of shoal: it talks to the
// cluster only over HTTP (package client) and through docker.
package e2e
