package plugboard_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// signedRequest is a webhook request as Plugboard sends it.
func signedRequest(t *testing.T, secret string, at time.Time, payload string) *http.Request {
	t.Helper()
	sig, err := plugboard.Sign(secret, msgID, at, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(payload))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Webhook-Id", msgID)
	r.Header.Set("Webhook-Timestamp", strconv.FormatInt(at.Unix(), 10))
	r.Header.Set("Webhook-Signature", sig)
	r.Header.Set("Plugboard-Event", "issue.created")
	r.Header.Set("Plugboard-Installation", "b23eb701-895a-480e-8501-d1a4f15441f8")
	r.Header.Set("Plugboard-Delivery-Attempt", "1")
	return r
}

func TestHandler(t *testing.T) {
	now := time.Now()
	var got []*plugboard.Event
	var fail error
	var logs bytes.Buffer
	h := plugboard.Handler(secretA, func(ctx context.Context, ev *plugboard.Event) error {
		if ctx == nil {
			t.Error("no context")
		}
		got = append(got, ev)
		return fail
	}, plugboard.WithSecrets(secretB), plugboard.WithMaxBodySize(4096), plugboard.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	serve := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	// A genuine webhook: 204, and fn sees the decoded envelope.
	if rec := serve(signedRequest(t, secretA, now, body)); rec.Code != http.StatusNoContent {
		t.Fatalf("genuine: %d %s", rec.Code, rec.Body)
	}
	if len(got) != 1 || got[0].ID != msgID || got[0].Type != "issue.created" || got[0].InstallationUUID() != "b23eb701-895a-480e-8501-d1a4f15441f8" ||
		!got[0].Timestamp.Equal(time.Date(2026, 1, 2, 15, 4, 5, 123456000, time.UTC)) || string(got[0].Data) != `{"title":"Database on fire"}` {
		t.Fatalf("event %+v", got)
	}
	var data struct{ Title string }
	if err := got[0].DecodeData(&data); err != nil || data.Title != "Database on fire" {
		t.Errorf("data %+v %v", data, err)
	}

	// Signed with the second secret (rotation): accepted.
	if rec := serve(signedRequest(t, secretB, now, body)); rec.Code != http.StatusNoContent {
		t.Errorf("second secret: %d %s", rec.Code, rec.Body)
	}

	refused := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"unknown secret", signedRequest(t, secretC, now, body), http.StatusUnauthorized},
		{"expired", signedRequest(t, secretA, now.Add(-time.Hour), body), http.StatusUnauthorized},
		{"tampered", func() *http.Request {
			r := signedRequest(t, secretA, now, body)
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(body, "fire", "ice!", 1)))
			return r
		}(), http.StatusUnauthorized},
		{"unsigned", httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body)), http.StatusUnauthorized},
		{"not an envelope", signedRequest(t, secretA, now, `{"hello":"world"}`), http.StatusBadRequest},
		{"not JSON", signedRequest(t, secretA, now, `<xml/>`), http.StatusBadRequest},
		{"too large", signedRequest(t, secretA, now, `{"id":"x","type":"y","data":{"pad":"`+strings.Repeat("a", 5000)+`"}}`), http.StatusRequestEntityTooLarge},
		{"GET", httptest.NewRequest(http.MethodGet, "/hooks", nil), http.StatusMethodNotAllowed},
	}
	for _, tc := range refused {
		rec := serve(tc.req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body)
		}
	}
	if len(got) != 2 {
		t.Errorf("fn called for refused requests: %d calls", len(got))
	}
	if !strings.Contains(logs.String(), "webhook refused") {
		t.Errorf("refusals not logged: %s", logs.String())
	}

	// fn fails: 500 so Plugboard retries, without the error's text.
	fail = errors.New("database password is hunter2")
	rec := serve(signedRequest(t, secretA, now, body))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("fn error: %d %q", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "hunter2") {
		t.Errorf("fn error not logged")
	}
}

func TestHandlerClockAndTolerance(t *testing.T) {
	sent := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	calls := 0
	fn := func(context.Context, *plugboard.Event) error { calls++; return nil }
	late := plugboard.Handler(secretA, fn, plugboard.WithClock(func() time.Time { return sent.Add(20 * time.Minute) }))
	rec := httptest.NewRecorder()
	late.ServeHTTP(rec, signedRequest(t, secretA, sent, body))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "too old") {
		t.Errorf("late: %d %s", rec.Code, rec.Body)
	}
	lenient := plugboard.Handler(secretA, fn, plugboard.WithClock(func() time.Time { return sent.Add(20 * time.Minute) }), plugboard.WithTolerance(30*time.Minute))
	rec = httptest.NewRecorder()
	lenient.ServeHTTP(rec, signedRequest(t, secretA, sent, body))
	if rec.Code != http.StatusNoContent || calls != 1 {
		t.Errorf("lenient: %d %s, %d calls", rec.Code, rec.Body, calls)
	}
}

func TestHandlerPanicsOnBadSecret(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("no panic")
		} else if err, ok := r.(error); !ok || !errors.Is(err, plugboard.ErrInvalidSecret) {
			t.Errorf("panic %v", r)
		}
	}()
	plugboard.Handler("whsec_???", func(context.Context, *plugboard.Event) error { return nil })
}
