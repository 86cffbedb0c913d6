package plugboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

const streamedJSON = `{"deliveryId":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","eventType":"webhook.test","attempt":1,` +
	`"headers":{"webhook-id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","content-type":"application/json"},"body":"{\"type\":\"webhook.test\"}",` +
	`"status":null,"errorClass":""}`

// streamServer answers the delivery stream of acme-alerts with body, as
// web/stream.go writes it, to the token pbu_good only.
func streamServer(t *testing.T, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/0/apps/acme-alerts/delivery-stream/" {
			problem(w, r, 404, "not_found", "The app does not exist.", nil, nil)
			return
		}
		if r.Header.Get("Authorization") != "Bearer pbu_good" {
			problem(w, r, 401, "invalid_token", "The token is not valid.", nil, nil)
			return
		}
		if r.Header.Get("Accept") != "text/event-stream" {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStreamDeliveries(t *testing.T) {
	delivery := "id: 0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c\nevent: delivery\ndata: " + streamedJSON + "\n\n"
	tests := []struct {
		name, app, token, body string
		want                   int // deliveries passed to each
		opened                 bool
		err                    func(error) bool
	}{
		{"closed by the platform", "acme-alerts", "pbu_good", ": listening\n\n" + delivery + ": ping\n\n" + delivery + "event: close\ndata: {}\n\n", 2, true,
			func(err error) bool { return errors.Is(err, plugboard.ErrStreamClosed) }},
		{"cut", "acme-alerts", "pbu_good", ": listening\n\n" + delivery, 1, true,
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"bad data skipped", "acme-alerts", "pbu_good", "event: delivery\ndata: {not json\n\n" + delivery, 1, true,
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"refused", "acme-alerts", "pbu_wrong", "", 0, false,
			func(err error) bool {
				var e *plugboard.APIError
				return errors.As(err, &e) && e.Status == 401 && e.Code == "invalid_token"
			}},
		{"no such app", "nope", "pbu_good", "", 0, false,
			func(err error) bool {
				var e *plugboard.APIError
				return errors.As(err, &e) && e.Status == 404
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := streamServer(t, tc.body)
			// A client timeout shorter than the stream must not cut it.
			c, err := plugboard.NewClient(srv.URL, plugboard.WithToken(tc.token), plugboard.WithHTTPClient(&http.Client{Timeout: time.Nanosecond}))
			if err != nil {
				t.Fatal(err)
			}
			opened := false
			var got []plugboard.StreamedDelivery
			err = c.StreamDeliveries(context.Background(), tc.app, func() { opened = true }, func(d plugboard.StreamedDelivery) { got = append(got, d) })
			if !tc.err(err) {
				t.Errorf("error %v", err)
			}
			if opened != tc.opened || len(got) != tc.want {
				t.Fatalf("opened %v, %d deliveries, want %v and %d", opened, len(got), tc.opened, tc.want)
			}
			for _, d := range got {
				if d.DeliveryID != "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c" || d.EventType != "webhook.test" || d.Attempt != 1 ||
					d.Headers["content-type"] != "application/json" || d.Body != `{"type":"webhook.test"}` {
					t.Errorf("delivery %+v", d)
				}
			}
		})
	}
}

func TestStreamDeliveriesEndsWithTheContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": listening\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	c, _ := plugboard.NewClient(srv.URL, plugboard.WithToken("pbu_good"))
	ctx, cancel := context.WithCancel(context.Background())
	err := c.StreamDeliveries(ctx, "acme-alerts", cancel, func(plugboard.StreamedDelivery) {})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
}

func TestHostRoutes(t *testing.T) {
	var published []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /api/0/event-types/":
			w.Write([]byte(`[{"id":"1","name":"webhook.test","resource":"","scope":"","description":"A test.","schema":null,"builtin":true,"dateCreated":"2026-01-02T15:04:05Z"},` +
				`{"id":"7","name":"issue.created","resource":"issue","scope":"issue:read","description":"An issue was opened.",` +
				`"schema":{"type":"object","required":["title"]},"builtin":false,"dateCreated":"2026-01-02T15:04:05Z"}]`))
		case "POST /api/0/organizations/globex/events/":
			var in struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			}
			if !strictBody(w, r, &in) {
				return
			}
			published = append(published, in.Type+" "+string(in.Data))
			if in.Type == "nothing.happened" {
				problem(w, r, 400, "invalid_input", "The request has invalid fields.", map[string]string{"type": "is not in the event catalogue"}, nil)
				return
			}
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"5e0c6a2f-1b3d-4c5e-8f7a-9b0c1d2e3f4a","type":"issue.created","data":{"title":"x"},"deliveries":3,"createdBy":"service","dateCreated":"2026-01-02T15:04:05Z"}`))
		default:
			problem(w, r, 404, "not_found", "No such route.", nil, nil)
		}
	}))
	defer srv.Close()
	c, _ := plugboard.NewClient(srv.URL, plugboard.WithToken("pbu_good"))
	ctx := context.Background()

	types, err := c.ListEventTypes(ctx)
	if err != nil || len(types) != 2 {
		t.Fatalf("event types %+v %v", types, err)
	}
	if it := types[1]; it.Name != "issue.created" || it.Scope != "issue:read" || it.Builtin || string(it.Schema) != `{"type":"object","required":["title"]}` {
		t.Errorf("issue.created %+v", it)
	}
	if string(types[0].Schema) != "null" || !types[0].Builtin {
		t.Errorf("webhook.test %+v", types[0])
	}

	for _, data := range []any{map[string]string{"title": "x"}, json.RawMessage(`{"title":"x"}`)} {
		ev, err := c.PublishEvent(ctx, "globex", "issue.created", data)
		if err != nil || ev.Deliveries != 3 || ev.ID == "" || string(ev.Data) != `{"title":"x"}` {
			t.Errorf("publish %T: %+v %v", data, ev, err)
		}
	}
	_, err = c.PublishEvent(ctx, "globex", "nothing.happened", nil)
	var apiErr *plugboard.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Fields["type"] == "" {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := c.PublishEvent(ctx, "globex", "issue.created", func() {}); err == nil || !strings.Contains(err.Error(), "encoding the data of issue.created") {
		t.Errorf("unencodable data: %v", err)
	}
	if strings.Join(published, ",") != `issue.created {"title":"x"},issue.created {"title":"x"},nothing.happened null` {
		t.Errorf("published %v", published)
	}
}
