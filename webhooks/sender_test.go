package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// target is an endpoint for the sender alone.
func target(t *testing.T, url string) (cachedEndpoint, string) {
	t.Helper()
	secret := NewSecret()
	s, err := NewSigner([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	return cachedEndpoint{ep: &Endpoint{AppID: 1, URL: url, Secrets: []string{secret}}, signer: s}, secret
}

func aClaim() claimed {
	inst := "2b0e4a8c-6a43-4b8e-b1f4-4f1f0b0c9d11"
	return claimed{ID: 7, UUID: "9a5f1a43-0f5c-4a59-8b43-8d2b4a0f6c01", Attempts: 2, MaxAttempts: 8, EventType: "issue.created",
		InstallationUUID: &inst, Data: json.RawMessage(`{"title":"fire"}`), EventCreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
}

func TestSenderSignsLikeStandardWebhooks(t *testing.T) {
	srv := newSink(t, http.StatusNoContent)
	ep, secret := target(t, srv.URL)
	r := NewSender(Options{AllowPrivate: true, Version: "test"}, nil).send(context.Background(), ep, aClaim())
	if !r.ok || r.attempt.ErrorClass != "" || *r.attempt.ResponseStatus != 204 || r.attempt.Number != 3 {
		t.Fatalf("result %+v", r.attempt)
	}
	hits := srv.received()
	if len(hits) != 1 {
		t.Fatalf("%d requests", len(hits))
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(hits[0].Body, hits[0].Header); err != nil {
		t.Errorf("verification: %v", err)
	}
	for k, want := range map[string]string{"Webhook-Id": aClaim().UUID, "Plugboard-Event": "issue.created", "Plugboard-Delivery-Attempt": "3",
		"Plugboard-Installation": *aClaim().InstallationUUID, "User-Agent": "Plugboard-Webhooks/test", "Content-Type": "application/json"} {
		if got := hits[0].Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// Tampered body or another secret: refused.
	if err := wh.Verify(append(hits[0].Body, ' '), hits[0].Header); err == nil {
		t.Error("a tampered body verified")
	}
	other, _ := standardwebhooks.NewWebhook(NewSecret())
	if err := other.Verify(hits[0].Body, hits[0].Header); err == nil {
		t.Error("another secret verified")
	}
	// While a secret rotates, both sign.
	s2, _ := NewSigner([]string{NewSecret(), secret})
	sig := s2.Sign("id", 1, []byte("x"))
	if strings.Count(sig, "v1,") != 2 {
		t.Errorf("rotating signature %q", sig)
	}
	if !strings.HasPrefix(NewSecret(), SecretPrefix) {
		t.Error("NewSecret without the prefix")
	}
}

func TestSignedGet(t *testing.T) {
	srv := newSink(t, http.StatusOK)
	_, secret := target(t, srv.URL)
	signer, _ := NewSigner([]string{secret})
	s := NewSender(Options{AllowPrivate: true}, nil)
	body, err := s.SignedGet(context.Background(), signer, srv.URL+"/sync", 5)
	if err != nil || string(body) != `{"ok"` {
		t.Fatalf("body %q, %v", body, err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(nil, srv.received()[0].Header); err != nil {
		t.Errorf("verification of a body-less request: %v", err)
	}
	if _, err := s.SignedGet(context.Background(), nil, srv.URL, 5); err == nil {
		t.Error("no signer: no error")
	}
	if _, err := NewSender(Options{}, nil).SignedGet(context.Background(), signer, srv.URL, 5); err == nil || !strings.HasPrefix(err.Error(), ClassBlocked) {
		t.Errorf("loopback without AllowPrivate: %v", err)
	}
}

func TestAddressGuard(t *testing.T) {
	guarded, open := NewSender(Options{}, nil), NewSender(Options{AllowPrivate: true}, nil)
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1:80", true},
		{"[::1]:443", true},
		{"10.1.2.3:443", true},
		{"192.168.0.10:443", true},
		{"172.16.5.4:443", true},
		{"169.254.169.254:80", true}, // cloud metadata
		{"100.64.0.1:443", true},     // carrier-grade NAT
		{"0.0.0.0:443", true},
		{"224.0.0.1:443", true},
		{"not-an-address", true},
		{"93.184.216.34:443", false},
		{"[2606:4700::1111]:443", false},
	} {
		err := guarded.checkAddress("tcp", tc.addr, nil)
		if (err != nil) != tc.blocked || err != nil && !errors.Is(err, errBlocked) {
			t.Errorf("%s: %v, blocked %v", tc.addr, err, tc.blocked)
		}
		if err := open.checkAddress("tcp", tc.addr, nil); err != nil {
			t.Errorf("%s with AllowPrivate: %v", tc.addr, err)
		}
	}
	srv := newSink(t, http.StatusOK)
	ep, _ := target(t, srv.URL)
	if r := guarded.send(context.Background(), ep, aClaim()); r.ok || r.attempt.ErrorClass != ClassBlocked || len(srv.received()) != 0 {
		t.Errorf("send to loopback: %+v", r.attempt)
	}
}

func TestClassifyFailures(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for handlers
	failing := newSink(t, http.StatusInternalServerError)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()
	s := NewSender(Options{AllowPrivate: true, Timeout: 200 * time.Millisecond}, nil)
	for _, tc := range []struct {
		name, url, class string
	}{
		{"timeout", slow.URL, ClassTimeout},
		{"connection refused", closed, ClassConnection},
		{"dns", "http://nowhere.invalid/hook", ClassDNS},
		{"http status", failing.URL, ClassHTTPStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, _ := target(t, tc.url)
			r := s.send(context.Background(), ep, aClaim())
			if r.ok || r.attempt.ErrorClass != tc.class || r.attempt.ErrorMessage == "" {
				t.Errorf("class %q (%s), want %q", r.attempt.ErrorClass, r.attempt.ErrorMessage, tc.class)
			}
		})
	}
	for _, tc := range []struct {
		err   error
		class string
	}{
		{fmt.Errorf("dial: %w", errBlocked), ClassBlocked},
		{&net.DNSError{Err: "no such host", Name: "x"}, ClassDNS},
		{context.DeadlineExceeded, ClassTimeout},
		{errors.New("connection reset by peer"), ClassConnection},
	} {
		if got := classify(tc.err); got != tc.class {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.class)
		}
	}
	// Stopped by the caller: deferred, not an attempt.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ep, _ := target(t, slow.URL)
	if r := s.send(ctx, ep, aClaim()); r.deferred <= 0 {
		t.Errorf("cancelled send: %+v", r)
	}
}

func TestGoneAndRetryAfterFromTheEndpoint(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		gone       bool
		retryIn    time.Duration
	}{
		{http.StatusGone, "", true, 0},
		{http.StatusTooManyRequests, "7", false, 7 * time.Second},
		{http.StatusServiceUnavailable, "", false, 0},
		{http.StatusBadRequest, "7", false, 0}, // Retry-After only on 429 and 503
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			w.WriteHeader(tc.status)
		}))
		ep, _ := target(t, srv.URL)
		r := NewSender(Options{AllowPrivate: true}, nil).send(context.Background(), ep, aClaim())
		srv.Close()
		if r.ok || r.gone != tc.gone || r.retryIn != tc.retryIn {
			t.Errorf("%d: gone %v retry %s", tc.status, r.gone, r.retryIn)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{" 2 ", 2 * time.Second},
		{"0", time.Second},    // at least a second
		{"86400", time.Hour},  // at most an hour
		{"soon", time.Second}, // unreadable: the floor
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), time.Second},
	} {
		if got := retryAfter(tc.header, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestEnvelopeShape(t *testing.T) {
	inst := "2b0e4a8c-6a43-4b8e-b1f4-4f1f0b0c9d11"
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name string
		inst *string
		data json.RawMessage
		want string
	}{
		{"installation", &inst, json.RawMessage(`{"a":1}`),
			`{"id":"d1","type":"issue.created","timestamp":"2026-01-02T02:04:05.000006Z","installation":{"uuid":"` + inst + `"},"data":{"a":1}}`},
		{"no installation, no data", nil, nil,
			`{"id":"d1","type":"issue.created","timestamp":"2026-01-02T02:04:05.000006Z","installation":null,"data":{}}`},
	} {
		got := Envelope("d1", "issue.created", at, tc.inst, tc.data)
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not JSON", tc.name)
		}
	}
}

func TestRetrySchedule(t *testing.T) {
	schedule := []time.Duration{0, 10 * time.Second, time.Minute}
	for _, tc := range []struct {
		next int
		base time.Duration
	}{{1, 0}, {2, 10 * time.Second}, {3, time.Minute}, {4, time.Minute}, {20, time.Minute}} {
		for range 50 {
			got := retryDelay(schedule, tc.next)
			lo, hi := time.Duration(float64(tc.base)*0.8), time.Duration(float64(tc.base)*1.2)
			if got < lo || got > hi {
				t.Fatalf("attempt %d: %s outside [%s, %s]", tc.next, got, lo, hi)
			}
		}
	}
	if got := withDefaultsSchedule(); len(got) != len(DefaultSchedule) {
		t.Errorf("default schedule %v", got)
	}
}

func withDefaultsSchedule() []time.Duration { return Options{}.withDefaults().RetrySchedule }
