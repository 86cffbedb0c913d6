package plugboard_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("partner secret A, thirty-two b.."))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("partner secret B, rotated in...."))
	secretC = "whsec_" + base64.StdEncoding.EncodeToString([]byte("some other app's secret........."))
)

const body = `{"id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","type":"issue.created","timestamp":"2026-01-02T15:04:05.123456Z","installation":{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"},"data":{"title":"Database on fire"}}`

const msgID = "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c"

// refSign signs with the Standard Webhooks reference library.
func refSign(t testing.TB, secret, id string, at time.Time, payload string) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, at, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func headers(id string, at time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

// refClass maps the reference library's errors to the SDK's sentinels.
func refClass(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, standardwebhooks.ErrRequiredHeaders):
		return plugboard.ErrMissingHeaders
	case errors.Is(err, standardwebhooks.ErrInvalidHeaders):
		return plugboard.ErrInvalidTimestamp
	case errors.Is(err, standardwebhooks.ErrMessageTooOld):
		return plugboard.ErrTimestampTooOld
	case errors.Is(err, standardwebhooks.ErrMessageTooNew):
		return plugboard.ErrTimestampTooNew
	case errors.Is(err, standardwebhooks.ErrNoMatchingSignature):
		return plugboard.ErrInvalidSignature
	}
	return err
}

// TestVerifyAgreesWithReference runs the same requests through the SDK and
// the Standard Webhooks reference library: they must accept and refuse the
// same ones, for the same reason.
func TestVerifyAgreesWithReference(t *testing.T) {
	now := time.Now()
	sigA := refSign(t, secretA, msgID, now, body)
	sigB := refSign(t, secretB, msgID, now, body)
	cases := []struct {
		name    string
		secret  string // the receiver's
		header  http.Header
		body    string
		wantErr error
	}{
		{"valid", secretA, headers(msgID, now, sigA), body, nil},
		{"valid, secret without prefix", strings.TrimPrefix(secretA, "whsec_"), headers(msgID, now, sigA), body, nil},
		{"valid four minutes old", secretA, headers(msgID, now.Add(-4*time.Minute), refSign(t, secretA, msgID, now.Add(-4*time.Minute), body)), body, nil},
		{"tampered body", secretA, headers(msgID, now, sigA), strings.Replace(body, "on fire", "fine", 1), plugboard.ErrInvalidSignature},
		{"body with a trailing newline", secretA, headers(msgID, now, sigA), body + "\n", plugboard.ErrInvalidSignature},
		{"tampered id", secretA, headers("0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1d", now, sigA), body, plugboard.ErrInvalidSignature},
		{"tampered timestamp", secretA, headers(msgID, now.Add(-time.Second), sigA), body, plugboard.ErrInvalidSignature},
		{"expired", secretA, headers(msgID, now.Add(-10*time.Minute), refSign(t, secretA, msgID, now.Add(-10*time.Minute), body)), body, plugboard.ErrTimestampTooOld},
		{"future", secretA, headers(msgID, now.Add(10*time.Minute), refSign(t, secretA, msgID, now.Add(10*time.Minute), body)), body, plugboard.ErrTimestampTooNew},
		{"wrong secret", secretC, headers(msgID, now, sigA), body, plugboard.ErrInvalidSignature},
		{"rotated, old secret", secretA, headers(msgID, now, sigA+" "+sigB), body, nil},
		{"rotated, new secret", secretB, headers(msgID, now, sigA+" "+sigB), body, nil},
		{"rotated, new signature first", secretA, headers(msgID, now, sigB+" "+sigA), body, nil},
		{"rotated, neither secret", secretC, headers(msgID, now, sigA+" "+sigB), body, plugboard.ErrInvalidSignature},
		{"unknown version", secretA, headers(msgID, now, "v2,"+strings.TrimPrefix(sigA, "v1,")), body, plugboard.ErrInvalidSignature},
		{"unknown version then v1", secretA, headers(msgID, now, "v1a,abc "+sigA), body, nil},
		{"signature without version", secretA, headers(msgID, now, strings.TrimPrefix(sigA, "v1,")), body, plugboard.ErrInvalidSignature},
		{"missing id", secretA, headers("", now, sigA), body, plugboard.ErrMissingHeaders},
		{"missing signature", secretA, headers(msgID, now, ""), body, plugboard.ErrMissingHeaders},
		{"missing timestamp", secretA, func() http.Header { h := headers(msgID, now, sigA); h.Del("webhook-timestamp"); return h }(), body, plugboard.ErrMissingHeaders},
		{"no headers", secretA, http.Header{}, body, plugboard.ErrMissingHeaders},
		{"timestamp not a number", secretA, func() http.Header { h := headers(msgID, now, sigA); h.Set("webhook-timestamp", "yesterday"); return h }(), body, plugboard.ErrInvalidTimestamp},
		{"timestamp in milliseconds", secretA, func() http.Header {
			h := headers(msgID, now, sigA)
			h.Set("webhook-timestamp", strconv.FormatInt(now.UnixMilli(), 10))
			return h
		}(), body, plugboard.ErrTimestampTooNew},
		{"empty body", secretA, headers(msgID, now, refSign(t, secretA, msgID, now, "")), "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhook(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			refErr := wh.Verify([]byte(tc.body), tc.header)
			sdkErr := plugboard.Verify(tc.secret, tc.header, []byte(tc.body))
			if (refErr == nil) != (sdkErr == nil) {
				t.Fatalf("disagree: reference %v, SDK %v", refErr, sdkErr)
			}
			if got := refClass(refErr); got != tc.wantErr {
				t.Errorf("reference: %v, want %v", refErr, tc.wantErr)
			}
			if !errors.Is(sdkErr, tc.wantErr) || (tc.wantErr == nil && sdkErr != nil) {
				t.Errorf("SDK: %v, want %v", sdkErr, tc.wantErr)
			}
		})
	}
}

