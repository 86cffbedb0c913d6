FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY sdk/plugboard/go.mod sdk/plugboard/go.sum ./sdk/plugboard/
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /plugboard ./cmd/plugboard

FROM gcr.io/distroless/static
COPY --from=build /plugboard /plugboard
ENV PLUGBOARD_HTTP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/plugboard", "serve"]
