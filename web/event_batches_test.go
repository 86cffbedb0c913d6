package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// batchResult is one result of POST /api/0/event-batches/.
type batchResult struct {
	Status  int                       `json:"status"`
	Event   *plugboard.PublishedEvent `json:"event"`
	Problem *problemDoc               `json:"problem"`
}

type batchResults struct {
	Results []batchResult `json:"results"`
}

func ev(org, typ string, data any, key string) map[string]any {
	e := map[string]any{"organization": org, "type": typ, "data": data}
	if key != "" {
		e["idempotencyKey"] = key
	}
	return e
}

// TestEventBatches publishes a batch mixing valid and invalid events as
// the host: each gets the answer the single-event route would give, in
// order; the valid ones are delivered, signed, once; a retry of the batch
// publishes nothing again; a key reused for other data is a conflict; more
// than 1,000 events, or none, are refused whole.
func TestEventBatches(t *testing.T) {
	h := newHooks(t)
	tok := decode[plugboard.ServiceToken](t, h.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	host := newClient(t, h.p, tok.Token)
	events0 := count(t, h.p, "events")

	batch := map[string]any{"events": []any{
		ev("customer", "issue.created", map[string]any{"title": "First"}, "issue-1"),
		ev("customer", "issue.created", map[string]any{"title": 7}, ""),              // schema
		ev("nowhere", "issue.created", map[string]any{"title": "Lost"}, ""),          // no such organization
		ev("customer", "", map[string]any{"title": "Untyped"}, ""),                   // no type
		ev("", "issue.created", map[string]any{"title": "Orphan"}, ""),               // no organization
		ev("customer", "installation.created", map[string]any{}, ""),                 // Plugboard's own
		ev("customer", "issue.created", map[string]any{"title": "Second"}, ""),       // valid, unkeyed
		ev("customer", "issue.created", map[string]any{"title": "First"}, "issue-1"), // the same key again, in the same batch
	}}
	type want struct {
		status int
		code   string
		field  string
	}
	wants := []want{{201, "", ""}, {400, "schema_mismatch", "data.title"}, {404, "not_found", ""}, {400, "invalid_input", "type"},
		{400, "invalid_input", "organization"}, {400, "invalid_input", "type"}, {201, "", ""}, {200, "", ""}}
	check := func(name string, got batchResults, wants []want) {
		t.Helper()
		if len(got.Results) != len(wants) {
			t.Fatalf("%s: %d results, want %d", name, len(got.Results), len(wants))
		}
		for i, w := range wants {
			r := got.Results[i]
			if r.Status != w.status {
				t.Errorf("%s: event %d: status %d, want %d (%+v)", name, i, r.Status, w.status, r.Problem)
				continue
			}
			if w.code == "" {
				if r.Event == nil || r.Problem != nil || r.Event.Type != "issue.created" {
					t.Errorf("%s: event %d: %+v", name, i, r)
				}
				continue
			}
			if r.Event != nil || r.Problem == nil || r.Problem.Code != w.code || r.Problem.Status != w.status ||
				(w.field != "" && r.Problem.Fields[w.field] == "") {
				t.Errorf("%s: event %d: %+v, want %s on %q", name, i, r.Problem, w.code, w.field)
			}
		}
	}
	first := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", batch), 200)
	check("first", first, wants)
	if first.Results[0].Event.ID != first.Results[7].Event.ID || first.Results[0].Event.Deliveries != 1 ||
		first.Results[0].Event.IdempotencyKey == nil || *first.Results[0].Event.IdempotencyKey != "issue-1" {
		t.Errorf("the key's two events: %+v and %+v", first.Results[0].Event, first.Results[7].Event)
	}
	if n := count(t, h.p, "events"); n != events0+2 {
		t.Errorf("%d events written, want 2", n-events0)
	}
	// The two published events reach the installation, signed, once each.
	hits := h.sink.waitHits(t, 3, 10*time.Second) // installation.created, then the two
	titles := map[string]int{}
	for _, hit := range hits[1:] {
		verify(t, h.secret, hit)
		env, err := plugboard.ParseEvent(hit.Body)
		if err != nil {
			t.Fatal(err)
		}
		var d issue
		if err := strictUnmarshal(env.Data, &d); err != nil {
			t.Fatal(err)
		}
		titles[d.Title]++
	}
	if titles["First"] != 1 || titles["Second"] != 1 {
		t.Errorf("delivered %v", titles)
	}

	// The same batch again: the keyed event is answered as published
	// before, the unkeyed one is published anew, the rest fail as before.
	again := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", batch), 200)
	wants[0].status = 200
	check("again", again, wants)
	if again.Results[0].Event.ID != first.Results[0].Event.ID {
		t.Errorf("replayed %s, want %s", again.Results[0].Event.ID, first.Results[0].Event.ID)
	}
	if n := count(t, h.p, "events"); n != events0+3 {
		t.Errorf("%d events after the retry, want 3", n-events0)
	}

	// A key reused for other data: a conflict, nothing published.
	reused := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{
		ev("customer", "issue.created", map[string]any{"title": "Not the first"}, "issue-1")}}), 200)
	check("reused", reused, []want{{409, "idempotency_key_reused", "idempotencyKey"}})

	// The single-event route shares the keys: 201, then 200 with the same event.
	one := host.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Single"}, "idempotencyKey": "single-1"})
	e1 := decode[plugboard.PublishedEvent](t, one, 201)
	e2 := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Single"}, "idempotencyKey": "single-1"}), 200)
	if e1.ID != e2.ID {
		t.Errorf("single route replay: %s then %s", e1.ID, e2.ID)
	}
	host.do("POST", "/api/0/organizations/customer/events/", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Other"}, "idempotencyKey": "single-1"}).problem(t, 409, "idempotency_key_reused")

	// The ordering key is part of what the idempotency key names: the same
	// type and data under another ordering key (or none) are a conflict too.
	keyed := map[string]any{"type": "issue.created", "data": map[string]any{"title": "Keyed"}, "idempotencyKey": "single-2", "orderingKey": "issue-7"}
	e3 := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/", keyed), 201)
	if e4 := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/", keyed), 200); e4.ID != e3.ID {
		t.Errorf("keyed replay: %s then %s", e3.ID, e4.ID)
	}
	before := count(t, h.p, "events")
	for _, other := range []any{"issue-8", nil} {
		retry := map[string]any{"type": "issue.created", "data": map[string]any{"title": "Keyed"}, "idempotencyKey": "single-2"}
		if other != nil {
			retry["orderingKey"] = other
		}
		host.do("POST", "/api/0/organizations/customer/events/", retry).problem(t, 409, "idempotency_key_reused")
		retry["organization"] = "customer"
		b := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{retry}}), 200)
		check(fmt.Sprintf("orderingKey %v", other), b, []want{{409, "idempotency_key_reused", "idempotencyKey"}})
	}
	unkeyed := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{
		map[string]any{"organization": "customer", "type": "issue.created", "data": map[string]any{"title": "Single"}, "idempotencyKey": "single-1", "orderingKey": "issue-7"}}}), 200)
	check("an ordering key added on retry", unkeyed, []want{{409, "idempotency_key_reused", "idempotencyKey"}})
	if n := count(t, h.p, "events"); n != before {
		t.Errorf("%d events written by conflicting retries", n-before)
	}

	// Refused whole: 1,001 events, none, a user's token.
	before = count(t, h.p, "events")
	var big []any
	for i := range 1001 {
		big = append(big, ev("customer", "issue.created", map[string]any{"title": fmt.Sprint(i)}, ""))
	}
	if f := host.do("POST", "/api/0/event-batches/", map[string]any{"events": big}).problem(t, 400, "batch_too_large"); f.Fields["events"] == "" {
		t.Errorf("fields %v", f.Fields)
	}
	host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{}}).problem(t, 400, "invalid_input")
	h.admin.do("POST", "/api/0/event-batches/", map[string]any{"events": big[:1]}).problem(t, 403, "forbidden")
	if n := count(t, h.p, "events"); n != before {
		t.Errorf("refused batches wrote %d events", n-before)
	}
	// 1,000 is allowed: one transaction, every result 201.
	full := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": big[:1000]}), 200)
	for i, r := range full.Results {
		if r.Status != 201 {
			t.Fatalf("event %d of 1,000: %+v", i, r)
		}
	}
	if n := count(t, h.p, "events"); n != before+1000 {
		t.Errorf("%d events of 1,000 written", n-before)
	}
}

