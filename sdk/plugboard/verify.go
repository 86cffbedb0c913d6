package plugboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook request. The first three are Standard Webhooks';
// the others are Plugboard's.
const (
	HeaderWebhookID        = "Webhook-Id"                 // the delivery's id, stable across retries
	HeaderWebhookTimestamp = "Webhook-Timestamp"          // unix seconds when this attempt was signed
	HeaderWebhookSignature = "Webhook-Signature"          // "v1,<base64>", several space-separated while a secret rotates
	HeaderEvent            = "Plugboard-Event"            // the event type, as in the envelope
	HeaderInstallation     = "Plugboard-Installation"     // the installation's uuid; absent for webhook.test
	HeaderDeliveryAttempt  = "Plugboard-Delivery-Attempt" // 1 for the first attempt, 2 for the first retry…
)

// SecretPrefix starts every webhook signing secret: "whsec_" then standard
// base64 of the key.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock, either way, before it is refused.
const DefaultTolerance = 5 * time.Minute

// Errors of webhook verification; compare with [errors.Is]. Every error
// [Verify] returns wraps exactly one of them.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("plugboard: missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrInvalidTimestamp: webhook-timestamp is not a whole number of unix seconds.
	ErrInvalidTimestamp = errors.New("plugboard: webhook-timestamp is not a unix time")
	// ErrTimestampTooOld: the webhook was signed longer ago than the tolerance (a replay, or a clock far behind).
	ErrTimestampTooOld = errors.New("plugboard: webhook timestamp too old")
	// ErrTimestampTooNew: the webhook claims to be signed further in the future than the tolerance.
	ErrTimestampTooNew = errors.New("plugboard: webhook timestamp too new")
	// ErrInvalidSignature: no v1 signature in webhook-signature matches the body under any secret.
	ErrInvalidSignature = errors.New("plugboard: no webhook signature matches")
	// ErrInvalidSecret: a signing secret is not "whsec_" followed by standard base64.
	ErrInvalidSecret = errors.New("plugboard: webhook secret is not whsec_<base64>")
)

// Verifier checks Standard Webhooks signatures with one or more secrets.
// Give it every secret that is live while one rotates: a request is genuine
// when any signature it carries matches under any secret.
//
// Set Tolerance and Now before the first call to Verify; a Verifier is then
// safe for concurrent use.
type Verifier struct {
	// Tolerance is how far the webhook-timestamp may be from Now, either
	// way; DefaultTolerance when zero or negative.
	Tolerance time.Duration
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time

	keys [][]byte
}

// NewVerifier returns a Verifier for the given whsec_ secrets (the prefix is
// optional). It fails with ErrInvalidSecret on a secret that does not
// decode, and when none is given.
func NewVerifier(secrets ...string) (*Verifier, error) {
	v := &Verifier{}
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%w (secret %d: %v)", ErrInvalidSecret, i+1, err)
		}
		v.keys = append(v.keys, key)
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("%w (no secret given)", ErrInvalidSecret)
	}
	return v, nil
}

func decodeSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix))
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errors.New("empty key")
	}
	return key, nil
}

// Verify checks a webhook request signed with secret: its headers (as
// received) and its raw body, byte for byte as read, before any JSON
// decoding. It returns nil for a genuine, fresh request and otherwise an
// error wrapping one of ErrMissingHeaders, ErrInvalidTimestamp,
// ErrTimestampTooOld, ErrTimestampTooNew, ErrInvalidSignature or
// ErrInvalidSecret. The timestamp tolerance is DefaultTolerance; use a
// [Verifier] to change it or to check several secrets.
func Verify(secret string, header http.Header, body []byte) error {
	v, err := NewVerifier(secret)
	if err != nil {
		return err
	}
	return v.Verify(header, body)
}

// Verify checks a webhook request's headers and raw body; see [Verify].
func (v *Verifier) Verify(header http.Header, body []byte) error {
	id := headerValue(header, HeaderWebhookID)
	ts := headerValue(header, HeaderWebhookTimestamp)
	sigs := headerValue(header, HeaderWebhookSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrInvalidTimestamp, truncate(ts, 40))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	at, t := time.Unix(sec, 0), now()
	if t.Sub(at) > tol {
		return fmt.Errorf("%w: signed at %s, %s ago", ErrTimestampTooOld, at.UTC().Format(time.RFC3339), t.Sub(at).Truncate(time.Second))
	}
	if at.After(t.Add(tol)) {
		return fmt.Errorf("%w: signed at %s, %s ahead", ErrTimestampTooNew, at.UTC().Format(time.RFC3339), at.Sub(t).Truncate(time.Second))
	}
	expected := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		expected[i] = signature(key, id, sec, body)
	}
	// Space-separated, exactly as the reference implementation splits them.
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		for _, want := range expected {
			if hmac.Equal([]byte(sig), want) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

// Sign returns a webhook-signature value, "v1,<base64>", for a message id,
// timestamp and body under a whsec_ secret: what Plugboard sends. It is for
// tests and tools that need to produce genuine webhooks.
func Sign(secret, msgID string, timestamp time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrInvalidSecret, err)
	}
	return "v1," + string(signature(key, msgID, timestamp.Unix(), body)), nil
}

// signature is the base64 HMAC-SHA256 of "id.timestamp.body".
func signature(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	sum := m.Sum(nil)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sum)))
	base64.StdEncoding.Encode(out, sum)
	return out
}

// headerValue reads a header by its canonical name, falling back to a
// case-insensitive search for maps built by hand with other spellings
// ("webhook-id" from a serverless event, say).
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
