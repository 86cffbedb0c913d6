# The plugboard binary on a distroless base. Build with the version:
#   docker build --build-arg VERSION=$(git describe --tags --always) .
# (make image does this). A test builds the binary with this file's own
# go build line (cmd/plugboard/docker_test.go).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY sdk/plugboard/go.mod sdk/plugboard/go.sum ./sdk/plugboard/
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -ldflags "-s -w -X github.com/plugboard/plugboard/cmd/platform.Version=${VERSION}" -o /plugboard ./cmd/plugboard

FROM gcr.io/distroless/static:nonroot
COPY --from=build /plugboard /plugboard
ENV PLUGBOARD_HTTP_ADDR=:8080
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/plugboard"]
CMD ["serve"]
