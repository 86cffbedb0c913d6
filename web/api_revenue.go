package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

// Partner revenue: an app's revenue per bucket, its payout statements and
// its commission (marketplace/revenue.go, payouts.go). Every amount is a
// decimal string with the currency's digits ("45.00"), as a plan's price.

type moneyJSON struct {
	Currency string `json:"currency"`
	Amount   string `json:"amount"`
}

type revenuePlanJSON struct {
	ID       string  `json:"id"`
	Slug     *string `json:"slug"` // null for a deleted plan
	Name     string  `json:"name"`
	UnitName string  `json:"unitName,omitempty"`
}

type planMoneyJSON struct {
	Plan     revenuePlanJSON `json:"plan"`
	Currency string          `json:"currency"`
	Amount   string          `json:"amount"`
}

type planUnitsJSON struct {
	Plan  revenuePlanJSON `json:"plan"`
	Units int64           `json:"units"`
}

type revenueBucketJSON struct {
	Start         time.Time       `json:"start"`
	End           time.Time       `json:"end"`
	Billed        []planMoneyJSON `json:"billed"`
	MRR           []moneyJSON     `json:"mrr"`
	Installations struct {
		Active  int `json:"active"`
		New     int `json:"new"`
		Churned int `json:"churned"`
	} `json:"installations"`
	Trials struct {
		Started   int `json:"started"`
		Converted int `json:"converted"`
	} `json:"trials"`
	MeteredUnits []planUnitsJSON `json:"meteredUnits"`
}

type commissionJSON struct {
	App             string     `json:"app"`
	Commission      string     `json:"commission"`
	PlatformDefault string     `json:"platformDefault"`
	Override        *string    `json:"override"`
	DateEffective   *time.Time `json:"dateEffective"`
}

func toCommissionJSON(app string, c marketplace.CommissionView) commissionJSON {
	out := commissionJSON{App: app, Commission: marketplace.FormatCommission(c.Bps),
		PlatformDefault: marketplace.FormatCommission(c.DefaultBps), DateEffective: c.EffectiveAt}
	if c.Override != nil {
		out.Override = ptrTo(marketplace.FormatCommission(*c.Override))
	}
	return out
}

func toPlanRefJSON(p marketplace.PlanRef) revenuePlanJSON {
	out := revenuePlanJSON{ID: strconv.FormatInt(p.ID, 10), Name: p.Name, UnitName: p.UnitName}
	if p.Slug != "" {
		out.Slug = ptrTo(p.Slug)
	}
	return out
}

func toPlanMoneyJSON(list []marketplace.PlanMoney) []planMoneyJSON {
	out := make([]planMoneyJSON, len(list))
	for i, m := range list {
		out[i] = planMoneyJSON{Plan: toPlanRefJSON(m.Plan), Currency: m.Currency, Amount: m.String()}
	}
	return out
}