// TestConcurrentSinglePublishes sends single-event publishes at once, as a
// busy host does, so that they share transactions: every unkeyed event is
// its own (201, a new id), a key raced by many publishes names one event
// (one 201, the others 200 with its id), a publish to an unknown
// organization fails alone (404) beside them, and every event published
// reaches the installation once.
func TestConcurrentSinglePublishes(t *testing.T) {
	h := newHooks(t)
	tok := decode[plugboard.ServiceToken](t, h.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	host := newClient(t, h.p, tok.Token)
	events0 := count(t, h.p, "events")

	const n = 24
	type answer struct {
		kind string // "free", "keyed" or "lost"
		res  *response
	}
	answers := make([]answer, 3*n)
	var wg sync.WaitGroup
	for i := range answers {
		kind, org, body := "free", "customer", map[string]any{"type": "issue.created", "data": map[string]any{"title": fmt.Sprint("Free ", i)}}
		switch i % 3 {
		case 1:
			kind, body = "keyed", map[string]any{"type": "issue.created", "data": map[string]any{"title": "Raced"}, "idempotencyKey": "race-1"}
		case 2:
			kind, org = "lost", "nowhere"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = answer{kind, host.do("POST", "/api/0/organizations/"+org+"/events/", body)}
		}()
	}
	wg.Wait()

	free, keyed, created := map[string]bool{}, map[string]int{}, 0
	for i, a := range answers {
		switch a.kind {
		case "lost":
			a.res.problem(t, 404, "not_found")
		case "free":
			e := decode[plugboard.PublishedEvent](t, a.res, 201)
			if free[e.ID] {
				t.Errorf("publish %d: event %s answered twice", i, e.ID)
			}
			free[e.ID] = true
		case "keyed":
			if a.res.Status != 200 && a.res.Status != 201 {
				t.Fatalf("keyed publish %d: %d %s", i, a.res.Status, a.res.Body)
			}
			e := decode[plugboard.PublishedEvent](t, a.res, a.res.Status)
			keyed[e.ID]++
			if a.res.Status == 201 {
				created++
			}
		}
	}
	if len(free) != n || len(keyed) != 1 || created != 1 {
		t.Errorf("%d distinct unkeyed events (want %d), keyed events %v with %d created (want one, created once)", len(free), n, keyed, created)
	}
	if got := count(t, h.p, "events"); got != events0+n+1 {
		t.Errorf("%d events written, want %d", got-events0, n+1)
	}
	hits := h.sink.waitHits(t, n+2, 20*time.Second) // installation.created, then the n+1 events
	seen := map[string]int{}
	for _, hit := range hits[1:] {
		verify(t, h.secret, hit)
		env, err := plugboard.ParseEvent(hit.Body)
		if err != nil {
			t.Fatal(err)
		}
		var d issue
		if err := strictUnmarshal(env.Data, &d); err != nil {
			t.Fatal(err)
		}
		seen[d.Title]++
	}
	for title, k := range seen {
		if k != 1 {
			t.Errorf("%q delivered %d times", title, k)
		}
	}
	if len(seen) != n+1 || seen["Raced"] != 1 {
		t.Errorf("delivered %d distinct events, want %d: %v", len(seen), n+1, seen)
	}
}

// TestEventOrderingKeys: events published with an orderingKey reach the
// app one at a time, in the order published, through a failure and its
// retry; an event without a key is not held back; the key is answered on
// the event; an empty or too long key is refused with its field, on both
// routes, and publishes nothing.
func TestEventOrderingKeys(t *testing.T) {
	h := newHooks(t)
	tok := decode[plugboard.ServiceToken](t, h.op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201)
	host := newClient(t, h.p, tok.Token)
	title := func(body []byte) string {
		var d issue
		if env, err := plugboard.ParseEvent(body); err == nil {
			_ = strictUnmarshal(env.Data, &d)
		}
		return d.Title
	}
	// The first attempt of "First" fails; its retry comes 300 ms later.
	var failedFirst atomic.Bool
	h.sink.mu.Lock()
	h.sink.respond = func(n int, r *http.Request) (int, http.Header, time.Duration) {
		h.sink.mu.Lock()
		body := h.sink.hits[n-1].Body
		h.sink.mu.Unlock()
		if title(body) == "First" && failedFirst.CompareAndSwap(false, true) {
			return 500, nil, 0
		}
		return 200, nil, 0
	}
	h.sink.mu.Unlock()

	keyed := func(title, key string) map[string]any {
		e := ev("customer", "issue.created", map[string]any{"title": title}, "")
		if key != "" {
			e["orderingKey"] = key
		}
		return e
	}
	res := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{
		keyed("First", "issue-9"), keyed("Second", "issue-9"), keyed("Free", "")}}), 200)
	for i, want := range []string{"issue-9", "issue-9", ""} {
		r := res.Results[i]
		if r.Status != 201 || r.Event == nil || (want == "") != (r.Event.OrderingKey == nil) || want != "" && *r.Event.OrderingKey != want {
			t.Fatalf("event %d: %+v, want orderingKey %q", i, r, want)
		}
	}
	hits := h.sink.waitHits(t, 5, 10*time.Second) // installation.created, First (500), Free, First, Second
	at := map[string][]int{}
	for i, hit := range hits[1:] {
		at[title(hit.Body)] = append(at[title(hit.Body)], i)
	}
	if len(at["First"]) != 2 || len(at["Second"]) != 1 || len(at["Free"]) != 1 {
		t.Fatalf("arrivals %v", at)
	}
	if at["Second"][0] < at["First"][1] {
		t.Errorf("Second arrived (%d) before First's retry succeeded (%d): %v", at["Second"][0], at["First"][1], at)
	}
	if at["Free"][0] > at["First"][1] {
		t.Errorf("Free, without a key, waited for First's retry: %v", at)
	}

	// The single-event route takes the key too, and both refuse a bad one.
	one := decode[plugboard.PublishedEvent](t, host.do("POST", "/api/0/organizations/customer/events/",
		map[string]any{"type": "issue.created", "data": map[string]any{"title": "Third"}, "orderingKey": "issue-9"}), 201)
	if one.OrderingKey == nil || *one.OrderingKey != "issue-9" {
		t.Errorf("single route: orderingKey %v", one.OrderingKey)
	}
	// The partner's delivery log shows each delivery's key.
	keys := map[string]int{}
	for _, d := range decode[[]plugboard.Delivery](t, h.dev.do("GET", "/api/0/apps/hook-app/deliveries/", nil), 200) {
		keys[d.OrderingKey]++
	}
	if keys["issue-9"] != 3 || keys[""] != 2 { // First, Second, Third; Free and installation.created
		t.Errorf("delivery log's ordering keys %v", keys)
	}
	// And its page in the web UI says what the key does.
	var second string
	if err := h.p.App.DB.Raw(`SELECT d.uuid::text FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.uuid = ?`,
		res.Results[1].Event.ID).Scan(&second).Error; err != nil || second == "" {
		t.Fatalf("the second event's delivery: %q, %v", second, err)
	}
	dev := uiSignIn(t, h.p, "dev@partner.example")
	dev.get("/apps/hook-app/deliveries/"+second).ok(200, "Ordering key", "issue-9", "one at a time")

	before := count(t, h.p, "events")
	for _, bad := range []string{"", strings.Repeat("k", 201)} {
		f := host.do("POST", "/api/0/organizations/customer/events/",
			map[string]any{"type": "issue.created", "data": map[string]any{"title": "Bad"}, "orderingKey": bad}).problem(t, 400, "invalid_input")
		if f.Fields["orderingKey"] == "" {
			t.Errorf("orderingKey %q: fields %v", bad, f.Fields)
		}
		e := keyed("Bad", "")
		e["orderingKey"] = bad
		b := decode[batchResults](t, host.do("POST", "/api/0/event-batches/", map[string]any{"events": []any{e}}), 200)
		if r := b.Results[0]; r.Status != 400 || r.Problem == nil || r.Problem.Fields["orderingKey"] == "" {
			t.Errorf("batch, orderingKey %q: %+v", bad, r)
		}
	}
	if n := count(t, h.p, "events"); n != before {
		t.Errorf("refused keys published %d events", n-before)
	}
}
