package plugboard

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// Metered usage: an app whose plan is per_unit reports the units each
// installation used; Plugboard bills (units − included) × unit price,
// capped, when the month closes. A record names itself with an
// idempotency key, per installation: sending it again (a retry after a
// timeout, a job run twice) answers the record kept the first time and
// counts once, so retrying ReportUsage with the same key is always safe.

// UsageRecord is a quantity of units reported for an installation.
type UsageRecord struct {
	ID             string    `json:"id"`
	Installation   string    `json:"installation"` // its uuid
	PlanID         string    `json:"planId"`       // the per_unit plan it was on at Timestamp
	Quantity       int64     `json:"quantity"`
	Timestamp      time.Time `json:"timestamp"` // when the units were used
	IdempotencyKey string    `json:"idempotencyKey"`
	DateCreated    time.Time `json:"dateCreated"`
	// Replayed is true when the key was reported before: the record is
	// the one kept then (the API answered 200, not 201).
	Replayed bool `json:"-"`
}

// Usage is what ReportUsage sends.
type Usage struct {
	Quantity int64 // units used, 0 or more
	// IdempotencyKey names the record (1 to 200 characters); the same key
	// with another Quantity or Timestamp is the API's 409
	// idempotency_key_reused.
	IdempotencyKey string
	// Timestamp is when the units were used; zero for now. It must fall in
	// the open billing period (a calendar month, UTC), or in the one
	// before during the hour after it ended; a closed period is 409
	// billing_period_closed.
	Timestamp time.Time
}

// ReportUsage reports usage for an installation of the app, with the
// app's own credentials or the installation's token. An installation not
// on a per_unit plan at that time is 409 not_metered; another app's, 404.
func (c *Client) ReportUsage(ctx context.Context, uuid string, u Usage) (*UsageRecord, error) {
	body := map[string]any{"quantity": u.Quantity, "idempotencyKey": u.IdempotencyKey}
	if !u.Timestamp.IsZero() {
		body["timestamp"] = apiTime(u.Timestamp)
	}
	var out UsageRecord
	res, err := c.do(ctx, request{method: http.MethodPost, path: "/installations/" + esc(uuid) + "/usage-records/", body: body}, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = res.StatusCode == http.StatusOK
	return &out, nil
}

// ListUsageRecords lists an installation's usage records, newest first,
// one page (cursor "" for the first; limit 0 for the API's default).
func (c *Client) ListUsageRecords(ctx context.Context, uuid, cursor string, limit int) (*Page[UsageRecord], error) {
	q := url.Values{}
	setPage(q, cursor, limit)
	return list[UsageRecord](ctx, c, "/installations/"+esc(uuid)+"/usage-records/", q)
}

// AllUsageRecords iterates over every usage record of an installation,
// newest first. It stops at the first error, which it yields.
func (c *Client) AllUsageRecords(ctx context.Context, uuid string) iter.Seq2[UsageRecord, error] {
	return all("", func(cursor string) (*Page[UsageRecord], error) {
		return c.ListUsageRecords(ctx, uuid, cursor, 0)
	})
}