func TestSignAgreesWithReference(t *testing.T) {
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(1767366245, 999), time.Now()} {
		for _, payload := range []string{"", body, "\x00\xff not JSON"} {
			got, err := plugboard.Sign(secretB, msgID, at, []byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if want := refSign(t, secretB, msgID, at, payload); got != want {
				t.Errorf("Sign(%v, %q) = %s, reference %s", at, payload, got, want)
			}
		}
	}
}

func TestVerifierRotationAndClock(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	sigB, _ := plugboard.Sign(secretB, msgID, at, []byte(body))
	v, err := plugboard.NewVerifier(secretA, secretB)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return at.Add(5 * time.Minute) }
	if err := v.Verify(headers(msgID, at, sigB), []byte(body)); err != nil {
		t.Errorf("second secret, exactly at the tolerance: %v", err)
	}
	v.Now = func() time.Time { return at.Add(5*time.Minute + time.Second) }
	if err := v.Verify(headers(msgID, at, sigB), []byte(body)); !errors.Is(err, plugboard.ErrTimestampTooOld) {
		t.Errorf("a second past the tolerance: %v", err)
	}
	v.Now = func() time.Time { return at.Add(-5*time.Minute - time.Second) }
	if err := v.Verify(headers(msgID, at, sigB), []byte(body)); !errors.Is(err, plugboard.ErrTimestampTooNew) {
		t.Errorf("a second before the tolerance: %v", err)
	}
	v.Tolerance = time.Hour
	if err := v.Verify(headers(msgID, at, sigB), []byte(body)); err != nil {
		t.Errorf("with an hour's tolerance: %v", err)
	}
	// Header maps built by hand with lower-case names still verify.
	raw := http.Header{"webhook-id": {msgID}, "webhook-timestamp": {strconv.FormatInt(at.Unix(), 10)}, "webhook-signature": {sigB}}
	if err := v.Verify(raw, []byte(body)); err != nil {
		t.Errorf("lower-case header map: %v", err)
	}
}

func TestBadSecrets(t *testing.T) {
	for _, s := range []string{"", "whsec_", "whsec_not base64!", "whsec_YWJj=="} {
		if _, err := plugboard.NewVerifier(s); !errors.Is(err, plugboard.ErrInvalidSecret) {
			t.Errorf("NewVerifier(%q) = %v", s, err)
		}
		if err := plugboard.Verify(s, headers(msgID, time.Now(), "v1,x"), nil); !errors.Is(err, plugboard.ErrInvalidSecret) {
			t.Errorf("Verify(%q) = %v", s, err)
		}
		if _, err := plugboard.Sign(s, msgID, time.Now(), nil); !errors.Is(err, plugboard.ErrInvalidSecret) {
			t.Errorf("Sign(%q) = %v", s, err)
		}
	}
	if _, err := plugboard.NewVerifier(); !errors.Is(err, plugboard.ErrInvalidSecret) {
		t.Errorf("no secret: %v", err)
	}
}

// FuzzVerify feeds arbitrary headers and bodies to Verify, which must never
// panic, and must never accept what the reference library refuses. Accepted
// bodies go on to ParseEvent and the Handler, which must not panic either.
func FuzzVerify(f *testing.F) {
	at := time.Unix(1767366245, 0)
	sig, _ := plugboard.Sign(secretA, msgID, at, []byte(body))
	sigB, _ := plugboard.Sign(secretB, msgID, at, []byte(body))
	ts := strconv.FormatInt(at.Unix(), 10)
	f.Add(msgID, ts, sig, []byte(body))
	f.Add(msgID, ts, sigB+" "+sig, []byte(body))
	f.Add(msgID, ts, sig, []byte(`{"id":"x","type":"y","timestamp":"2026-01-02T15:04:05Z","installation":null,"data":null}`))
	f.Add(msgID, ts, sig+" ", []byte(body))
	f.Add("", "", "", []byte(nil))
	f.Add("id", "-9223372036854775808", "v1,", []byte("{}"))
	f.Add("id", "9223372036854775807", "v1,,v1 v1,=", []byte("{"))
	f.Add("id", "+1767366245", "v1,abc,def", []byte(`{"id":1}`))
	f.Add("\x00", "0x10", ",,, ,", []byte("\xff\xfe"))
	v, err := plugboard.NewVerifier(secretA)
	if err != nil {
		f.Fatal(err)
	}
	v.Tolerance = 1 << 62 // timestamps are fuzzed too; compare signatures only
	ref, _ := standardwebhooks.NewWebhook(secretA)
	h := plugboard.Handler(secretA, func(ctx context.Context, ev *plugboard.Event) error {
		_, _ = ev.InstallationCreated()
		_, _ = ev.InstallationDeleted()
		_, _ = ev.InstallationUpdated()
		return nil
	}, plugboard.WithClock(func() time.Time { return at }))
	f.Fuzz(func(t *testing.T, id, ts, sig string, payload []byte) {
		hdr := http.Header{}
		hdr.Set("webhook-id", id)
		hdr.Set("webhook-timestamp", ts)
		hdr.Set("webhook-signature", sig)
		err := v.Verify(hdr, payload)
		if err == nil {
			if refErr := ref.VerifyIgnoringTimestamp(payload, hdr); refErr != nil {
				t.Fatalf("the SDK accepted what the reference refuses (%v): id %q ts %q sig %q", refErr, id, ts, sig)
			}
			_, _ = plugboard.ParseEvent(payload)
		}
		req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(string(payload)))
		req.Header = hdr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusBadRequest {
			t.Fatalf("handler answered %d", rec.Code)
		}
	})
}
