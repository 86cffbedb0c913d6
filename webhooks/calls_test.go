package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// A call is signed like a webhook, may wait longer than a delivery may
// (its own deadline bounds it, not the delivery timeout), and goes through
// the guarded client: a private address is refused at connect time.
func TestSignedCalls(t *testing.T) {
	type seen struct {
		header http.Header
		body   []byte
	}
	requests := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		requests <- seen{r.Header.Clone(), b}
		if r.URL.Path == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"message":"ok"}`))
	}))
	defer srv.Close()
	secret := NewSecret()
	signer, err := NewSigner([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	call := SignedCall{Method: http.MethodPost, URL: srv.URL + "/provision", ID: "prov_1", Event: "installation.provision",
		Installation: "inst-1", IdempotencyKey: "inst-1", Body: []byte(`{"a":1}`), Timeout: 3 * time.Second}

	// A delivery timeout of 1 s does not cut a call allowed 3 s.
	open := NewSender(Options{AllowPrivate: true, Timeout: time.Second, Version: "test"}, nil)
	slow := call
	slow.URL = srv.URL + "/slow"
	if r := open.Call(context.Background(), signer, slow); r.Class != "" || r.Status != 201 || string(r.Body) != `{"message":"ok"}` {
		t.Fatalf("slow call %+v", r)
	}
	got := <-requests
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Errorf("the call does not verify with the Standard Webhooks library: %v", err)
	}
	for k, want := range map[string]string{"Idempotency-Key": "inst-1", "Plugboard-Event": "installation.provision",
		"Plugboard-Installation": "inst-1", "Webhook-Id": "prov_1", "Content-Type": "application/json"} {
		if got.header.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, got.header.Get(k), want)
		}
	}

	tests := []struct {
		name   string
		sender *Sender
		call   SignedCall
		class  string
	}{
		{"its own deadline", open, func() SignedCall { c := slow; c.Timeout = 200 * time.Millisecond; return c }(), ClassTimeout},
		{"a private address, at connect time", NewSender(Options{Version: "test"}, nil), call, ClassBlocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := tt.sender.Call(context.Background(), signer, tt.call); r.Class != tt.class || r.Status != 0 {
				t.Errorf("result %+v, want class %s", r, tt.class)
			}
		})
	}
}

func TestJoinURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://p.example/provision":       "https://p.example/provision/u1",
		"https://p.example/provision/":      "https://p.example/provision/u1",
		"https://p.example/provision?key=1": "https://p.example/provision/u1?key=1",
		"https://p.example":                 "https://p.example/u1",
	} {
		if got := JoinURL(in, "u1"); got != want {
			t.Errorf("JoinURL(%q) = %q, want %q", in, got, want)
		}
	}
}
