package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/webhooks"
)

// localTimeLayout is what <input type="datetime-local"> sends; the pages
// read and show it as UTC.
const localTimeLayout = "2006-01-02T15:04"

// formTime reads a datetime-local value (UTC) from the form or query into
// *dst (nil when empty); a value that is not a time is added to f.
func formTime(f fault.Fields, field, raw string, dst **time.Time) {
	*dst = nil
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return
	}
	for _, layout := range []string{localTimeLayout, "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, raw, time.UTC); err == nil {
			t = t.UTC()
			*dst = &t
			return
		}
	}
	f.Add(field, "must be a date and time such as 2026-01-02T15:04 (UTC)")
}

// lifecycleEvents are the events Plugboard itself sends every app.
var lifecycleEvents = []string{marketplace.EventInstallationCreated, marketplace.EventInstallationUpdated, marketplace.EventInstallationDeleted, "webhook.test"}

// deliveryFilter is the filter form's values and its errors.
type deliveryFilter struct {
	Status, EventType, Installation, Since, Until string
	Errors                                        map[string]string
}

// query is the filter as URL values (for the pager's links).
func (f deliveryFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "eventType": f.EventType, "installation": f.Installation, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// Active reports whether any filter is set.
func (f deliveryFilter) Active() bool { return len(f.query()) > 0 }

// installationOption is one choice of the installation filter.
type installationOption struct {
	UUID, Short, Org, Status string
}

// deliveryRow is one line of the delivery log.
type deliveryRow struct {
	webhooks.Delivery
	Short, Org string
}

// deliveriesData is the delivery log page.
type deliveriesData struct {
	App           *marketplace.AppView
	Filter        deliveryFilter
	Statuses      []string
	EventTypes    []string
	Installations []installationOption
	Rows          []deliveryRow
	Page          page.Page[webhooks.Delivery]
	Query         url.Values
	CanAdmin      bool
}

func shortUUID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// loadDeliveries fills the delivery log for the filter in q. Invalid
// filters come back as field errors on the filter, with an empty list.
func (s *Server) loadDeliveries(c echo.Context, app *marketplace.AppView, q url.Values) (*deliveriesData, error) {
	d := &deliveriesData{App: app, CanAdmin: app.IsAdmin(),
		Statuses: []string{webhooks.DeliveryPending, webhooks.DeliverySucceeded, webhooks.DeliveryFailed, webhooks.DeliveryPaused},
		Filter: deliveryFilter{Status: q.Get("status"), EventType: q.Get("eventType"), Installation: q.Get("installation"),
			Since: q.Get("since"), Until: q.Get("until"), Errors: map[string]string{}}}
	d.Query = d.Filter.query()
	if l := q.Get("limit"); l != "" {
		d.Query.Set("limit", l)
	}
	seen := map[string]bool{}
	for _, e := range append(append([]string{}, app.Events...), lifecycleEvents...) {
		if !seen[e] {
			seen[e] = true
			d.EventTypes = append(d.EventTypes, e)
		}
	}

	dq := webhooks.DeliveryQuery{Status: d.Filter.Status, EventType: d.Filter.EventType, InstallationUUID: d.Filter.Installation}
	f := fault.Fields{}
	formTime(f, "since", d.Filter.Since, &dq.Since)
	formTime(f, "until", d.Filter.Until, &dq.Until)
	r, err := s.pageRequest(c)
	bad := []error{f.Err(), err}
	query := &dq
	if f.Err() != nil || err != nil {
		query = nil // the page lists the installations to choose from
	}
	// Filters the log refuses are shown beside the form too.
	lp, err := s.opts.Deliveries.LogPage(c.Request().Context(), actor(c), app.Slug, query, r)
	if fe, ok := fault.As(err); ok && fe.Kind == fault.KindInvalid {
		bad = append(bad, err)
	} else if err != nil {
		return nil, err
	}
	d.Page = lp.Deliveries
	for _, in := range lp.Installations {
		d.Installations = append(d.Installations, installationOption{UUID: in.UUID, Short: shortUUID(in.UUID), Org: in.Org, Status: in.Status})
	}
	for _, del := range d.Page.Items {
		row := deliveryRow{Delivery: del}
		if del.InstallationUUID != nil {
			row.Short, row.Org = shortUUID(*del.InstallationUUID), lp.OrgOf[*del.InstallationUUID]
		}
		d.Rows = append(d.Rows, row)
	}
	for _, err := range bad {
		if err == nil {
			continue
		}
		p := problemFor(err)
		for k, msg := range p.Fields {
			d.Filter.Errors[k] = msg
		}
		if len(p.Fields) == 0 {
			d.Filter.Errors["cursor"] = p.Detail
		}
	}
	return d, nil
}

// deliveriesPage is an app's delivery log with filters, the endpoint's
// state and its actions.
func (s *Server) deliveriesPage(c echo.Context, app *marketplace.AppView) error {
	d, err := s.loadDeliveries(c, app, c.QueryParams())
	if err != nil {
		return err
	}
	v := s.partnerView(c, app, "Deliveries")
	v.Data = d
	status := http.StatusOK
	// htmx swaps only successful answers: filtering in place shows the
	// errors with a 200, a plain navigation answers 400.
	if len(d.Filter.Errors) > 0 && c.Request().Header.Get("HX-Request") == "" {
		status = http.StatusBadRequest
	}
	return s.render(c, status, "deliveries", v)
}

// failDeliveries re-renders the log with a form's error (the bulk
// redelivery form or an action's refusal).
func (s *Server) failDeliveries(c echo.Context, app *marketplace.AppView, err error) error {
	d, lerr := s.loadDeliveries(c, app, url.Values{})
	if lerr != nil {
		return lerr
	}
	v := s.partnerView(c, app, "Deliveries")
	v.fail(err, c)
	v.Data = d
	return s.render(c, uiStatus(err), "deliveries", v)
}

// redeliverFailedPage sends failed deliveries created in a range again, in
// the background.
func (s *Server) redeliverFailedPage(c echo.Context, app *marketplace.AppView) error {
	req := marketplace.RedeliveryRequest{Status: webhooks.DeliveryFailed}
	f := fault.Fields{}
	formTime(f, "since", c.FormValue("since"), &req.Since)
	formTime(f, "until", c.FormValue("until"), &req.Until)
	err := f.Err()
	var res *marketplace.Redelivery
	if err == nil {
		res, err = s.opts.Deliveries.Redeliver(c.Request().Context(), actor(c), app.Slug, req)
	}
	if formFault(err) {
		return s.failDeliveries(c, app, err)
	}
	if err != nil {
		return err
	}
	msg := "No failed deliveries in that range; nothing to send again."
	if res.Count > 0 {
		msg = fmt.Sprintf("Queued %d %s to be sent again; each gets one more attempt.", res.Count, plural(res.Count, "delivery", "deliveries"))
	}
	return s.redirect(c, "/apps/"+app.Slug+"/deliveries?status=failed", msg)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// testEventPage sends a webhook.test event and shows its delivery.
func (s *Server) testEventPage(c echo.Context, app *marketplace.AppView) error {
	d, err := s.opts.Deliveries.SendTestEvent(c.Request().Context(), actor(c), app.Slug)
	if formFault(err) {
		return s.failDeliveries(c, app, err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/deliveries/"+d.UUID, "Sent a test event to "+app.WebhookURL+". This page shows its attempts; reload it to see the answer.")
}

// enableEndpointPage re-enables a disabled endpoint; what was paused is
// sent now.
func (s *Server) enableEndpointPage(c echo.Context, app *marketplace.AppView) error {
	if app.WebhookStatus == webhooks.EndpointEnabled {
		return s.redirect(c, "/apps/"+app.Slug+"/deliveries", "Webhooks are already enabled.")
	}
	enabled := webhooks.EndpointEnabled
	_, err := s.opts.Apps.UpdateApp(c.Request().Context(), actor(c), app.Slug, marketplace.AppUpdate{WebhookStatus: &enabled})
	if formFault(err) {
		return s.failDeliveries(c, app, err)
	}
	if err != nil {
		return err
	}
	return s.redirect(c, "/apps/"+app.Slug+"/deliveries", "Webhooks are enabled again. Paused deliveries are being sent now.")
}

// header is one HTTP header of an attempt.
type header struct{ Name, Value string }

func headersOf(raw json.RawMessage) []header {
	if len(raw) == 0 {
		return nil
	}
	m := map[string]string{}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	out := make([]header, 0, len(m))
	for k, v := range m {
		out = append(out, header{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}

// attemptView is one attempt for the timeline.
type attemptView struct {
	webhooks.Attempt
	Duration        string
	Outcome         string // succeeded or failed
	RequestHeaders  []header
	ResponseHeaders []header
	Response        prettyBody // the stored first KiBs of the response body
	Open            bool
}

// deliveryData is one delivery's page.
type deliveryData struct {
	App      *marketplace.AppView
	Delivery webhooks.DeliveryDetail
	Payload  prettyBody // the signed body, its first payloadLimit bytes indented
	Org      string
	Attempts []attemptView // newest first
	Pending  bool
	CanAdmin bool
}

func formatDuration(us int64) string {
	switch {
	case us < 1000:
		return strconv.FormatInt(us, 10) + " µs"
	case us < 10_000_000:
		return strconv.FormatFloat(float64(us)/1000, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(float64(us)/1e6, 'f', 1, 64) + " s"
}

// deliveryPage is one delivery: what was sent and every attempt.
func (s *Server) deliveryPage(c echo.Context, app *marketplace.AppView) error {
	pg, err := s.opts.Deliveries.DeliveryPage(c.Request().Context(), actor(c), app.Slug, c.Param("id"))
	if err != nil {
		return err
	}
	del := pg.Delivery
	d := &deliveryData{App: app, Delivery: *del, Payload: prettyJSON(del.Payload, payloadLimit), Org: pg.Org,
		Pending: del.Status == webhooks.DeliveryPending, CanAdmin: app.IsAdmin()}
	for i := len(del.Attempts) - 1; i >= 0; i-- {
		at := del.Attempts[i]
		av := attemptView{Attempt: at, Duration: formatDuration(at.DurationUS), Outcome: webhooks.DeliverySucceeded,
			RequestHeaders: headersOf(at.RequestHeaders), ResponseHeaders: headersOf(at.ResponseHeaders),
			Response: responseBody(at.ResponseBody), Open: i == len(del.Attempts)-1}
		if at.ErrorClass != "" {
			av.Outcome = webhooks.DeliveryFailed
		}
		d.Attempts = append(d.Attempts, av)
	}
	v := s.partnerView(c, app, "Delivery "+shortUUID(del.UUID))
	v.Data = d
	return s.render(c, http.StatusOK, "deliveries_detail", v)
}

// responseBodyLimit is how much of an indented response body an attempt
// shows. Attempts keep the first KiBs of what the endpoint answered; one
// whose indented form is longer (deeply nested) is shown as it was
// received, so every attempt costs at most a few KiB of the page.
const responseBodyLimit = 16 << 10

func responseBody(body string) prettyBody {
	p := prettyJSON([]byte(body), responseBodyLimit)
	if p.Truncated {
		p.Text, p.Truncated = cut([]byte(body), responseBodyLimit)
	}
	return p
}

// deliveryPayload is the exact body a delivery signs and sends, as a
// download (the page shows only its first payloadLimit bytes).
func (s *Server) deliveryPayload(c echo.Context, app *marketplace.AppView) error {
	pg, err := s.opts.Deliveries.DeliveryPage(c.Request().Context(), actor(c), app.Slug, c.Param("id"))
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="delivery-%s.json"`, pg.Delivery.UUID))
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, pg.Delivery.Payload)
}

// redeliverOnePage sends one delivery again, now.
func (s *Server) redeliverOnePage(c echo.Context, app *marketplace.AppView) error {
	id := c.Param("id")
	ctx, a := c.Request().Context(), actor(c)
	if _, err := s.opts.Deliveries.GetDelivery(ctx, a, app.Slug, id); err != nil {
		return err
	}
	res, err := s.opts.Deliveries.Redeliver(ctx, a, app.Slug, marketplace.RedeliveryRequest{Deliveries: []string{id}})
	if err != nil {
		return err
	}
	msg := "Queued another attempt; reload in a moment to see it below."
	if res.Count == 0 {
		msg = "This delivery is still being attempted, so it was not queued again."
	}
	return s.redirect(c, "/apps/"+app.Slug+"/deliveries/"+id, msg)
}
