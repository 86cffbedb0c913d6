package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

type deliveryJSON struct {
	ID              string        `json:"id"`
	EventType       string        `json:"eventType"`
	Status          string        `json:"status"`
	Installation    *string       `json:"installation"`
	Attempts        int           `json:"attempts"`
	MaxAttempts     int           `json:"maxAttempts"`
	LastStatusCode  *int          `json:"lastStatusCode"`
	LastErrorClass  string        `json:"lastErrorClass"`
	OrderingKey     *string       `json:"orderingKey"`
	DateCreated     time.Time     `json:"dateCreated"`
	DateLastAttempt *time.Time    `json:"dateLastAttempt"`
	DateNextAttempt *time.Time    `json:"dateNextAttempt"`
	DateCompleted   *time.Time    `json:"dateCompleted"`
	Payload         any           `json:"payload,omitempty"`
	AttemptsDetail  []attemptJSON `json:"attemptsDetail,omitempty"`
}

type attemptJSON struct {
	ID              string            `json:"id"`
	Number          int               `json:"number"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"requestHeaders"`
	ResponseStatus  *int              `json:"responseStatus"`
	ResponseHeaders map[string]string `json:"responseHeaders"`
	ResponseBody    string            `json:"responseBody"`
	DurationMs      float64           `json:"durationMs"`
	ErrorClass      string            `json:"errorClass"`
	ErrorMessage    string            `json:"errorMessage"`
	DateCreated     time.Time         `json:"dateCreated"`
}

func toDeliveryJSON(d webhooks.Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.UUID, EventType: d.EventType, Status: d.Status, Installation: d.InstallationUUID, Attempts: d.Attempts,
		MaxAttempts: d.MaxAttempts, LastStatusCode: d.LastStatusCode, LastErrorClass: d.LastErrorClass, OrderingKey: d.OrderingKey, DateCreated: d.CreatedAt,
		DateLastAttempt: d.LastAttemptAt, DateCompleted: d.CompletedAt}
	if d.Status == webhooks.DeliveryPending {
		out.DateNextAttempt = d.NextAttemptAt
	}
	return out
}

func toAttemptJSON(a webhooks.Attempt) attemptJSON {
	out := attemptJSON{ID: id(a.ID), Number: a.Number, URL: a.URL, ResponseStatus: a.ResponseStatus, ResponseBody: a.ResponseBody,
		DurationMs: float64(a.DurationUS) / 1000, ErrorClass: a.ErrorClass, ErrorMessage: a.ErrorMessage, DateCreated: a.CreatedAt,
		RequestHeaders: map[string]string{}, ResponseHeaders: map[string]string{}}
	_ = json.Unmarshal(a.RequestHeaders, &out.RequestHeaders)
	if len(a.ResponseHeaders) > 0 {
		_ = json.Unmarshal(a.ResponseHeaders, &out.ResponseHeaders)
	}
	return out
}

