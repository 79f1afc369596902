# shoal: build, image, tests. Every target runs from the repository root.
#
#   make build   the static binary in bin/shoal
#   make image   bin/shoal, then the image $(IMAGE) (shoal:dev) from deploy/docker/Dockerfile
#   make test    the unit and in-process cluster tests (what CI runs)
#   make e2e     the docker compose fault-injection suite (needs a Docker engine)
#   make fuzz    every fuzz target for FUZZTIME each (default 10s); the seed
#                corpora in testdata/fuzz run with the tests anyway

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= shoal:dev
UID      ?= 65532
BIN      := bin/shoal
# The image's build context: the binary and an empty data directory, nothing
# else (the repository is never sent to the engine).
IMAGE_CTX := bin/image

LDFLAGS := -s -w -X shoal/internal/cli.Version=$(VERSION)

FUZZTIME ?= 10s

.PHONY: build image test e2e fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

image: build
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/data
	cp $(BIN) $(IMAGE_CTX)/shoal
	docker build --build-arg UID=$(UID) --label org.opencontainers.image.version=$(VERSION) \
		-f deploy/docker/Dockerfile -t $(IMAGE) $(IMAGE_CTX)

test:
	$(GO) test -race -short -timeout 20m ./...

e2e:
	$(GO) test -tags e2e -timeout 15m -count=1 -v ./e2e/...

# Each Fuzz function of each package, one after the other (go test -fuzz
# takes one target at a time). A failure stops the run and leaves the
# failing input under the package's testdata/fuzz.
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for fn in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
			echo "== $$dir $$fn"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

clean:
	rm -rf bin