func (s *Server) appRevenue(c echo.Context) error {
	since, err := timeParam(c, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(c, "until")
	if err != nil {
		return err
	}
	if since != nil && until != nil && !since.Before(*until) {
		return fault.Field("until", "must be after since")
	}
	rev, err := s.opts.Revenue.AppRevenue(c.Request().Context(), actor(c), c.Param("app_slug"),
		marketplace.RevenueQuery{Since: since, Until: until, Resolution: c.QueryParam("resolution")})
	if err != nil {
		return err
	}
	out := struct {
		App             string              `json:"app"`
		Since           time.Time           `json:"since"`
		Until           time.Time           `json:"until"`
		Resolution      string              `json:"resolution"`
		Commission      string              `json:"commission"`
		Billed          []planMoneyJSON     `json:"billed"`
		New             int                 `json:"newInstallations"`
		Churned         int                 `json:"churnedInstallations"`
		TrialsStarted   int                 `json:"trialsStarted"`
		TrialsConverted int                 `json:"trialsConverted"`
		Buckets         []revenueBucketJSON `json:"buckets"`
	}{App: rev.App.Slug, Since: rev.Since, Until: rev.Until, Resolution: rev.Resolution, Commission: marketplace.FormatCommission(rev.Commission.Bps),
		Billed: toPlanMoneyJSON(rev.Billed), New: rev.New, Churned: rev.Churned, TrialsStarted: rev.TrialsStarted, TrialsConverted: rev.TrialsConverted,
		Buckets: make([]revenueBucketJSON, len(rev.Buckets))}
	for i, b := range rev.Buckets {
		j := &out.Buckets[i]
		j.Start, j.End, j.Billed = b.Start, b.End, toPlanMoneyJSON(b.Billed)
		j.MRR = make([]moneyJSON, len(b.MRR))
		for k, m := range b.MRR {
			j.MRR[k] = moneyJSON{Currency: m.Currency, Amount: m.String()}
		}
		j.Installations.Active, j.Installations.New, j.Installations.Churned = b.Active, b.New, b.Churned
		j.Trials.Started, j.Trials.Converted = b.TrialsStarted, b.TrialsConverted
		j.MeteredUnits = make([]planUnitsJSON, len(b.Units))
		for k, u := range b.Units {
			j.MeteredUnits[k] = planUnitsJSON{Plan: toPlanRefJSON(u.Plan), Units: u.Units}
		}
	}
	return c.JSON(http.StatusOK, out)
}

type payoutLineJSON struct {
	Invoice       string          `json:"invoice"`
	InvoiceLine   string          `json:"invoiceLine"`
	Organization  string          `json:"organization"`
	Installation  string          `json:"installation"`
	Plan          revenuePlanJSON `json:"plan"`
	Kind          string          `json:"kind"`
	Period        string          `json:"period"`
	DatePaid      time.Time       `json:"datePaid"`
	CommissionPct string          `json:"commissionRate"`
	Gross         string          `json:"gross"`
	Commission    string          `json:"commission"`
	Net           string          `json:"net"`
}

type payoutJSON struct {
	ID         string           `json:"id"`
	Period     string           `json:"period"`
	Currency   string           `json:"currency"`
	Status     string           `json:"status"`
	Gross      string           `json:"gross"`
	Commission string           `json:"commission"`
	Net        string           `json:"net"`
	Lines      []payoutLineJSON `json:"lines"`
}

func toPayoutJSON(st marketplace.PayoutStatement) payoutJSON {
	f := func(n int64) string { return marketplace.FormatAmount(n, st.Currency) }
	out := payoutJSON{ID: st.ID(), Period: marketplace.FormatPeriod(st.Period), Currency: st.Currency, Status: st.Status,
		Gross: f(st.Gross), Commission: f(st.Commission), Net: f(st.Net), Lines: make([]payoutLineJSON, len(st.Lines))}
	for i, l := range st.Lines {
		out.Lines[i] = payoutLineJSON{Invoice: strconv.FormatInt(l.InvoiceID, 10), InvoiceLine: strconv.FormatInt(l.InvoiceLineID, 10),
			Organization: l.Organization, Installation: l.InstallationUUID, Plan: toPlanRefJSON(l.Plan), Kind: l.Kind,
			Period: marketplace.FormatPeriod(l.Period), DatePaid: l.PaidAt, CommissionPct: marketplace.FormatCommission(l.CommissionBps),
			Gross: f(l.Gross), Commission: f(l.Commission), Net: f(l.Net)}
	}
	return out
}

func (s *Server) listPayouts(c echo.Context) error {
	var period time.Time
	if v := c.QueryParam("period"); v != "" {
		p, err := marketplace.ParsePeriod(v)
		if err != nil {
			return err
		}
		period = p
	}
	list, err := s.opts.Revenue.Payouts(c.Request().Context(), actor(c), c.Param("app_slug"), period)
	if err != nil {
		return err
	}
	out := make([]payoutJSON, len(list))
	for i, st := range list {
		out[i] = toPayoutJSON(st)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getCommission(c echo.Context) error {
	cv, err := s.opts.Revenue.Commission(c.Request().Context(), actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCommissionJSON(c.Param("app_slug"), cv))
}

func (s *Server) setCommission(c echo.Context) error {
	var in struct {
		Commission json.RawMessage `json:"commission"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	var percent *string
	switch raw := string(in.Commission); {
	case raw == "":
		return fault.Field("commission", `is required: a percentage such as "12.5", or null for the platform's default`)
	case raw != "null":
		var p string
		if err := json.Unmarshal(in.Commission, &p); err != nil {
			return fault.Field("commission", `must be a string such as "12.5", or null for the platform's default`)
		}
		percent = &p
	}
	cv, err := s.opts.Revenue.SetCommission(c.Request().Context(), actor(c), c.Param("app_slug"), percent)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCommissionJSON(c.Param("app_slug"), cv))
}
