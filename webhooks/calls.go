package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignedCall is a request to a partner that waits for its answer, such as
// the provisioning POST: signed like a webhook (webhook-id, -timestamp,
// -signature over "id.timestamp.body") and sent through the same guarded
// client as deliveries (no proxy, no redirects, no private addresses unless
// Options.AllowPrivate, checked on the address dialled).
type SignedCall struct {
	Method         string
	URL            string
	ID             string // webhook-id: the same for every repeat of one message
	Event          string // plugboard-event
	Installation   string // plugboard-installation
	IdempotencyKey string // Idempotency-Key, when set
	Body           []byte // JSON
	Timeout        time.Duration
	Limit          int64 // the most of the answer read; 64 KiB when 0
}

// CallResult is what the partner answered. Class is "" when it answered
// at all, even with a 5xx; else the error class (ClassTimeout,
// ClassConnection, ClassTLS, ClassDNS, ClassBlocked) and Err the reason.
type CallResult struct {
	Status   int
	Body     []byte
	Class    string
	Err      string
	Duration time.Duration
}

// Call sends c signed by signer and waits up to c.Timeout for the answer.
// The request's own deadline, not the delivery timeout, bounds it: a
// provisioning call may take longer than a webhook may.
func (s *Sender) Call(ctx context.Context, signer *Signer, c SignedCall) CallResult {
	start := time.Now()
	if signer == nil {
		return CallResult{Class: ClassSecret, Err: "no signing secret"}
	}
	if c.Timeout <= 0 {
		c.Timeout = s.opts.Timeout
	}
	if c.Limit <= 0 {
		c.Limit = 64 << 10
	}
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var body io.Reader
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(rctx, c.Method, c.URL, body)
	if err != nil {
		return CallResult{Class: ClassConnection, Err: trimErr(err)}
	}
	ts := start.Unix()
	req.Header.Set("User-Agent", "Plugboard-Webhooks/"+s.opts.Version)
	req.Header.Set("Accept", "application/json")
	if c.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Webhook-Id", c.ID)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Webhook-Signature", signer.Sign(c.ID, ts, c.Body))
	if c.Event != "" {
		req.Header.Set("Plugboard-Event", c.Event)
	}
	if c.Installation != "" {
		req.Header.Set("Plugboard-Installation", c.Installation)
	}
	if c.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.IdempotencyKey)
	}
	res, err := s.client.Do(req)
	if err != nil {
		class := classify(err)
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			class = ClassTimeout
		}
		return CallResult{Class: class, Err: trimErr(err), Duration: time.Since(start)}
	}
	defer res.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(res.Body, c.Limit))
	if err != nil {
		class := classify(err)
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			class = ClassTimeout
		}
		return CallResult{Status: res.StatusCode, Class: class, Err: "reading the answer: " + trimErr(err), Duration: time.Since(start)}
	}
	return CallResult{Status: res.StatusCode, Body: buf, Duration: time.Since(start)}
}

// JoinURL appends path segments to base's path: JoinURL("https://p.example/provision",
// uuid) is "https://p.example/provision/<uuid>", whatever trailing slash
// base has, its query kept.
func JoinURL(base string, segments ...string) string {
	i := strings.IndexAny(base, "?#")
	rest := ""
	if i >= 0 {
		base, rest = base[:i], base[i:]
	}
	base = strings.TrimRight(base, "/")
	for _, s := range segments {
		base += "/" + s
	}
	return base + rest
}
