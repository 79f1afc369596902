# shoal: build, image, tests. Every target runs from the repository root.
#
#   make build   the static binary in bin/shoal
#   make image   bin/shoal, then the image $(IMAGE) (shoal:dev) from deploy/docker/Dockerfile
#   make test    the unit and in-process cluster tests (what CI runs)
#   make e2e     the docker compose fault-injection suite (needs a Docker engine)

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= shoal:dev
UID      ?= 65532
BIN      := bin/shoal
# The image's build context: the binary and an empty data directory, nothing
# else (the repository is never sent to the engine).
IMAGE_CTX := bin/image

LDFLAGS := -s -w -X shoal/internal/cli.Version=$(VERSION)

.PHONY: build image test e2e clean

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

clean:
	rm -rf bin