// timeParam reads an RFC 3339 time from the query string.
func timeParam(c echo.Context, name string) (*time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fault.Field(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return &t, nil
}

// deliveryQuery reads a delivery log's filters and page from the query
// string.
func (s *Server) deliveryQuery(c echo.Context) (webhooks.DeliveryQuery, page.Request, error) {
	r, err := s.pageRequest(c)
	if err != nil {
		return webhooks.DeliveryQuery{}, r, err
	}
	since, err := timeParam(c, "since")
	if err != nil {
		return webhooks.DeliveryQuery{}, r, err
	}
	until, err := timeParam(c, "until")
	if err != nil {
		return webhooks.DeliveryQuery{}, r, err
	}
	return webhooks.DeliveryQuery{Status: c.QueryParam("status"), EventType: c.QueryParam("eventType"),
		InstallationUUID: c.QueryParam("installation"), Since: since, Until: until}, r, nil
}

func (s *Server) listDeliveries(c echo.Context) error {
	dq, r, err := s.deliveryQuery(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Deliveries.ListDeliveries(c.Request().Context(), actor(c), c.Param("app_slug"), dq, r)
	if err != nil {
		return err
	}
	return s.writeDeliveryPage(c, p)
}

func (s *Server) getDelivery(c echo.Context) error {
	d, err := s.opts.Deliveries.GetDelivery(c.Request().Context(), actor(c), c.Param("app_slug"), c.Param("delivery_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toDeliveryDetailJSON(d))
}

// toDeliveryDetailJSON is a delivery with its payload and attempts.
func toDeliveryDetailJSON(d *webhooks.DeliveryDetail) deliveryJSON {
	out := toDeliveryJSON(d.Delivery)
	out.Payload = d.Payload // the exact bytes that were signed
	out.AttemptsDetail = make([]attemptJSON, len(d.Attempts))
	for i, a := range d.Attempts {
		out.AttemptsDetail[i] = toAttemptJSON(a)
	}
	return out
}

type redeliveryRequest struct {
	Deliveries []string   `json:"deliveries"`
	Status     string     `json:"status"`
	Since      *time.Time `json:"since"`
	Until      *time.Time `json:"until"`
}

func (s *Server) redeliver(c echo.Context) error {
	var in redeliveryRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	res, err := s.opts.Deliveries.Redeliver(c.Request().Context(), actor(c), c.Param("app_slug"), marketplace.RedeliveryRequest{
		Deliveries: in.Deliveries, Status: in.Status, Since: in.Since, Until: in.Until})
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	return c.JSON(status, map[string]any{"count": res.Count, "background": res.Background})
}

func (s *Server) testEvent(c echo.Context) error {
	d, err := s.opts.Deliveries.SendTestEvent(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toDeliveryJSON(*d))
}

type bucketJSON struct {
	Start        time.Time      `json:"start"`
	Attempts     int            `json:"attempts"`
	Succeeded    int            `json:"succeeded"`
	Failed       int            `json:"failed"`
	SuccessRate  float64        `json:"successRate"`
	LatencyP50   float64        `json:"latencyP50Ms"`
	LatencyP95   float64        `json:"latencyP95Ms"`
	LatencyP99   float64        `json:"latencyP99Ms"`
	ErrorClasses map[string]int `json:"errorClasses"`
}

func (s *Server) stats(c echo.Context) error {
	return s.writeStats(c, func(since, until time.Time, res time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error) {
		return s.opts.Deliveries.Stats(c.Request().Context(), actor(c), c.Param("app_slug"), since, until, res)
	})
}

// writeStats answers a health figures request: its range and resolution
// from the query string, the figures from get.
func (s *Server) writeStats(c echo.Context, get func(since, until time.Time, res time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error)) error {
	now := timeNow().UTC()
	since, err := timeParam(c, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(c, "until")
	if err != nil {
		return err
	}
	res := time.Hour
	if v := c.QueryParam("resolution"); v != "" {
		if res, err = time.ParseDuration(v); err != nil {
			return fault.Field("resolution", "must be a duration such as 1m, 1h or 24h")
		}
	}
	if until == nil {
		u := now.Truncate(res).Add(res)
		until = &u
	}
	if since == nil {
		st := until.Add(-24 * time.Hour)
		since = &st
	}
	buckets, total, err := get(*since, *until, res)
	if err != nil {
		return err
	}
	out := statsJSON{Since: *since, Until: *until, Resolution: res.String(), Attempts: total.Attempts, SuccessRate: total.SuccessRate,
		Buckets: make([]bucketJSON, len(buckets))}
	for i, b := range buckets {
		out.Buckets[i] = bucketJSON{Start: b.Start, Attempts: b.Attempts, Succeeded: b.Succeeded, Failed: b.Failed, SuccessRate: b.SuccessRate,
			LatencyP50: b.P50, LatencyP95: b.P95, LatencyP99: b.P99, ErrorClasses: b.ErrorClasses}
	}
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return c.JSON(http.StatusOK, out)
	}
	return c.JSONBlob(http.StatusOK, append(out.appendJSON(make([]byte, 0, 160+200*len(out.Buckets))), '\n'))
}

// statsJSON is a health figures answer.
type statsJSON struct {
	Since       time.Time    `json:"since"`
	Until       time.Time    `json:"until"`
	Resolution  string       `json:"resolution"`
	Attempts    int          `json:"attempts"`
	SuccessRate float64      `json:"successRate"`
	Buckets     []bucketJSON `json:"buckets"`
}

type eventRequest struct {
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotencyKey"`
	OrderingKey    *string         `json:"orderingKey"`
}

type eventJSON struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	Deliveries     int             `json:"deliveries"`
	CreatedBy      string          `json:"createdBy"`
	IdempotencyKey *string         `json:"idempotencyKey"`
	OrderingKey    *string         `json:"orderingKey"`
	DateCreated    time.Time       `json:"dateCreated"`
}

// toEventJSON answers an event; its data as stored or as published, not
// decoded and encoded again (that was a tenth of the single-event publish
// request's CPU, and turned large integers into floats). It is the same
// object either way, but not always the same bytes: a publish's answer
// keeps the host's key order, a later read has PostgreSQL's (jsonb orders
// keys by length, then bytewise).
func toEventJSON(e webhooks.Event) eventJSON {
	out := eventJSON{ID: e.UUID, Type: e.Type, Deliveries: e.DeliveriesCount, CreatedBy: e.CreatedBy, IdempotencyKey: e.IdempotencyKey,
		OrderingKey: e.OrderingKey, DateCreated: e.CreatedAt}
	if len(e.Data) > 0 && json.Valid(e.Data) {
		out.Data = json.RawMessage(e.Data)
	}
	return out
}

// publishedStatus is 201 for an event published now, 200 for the one its
// idempotency key had published before.
func publishedStatus(e *webhooks.Event) int {
	if e.Replayed {
		return http.StatusOK
	}
	return http.StatusCreated
}

func (s *Server) publishEvent(c echo.Context) error {
	var in eventRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	ev, err := s.opts.Events.Publish(c.Request().Context(), actor(c), marketplace.HostEvent{Organization: c.Param("org"), Type: in.Type,
		Data: in.Data, IdempotencyKey: in.IdempotencyKey, OrderingKey: in.OrderingKey})
	if err != nil {
		return err
	}
	return c.JSON(publishedStatus(ev), toEventJSON(*ev))
}

type eventBatchRequest struct {
	Events []batchEventRequest `json:"events"`
}

type batchEventRequest struct {
	Organization   string          `json:"organization"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotencyKey"`
	OrderingKey    *string         `json:"orderingKey"`
}

// batchResultJSON is one event of a batch: its status as the single-event
// route would answer it, and the event or the problem.
type batchResultJSON struct {
	Status  int        `json:"status"`
	Event   *eventJSON `json:"event,omitempty"`
	Problem *Problem   `json:"problem,omitempty"`
}

// publishEventBatch publishes up to 1,000 events for the host in one
// transaction and answers 200 with one result per event, in order.
func (s *Server) publishEventBatch(c echo.Context) error {
	var in eventBatchRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	evs := make([]marketplace.HostEvent, len(in.Events))
	for i, e := range in.Events {
		evs[i] = marketplace.HostEvent{Organization: e.Organization, Type: e.Type, Data: e.Data, IdempotencyKey: e.IdempotencyKey, OrderingKey: e.OrderingKey}
	}
	res, err := s.opts.Events.PublishBatch(c.Request().Context(), actor(c), evs)
	if err != nil {
		return err
	}
	out := struct {
		Results []batchResultJSON `json:"results"`
	}{Results: make([]batchResultJSON, len(res))}
	for i, r := range res {
		if r.Err != nil {
			p := problemFor(r.Err)
			if p.Status >= 500 {
				return r.Err
			}
			out.Results[i] = batchResultJSON{Status: p.Status, Problem: &p}
			continue
		}
		ev := toEventJSON(*r.Event)
		out.Results[i] = batchResultJSON{Status: publishedStatus(r.Event), Event: &ev}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) listEvents(c echo.Context) error {
	r, err := s.pageRequest(c)
	if err != nil {
		return err
	}
	p, err := s.opts.Events.ListEvents(c.Request().Context(), actor(c), c.Param("org"), c.QueryParam("type"), r)
	if err != nil {
		return err
	}
	return writePage(s, c, p, toEventJSON)
}

type eventTypeRequest struct {
	Name        string          `json:"name"`
	Resource    string          `json:"resource"`
	Scope       string          `json:"scope"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

func (s *Server) createEventType(c echo.Context) error {
	var in eventTypeRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	et, err := s.opts.Events.CreateEventType(c.Request().Context(), actor(c), webhooks.NewEventType{
		Name: in.Name, Resource: in.Resource, Scope: in.Scope, Description: in.Description, Schema: in.Schema})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toEventTypeJSON(*et))
}

type serviceTokenJSON struct {
	ID                  string     `json:"id"`
	Name                string     `json:"name"`
	TokenLastCharacters string     `json:"tokenLastCharacters"`
	DateCreated         time.Time  `json:"dateCreated"`
	DateLastUsed        *time.Time `json:"dateLastUsed"`
	Token               string     `json:"token,omitempty"`
}

func toServiceTokenJSON(t marketplace.ServiceToken) serviceTokenJSON {
	return serviceTokenJSON{ID: id(t.ID), Name: t.Name, TokenLastCharacters: t.TokenSuffix, DateCreated: t.CreatedAt, DateLastUsed: t.LastUsedAt}
}

func (s *Server) listServiceTokens(c echo.Context) error {
	toks, err := s.opts.ServiceTokens.ListServiceTokens(c.Request().Context(), actor(c))
	if err != nil {
		return err
	}
	out := make([]serviceTokenJSON, len(toks))
	for i, t := range toks {
		out[i] = toServiceTokenJSON(t)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createServiceToken(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	t, token, err := s.opts.ServiceTokens.CreateServiceToken(c.Request().Context(), actor(c), in.Name)
	if err != nil {
		return err
	}
	out := toServiceTokenJSON(*t)
	out.Token = token
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeServiceToken(c echo.Context) error {
	if err := s.opts.ServiceTokens.RevokeServiceToken(c.Request().Context(), actor(c), c.Param("token_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
