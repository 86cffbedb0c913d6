package plugboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// meter is a stand-in for the usage-records route with the API's rules:
// a record per idempotency key, 201 the first time, 200 and the kept
// record for the same content again, 409 for other content; newest first
// in pages of limit with a Sentry-style Link header.
type meter struct {
	mu      sync.Mutex
	records []map[string]any // oldest first
	bodies  []string
}

func (m *meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	const path = "/api/0/installations/b23eb701-895a-480e-8501-d1a4f15441f8/usage-records/"
	if r.URL.Path != path {
		problem(w, r, 404, "not_found", "The installation does not exist.", nil, nil)
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != clientID || secret != clientSecret {
		problem(w, r, 401, "not_authenticated", "Send app credentials.", nil, nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet {
		start := 0
		fmt.Sscan(r.URL.Query().Get("cursor"), &start)
		var page []map[string]any
		for i := len(m.records) - 1 - start; i >= 0 && len(page) < 2; i-- {
			page = append(page, m.records[i])
		}
		next := start + len(page)
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="previous"; results="false"; cursor="", <%s?cursor=%d>; rel="next"; results="%t"; cursor="%d"`,
			path, path, next, next < len(m.records), next))
		json.NewEncoder(w).Encode(page)
		return
	}
	var in struct {
		Quantity       int64  `json:"quantity"`
		IdempotencyKey string `json:"idempotencyKey"`
		Timestamp      string `json:"timestamp"`
	}
	raw, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || r.Header.Get("Content-Type") != "application/json" {
		problem(w, r, 400, "invalid_input", "Bad body.", nil, nil)
		return
	}
	m.bodies = append(m.bodies, strings.TrimSpace(string(raw)))
	ts := in.Timestamp
	if ts == "" {
		ts = "2026-11-05T14:00:00Z"
	}
	for _, rec := range m.records {
		if rec["idempotencyKey"] == in.IdempotencyKey {
			if rec["quantity"] != in.Quantity || (in.Timestamp != "" && rec["timestamp"] != in.Timestamp) {
				problem(w, r, 409, "idempotency_key_reused", "Another record has that key.", nil, nil)
				return
			}
			json.NewEncoder(w).Encode(rec)
			return
		}
	}
	rec := map[string]any{"id": fmt.Sprint(len(m.records) + 1), "installation": "b23eb701-895a-480e-8501-d1a4f15441f8", "planId": "7",
		"quantity": in.Quantity, "timestamp": ts, "idempotencyKey": in.IdempotencyKey, "dateCreated": "2026-11-05T14:00:01Z"}
	m.records = append(m.records, rec)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(rec)
}

// The app reports usage with an idempotency key: a retry is the same
// record, marked Replayed; other content under the key is the API's 409;
// the records come back newest first over every page.
func TestReportUsage(t *testing.T) {
	m := &meter{}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	c, err := plugboard.NewClient(srv.URL, plugboard.WithClientCredentials(clientID, clientSecret))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const uuid = "b23eb701-895a-480e-8501-d1a4f15441f8"
	at := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	first, err := c.ReportUsage(ctx, uuid, plugboard.Usage{Quantity: 120, IdempotencyKey: "job-8812", Timestamp: at})
	if err != nil || first.Replayed || first.ID != "1" || first.Quantity != 120 || first.Installation != uuid ||
		!first.Timestamp.Equal(at.Truncate(time.Microsecond)) || first.PlanID != "7" {
		t.Fatalf("first %+v %v", first, err)
	}
	again, err := c.ReportUsage(ctx, uuid, plugboard.Usage{Quantity: 120, IdempotencyKey: "job-8812", Timestamp: at})
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Fatalf("retry %+v %v", again, err)
	}
	_, err = c.ReportUsage(ctx, uuid, plugboard.Usage{Quantity: 7, IdempotencyKey: "job-8812"})
	var perr *plugboard.APIError
	if !errors.As(err, &perr) || perr.Status != 409 || perr.Code != "idempotency_key_reused" {
		t.Fatalf("other content: %v", err)
	}
	for i := range 3 {
		if _, err := c.ReportUsage(ctx, uuid, plugboard.Usage{Quantity: int64(i), IdempotencyKey: fmt.Sprint("job-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The timestamp goes in UTC, to the microsecond; zero sends none.
	want := []string{
		`{"idempotencyKey":"job-8812","quantity":120,"timestamp":"2026-11-03T09:00:00.123456Z"}`,
		`{"idempotencyKey":"job-8812","quantity":120,"timestamp":"2026-11-03T09:00:00.123456Z"}`,
		`{"idempotencyKey":"job-8812","quantity":7}`,
	}
	if got := strings.Join(m.bodies[:3], "\n"); got != strings.Join(want, "\n") {
		t.Errorf("bodies\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	p, err := c.ListUsageRecords(ctx, uuid, "", 0)
	if err != nil || len(p.Items) != 2 || p.Items[0].IdempotencyKey != "job-2" || !p.HasNext {
		t.Fatalf("first page %+v %v", p, err)
	}
	var keys []string
	for r, err := range c.AllUsageRecords(ctx, uuid) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.IdempotencyKey)
	}
	if strings.Join(keys, " ") != "job-2 job-1 job-0 job-8812" {
		t.Errorf("all records %v", keys)
	}
	if _, err := c.ReportUsage(ctx, "someone-elses", plugboard.Usage{Quantity: 1, IdempotencyKey: "x"}); !errors.As(err, &perr) || perr.Status != 404 {
		t.Errorf("another installation: %v", err)
	}
}
