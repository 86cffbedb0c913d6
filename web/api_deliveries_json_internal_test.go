package web

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/plugboard/plugboard/webhooks"
)

// jsonStd is what encoding/json writes for v without HTML escaping, as
// jsonSerializer sends it.
func jsonStd(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// The hand-written strings are encoding/json's, byte for byte: escapes,
// invalid UTF-8, U+2028/2029, HTML characters left as they are.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
		"caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff\xfe utf-8 \xe2\x82", "\xed\xa0\x80 surrogate", "end\\"}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "\"", "\\", "\n", "\x01", "\u2028", "\xff", "é", "<", "\U0001F600", "\xe2"}
	for range 2000 {
		var b []byte
		for range rng.IntN(12) {
			b = append(b, alphabet[rng.IntN(len(alphabet))]...)
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := appendJSONString(nil, s), jsonStd(t, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// A page of deliveries is the bytes encoding/json writes for its
// []deliveryJSON, whichever fields are null.
func TestAppendDeliveriesMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 19, 4, 5, 123456000, time.UTC)
	later := at.Add(1500 * time.Millisecond)
	local := at.In(time.FixedZone("X", 3600))
	code, inst, key := 503, "0b7f9a3e-8c1d-4d2e-9f00-1a2b3c4d5e6f", "issue-\"9\"/<é>"
	full := webhooks.Delivery{ID: 7, UUID: "d0000000-0000-0000-0000-000000000007", EventType: "issue.created", Status: webhooks.DeliveryPending,
		InstallationUUID: &inst, Attempts: 2, MaxAttempts: 8, NextAttemptAt: &later, LastAttemptAt: &at, LastStatusCode: &code,
		LastErrorClass: "http_status", OrderingKey: &key, CreatedAt: at, CompletedAt: &later}
	done := full
	done.Status, done.CompletedAt, done.CreatedAt = webhooks.DeliverySucceeded, &local, local
	for _, tc := range []struct {
		name  string
		items []webhooks.Delivery
	}{
		{"none", []webhooks.Delivery{}},
		{"bare", []webhooks.Delivery{{ID: 1, UUID: "u", EventType: "t\"<>", Status: "failed", CreatedAt: at}}},
		{"every field", []webhooks.Delivery{full}},
		{"several, one not pending", []webhooks.Delivery{full, done, {ID: 3, CreatedAt: time.Time{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv := make([]deliveryJSON, len(tc.items))
			for i, d := range tc.items {
				conv[i] = toDeliveryJSON(d)
			}
			if got, want := appendDeliveries(nil, tc.items), jsonStd(t, conv); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// The health figures are the bytes encoding/json writes for statsJSON:
// floats in either notation, error classes in key order, empty and nil
// maps and slices.
func TestStatsJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 19, 0, 0, 0, time.UTC)
	floats := []float64{0, 1, 0.5, 2.0 / 3, 123.456, 1e-7, 2.5e-9, 1e21, 1e20, 99999.999, 0.000001, -3.25}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() float64 { return floats[rng.IntN(len(floats))] }
	for _, tc := range []struct {
		name string
		st   statsJSON
	}{
		{"no buckets", statsJSON{Since: at, Until: at.Add(time.Hour), Resolution: "1h0m0s"}},
		{"empty buckets", statsJSON{Since: at, Until: at, Resolution: "1m0s", Buckets: []bucketJSON{}}},
		{"buckets", statsJSON{Since: at, Until: at.Add(2 * time.Hour), Resolution: "1h0m0s", Attempts: 10, SuccessRate: 0.9, Buckets: []bucketJSON{
			{Start: at, Attempts: 3, Succeeded: 2, Failed: 1, SuccessRate: 2.0 / 3, LatencyP50: 12.5, LatencyP95: 40.1, LatencyP99: 41.99,
				ErrorClasses: map[string]int{"timeout": 1, "http_status": 4, "a\"b": 2, "<tls>": 7}},
			{Start: at.Add(time.Hour), ErrorClasses: map[string]int{}},
			{Start: at.Add(2 * time.Hour)},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := tc.st.appendJSON(nil), jsonStd(t, tc.st); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	for range 500 {
		st := statsJSON{Since: at, Until: at, Resolution: "1h0m0s", SuccessRate: pick(), Buckets: []bucketJSON{
			{Start: at, SuccessRate: pick(), LatencyP50: pick(), LatencyP95: pick() * 1000, LatencyP99: pick() / 7}}}
		if got, want := st.appendJSON(nil), jsonStd(t, st); !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
}
