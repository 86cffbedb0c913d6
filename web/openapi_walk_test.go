package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/plugboard/plugboard/config"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// walkSeed makes the walk reproducible; PLUGBOARD_WALK_SEED replays another.
const walkSeed = 14

// walkInputs is how many inputs each operation gets per credential: the
// first valid (the document's examples, the fixture's IDs), the rest each
// with one generated fault.
const walkInputs = 10

// walkSlow is the slowest answer the walk accepts.
const walkSlow = time.Second

// TestOpenAPIWalk walks every operation of the served OpenAPI document with
// valid and generated invalid inputs (path and query parameters, bodies
// made from the schemas) under each kind of credential, against the real
// platform seeded by newTenants, and fails on any 5xx, any status the
// operation does not document, any body that does not match the documented
// schema (problem documents against Problem) and any answer slower than
// walkSlow. Operations that end what later ones need (a credential, the
// installation) run last.
func TestOpenAPIWalk(t *testing.T) {
	seed := uint64(walkSeed)
	if s := os.Getenv("PLUGBOARD_WALK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PLUGBOARD_WALK_SEED: %v", err)
		}
		seed = n
	}
	if err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	// Budgets the walk's few thousand requests from one address never
	// spend: it is there to reach the handlers (429 is tested on its own).
	w := newTenants(t, func(c *config.Config) {
		c.APIRateLimitAnonymous, c.APIRateLimitUser, c.APIRateLimitInstallation = 1_000_000, 1_000_000, 1_000_000
		c.AuthRateLimitIP, c.AuthRateLimitAccount, c.AuthRateLimitClient = 1_000_000, 1_000_000, 1_000_000
	})
	doc := walkDocument(t, w.p.URL)
	g := &walkGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), doc: doc, w: w}
	creds := []walkCred{
		{"anonymous", nil},
		{"host service token", bearerAuth(w.hostToken)},
		{"installation token", bearerAuth(w.instTokenA)},
		{"app credentials", func(r *http.Request) { r.SetBasicAuth(w.clientIDA, w.secretA) }},
		{"operator", bearerAuth(w.op.token)},
		{"user", bearerAuth(w.userTokenA)},
	}
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var failures []string
	statuses := map[int]int{}
	requests := 0
	started := time.Now()
	for _, op := range walkOperations(doc) {
		for _, cred := range creds {
			for i := range walkInputs {
				in := g.input(op, i == 0)
				got := walkSend(t, hc, w.p.URL, op.method, in, cred)
				requests++
				statuses[got.status]++
				for _, f := range walkCheck(op, in, got) {
					failures = append(failures, fmt.Sprintf("%s %s [%s] %s: %d: %s", op.method, op.path, cred.name, in.what, got.status, f))
				}
				if op.method == http.MethodGet && i == 0 {
					// HEAD is GET without the body.
					head := walkSend(t, hc, w.p.URL, http.MethodHead, in, cred)
					requests++
					again := walkSend(t, hc, w.p.URL, op.method, in, cred)
					requests++
					if head.status != again.status || len(head.body) > 0 || head.elapsed > walkSlow {
						failures = append(failures, fmt.Sprintf("HEAD %s [%s] %s: %d with %d bytes in %v, GET %d", op.path, cred.name, in.what, head.status, len(head.body), head.elapsed, again.status))
					}
				}
			}
		}
	}
	t.Logf("seed %d: %d requests in %v; statuses %v", seed, requests, time.Since(started).Round(time.Millisecond), statuses)
	if len(failures) > 0 {
		sort.Strings(failures)
		for i, f := range failures {
			if i == 300 {
				t.Errorf("… and %d more", len(failures)-i)
				break
			}
			t.Error(f)
		}
		t.Errorf("%d of %d requests did not keep the document (seed %d; replay with PLUGBOARD_WALK_SEED=%d)", len(failures), requests, seed, seed)
	}
}

type walkCred struct {
	name string
	set  func(*http.Request)
}

func bearerAuth(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// walkOp is one operation of the document.
type walkOp struct {
	method, path string
	rank         int // the order it runs in: reads, writes, deletes, the ends of what others need
	params       []map[string]any
	body         map[string]any // the request body's schema, nil for none
	examples     []any          // the body's examples
	model        *v3.Operation
}

// walkDocument is the document the server serves, as plain JSON values.
func walkDocument(t *testing.T, base string) map[string]any {
	t.Helper()
	res, err := http.Get(base + "/api/0/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		t.Fatalf("the served document: %v", err)
	}
	return doc
}

// resolve follows $ref to what it names.
func resolve(doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

// enders are the operations that end what the others need: the app's
// client secret, the installation (and its token), the app, the
// organization, and the user's session, in that order, after every other.
var enders = []string{
	"POST /api/0/apps/{app_slug}/rotate-secret/",
	"DELETE /api/0/installations/{uuid}/",
	"DELETE /api/0/apps/{app_slug}/",
	"DELETE /api/0/organizations/{org}/",
	"DELETE /api/0/auth/",
}

func walkOperations(doc map[string]any) []walkOp {
	var ops []walkOp
	for path, item := range doc["paths"].(map[string]any) {
		item := item.(map[string]any)
		for _, method := range []string{"get", "post", "put", "delete"} {
			raw, ok := item[method].(map[string]any)
			if !ok {
				continue
			}
			op := walkOp{method: strings.ToUpper(method), path: path}
			for _, p := range append(asList(item["parameters"]), asList(raw["parameters"])...) {
				op.params = append(op.params, resolve(doc, p))
			}
			rb := resolve(doc, raw["requestBody"])
			content, _ := rb["content"].(map[string]any)
			// Only JSON bodies are generated; a form body (userinfo's
			// access_token) is optional and the walk sends none.
			if mt, ok := content["application/json"].(map[string]any); ok {
				op.body = resolve(doc, mt["schema"])
				op.examples = asList(op.body["examples"])
				if ex, ok := mt["example"]; ok {
					op.examples = append(op.examples, ex)
				}
			}
			switch op.method {
			case http.MethodGet:
				op.rank = 0
			case http.MethodDelete:
				op.rank = 2
			default:
				op.rank = 1
			}
			for i, e := range enders {
				if e == op.method+" "+path {
					op.rank = 3 + i
				}
			}
			op.model = openAPI.model.Paths.PathItems.GetOrZero(path).GetOperations().GetOrZero(method)
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].rank != ops[j].rank {
			return ops[i].rank < ops[j].rank
		}
		return ops[i].method+ops[i].path < ops[j].method+ops[j].path
	})
	return ops
}

func asList(v any) []any { l, _ := v.([]any); return l }

// walkInput is one request: the path with its parameters in, the raw
// query, the body, and what makes it what it is, for the report.
type walkInput struct {
	what        string
	path        string
	query       string
	body        []byte
	contentType string
}

type walkGen struct {
	r   *rand.Rand
	doc map[string]any
	w   *tenants
}

// Strings a client may send where text goes: valid for a plain string,
// odd for most others. invalidUTF8 is replaced by a raw 0xff byte once
// encoded.
const invalidUTF8 = "\u0001ff\u0001"

var walkStrings = []string{"", " ", "°", "日本語", "🙂", "a\u0000b", "\u0000", invalidUTF8, "<script>alert(1)</script>", "../../etc/passwd",
	"' OR 1=1 --", strings.Repeat("x", 5000), "%", "\u202e", "null"}

var walkNumbers = []any{-1, 0, 1.5, 1e20, json.Number("9223372036854775808"), json.Number("-9223372036854775809")}

// Path values that name nothing, or nothing well-formed (escaped).
var walkPathValues = []string{"nothing", "%C2%B0", "%00", "%ff", "-1", "0", "99999999999999999999", strings.Repeat("a", 300), "%20", "a%2Fb", "..", "%E2%80%AE"}

// Query values (escaped).
var walkQueryValues = []string{"%00", "%ff", "", "%C2%B0", "-1", "0", "99999999999999999999", "abc", strings.Repeat("q", 3000), "2026-13-45T99:00:00Z", "true", "%5B%5D"}

// pathValue is the fixture's ID for a path parameter.
func (g *walkGen) pathValue(path, name string) string {
	switch name {
	case "org":
		return g.w.orgA
	case "app_slug":
		return g.w.appA.ID
	case "plan_slug":
		return g.w.planA
	case "uuid":
		return g.w.instA
	case "delivery_id":
		return g.w.deliveryA
	case "member_id":
		return g.w.memberA
	case "invoice_id":
		return g.w.invoiceA
	case "token_id":
		if strings.Contains(path, "service-tokens") {
			return g.w.serviceTokenID
		}
		return g.w.apiTokenA
	}
	return "unknown-" + name
}

// validQuery is a value the parameter's schema allows.
func (g *walkGen) validQuery(name string, schema map[string]any) (string, bool) {
	switch name {
	case "installation":
		return g.w.instA, true
	case "cursor":
		return "", false // only the API makes cursors
	}
	if enum := asList(schema["enum"]); len(enum) > 0 {
		return fmt.Sprint(enum[g.r.IntN(len(enum))]), true
	}
	if ex := asList(schema["examples"]); len(ex) > 0 {
		return fmt.Sprint(ex[g.r.IntN(len(ex))]), true
	}
	if d, ok := schema["default"]; ok {
		return fmt.Sprint(d), true
	}
	if items := resolve(g.doc, schema["items"]); items != nil {
		return g.validQuery(name, items)
	}
	return "", false
}

func (g *walkGen) pick(l []string) string { return l[g.r.IntN(len(l))] }

// input makes one request for op: valid, or with one generated fault.
func (g *walkGen) input(op walkOp, valid bool) walkInput {
	in := walkInput{what: "valid"}
	path := op.path
	var pathParams []string
	query := url.Values{}
	var queryNames []string
	for _, p := range op.params {
		name := p["name"].(string)
		switch p["in"] {
		case "path":
			pathParams = append(pathParams, name)
		case "query":
			queryNames = append(queryNames, name)
			if v, ok := g.validQuery(name, resolve(g.doc, p["schema"])); ok && (valid || g.r.IntN(2) == 0) {
				query.Set(name, v)
			}
		}
	}
	values := map[string]string{}
	for _, name := range pathParams {
		values[name] = url.PathEscape(g.pathValue(op.path, name))
	}
	var body any
	if op.body != nil && len(op.examples) > 0 {
		body = clone(op.examples[g.r.IntN(len(op.examples))])
	}
	in.contentType = "application/json"
	rawQuery := ""
	if !valid {
		var faults []func()
		if len(pathParams) > 0 {
			faults = append(faults, func() {
				name := pathParams[g.r.IntN(len(pathParams))]
				v := g.pick(walkPathValues)
				values[name] = v
				in.what = fmt.Sprintf("path %s=%q", name, trim(v))
			})
		}
		if len(queryNames) > 0 {
			faults = append(faults, func() {
				name := queryNames[g.r.IntN(len(queryNames))]
				v := g.pick(walkQueryValues)
				query.Del(name)
				rawQuery = url.QueryEscape(name) + "=" + v
				in.what = fmt.Sprintf("query %s=%q", name, trim(v))
			})
		}
		if op.body != nil {
			faults = append(faults, func() { body, in.what = g.badBody(op, body) })
			faults = append(faults, func() { body, in.what = g.badBody(op, body) })
			faults = append(faults, func() { in.contentType, in.what = "", "no Content-Type" })
		}
		if len(faults) > 0 {
			faults[g.r.IntN(len(faults))]()
		} else {
			in.what = "valid (nothing to vary)"
		}
	}
	for _, name := range pathParams {
		path = strings.ReplaceAll(path, "{"+name+"}", values[name])
	}
	in.path = path
	in.query = query.Encode()
	if rawQuery != "" {
		if in.query != "" {
			in.query += "&"
		}
		in.query += rawQuery
	}
	if op.body != nil {
		switch b := body.(type) {
		case rawBody:
			in.body = []byte(b)
		default:
			in.body, _ = json.Marshal(b)
			in.body = bytes.ReplaceAll(in.body, []byte(invalidUTF8), []byte{0xff})
			in.body = bytes.ReplaceAll(in.body, []byte(`\u0001ff\u0001`), []byte{0xff})
		}
	}
	return in
}

// rawBody is sent as it is.
type rawBody string

// badBody changes the valid body one way.
func (g *walkGen) badBody(op walkOp, body any) (any, string) {
	obj, _ := body.(map[string]any)
	props := resolveProps(g.doc, op.body)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	switch k := g.r.IntN(10); {
	case k == 0:
		return rawBody("null"), "body null"
	case k == 1:
		v := g.pick([]string{`[]`, `"x"`, `42`, `true`, `{"a":`, `{} {}`, "\xff", `{"name":"\u0000"}`})
		return rawBody(v), fmt.Sprintf("body %q", v)
	case k == 2 && obj != nil:
		req := asList(op.body["required"])
		if len(req) > 0 {
			n := req[g.r.IntN(len(req))].(string)
			delete(obj, n)
			return obj, "without required " + n
		}
		fallthrough
	case k == 3 && obj != nil:
		obj["unknownMember"] = "x"
		return obj, "with an unknown member"
	case obj != nil && len(names) > 0:
		n := names[g.r.IntN(len(names))]
		v, what := g.badValue(resolve(g.doc, props[n]))
		obj[n] = v
		return obj, fmt.Sprintf("%s=%s", n, what)
	}
	return rawBody(`{`), "body {"
}

// badValue is a value of the wrong type, or an edge of the right one.
func (g *walkGen) badValue(schema map[string]any) (any, string) {
	typ, _ := schema["type"].(string)
	if typ == "" {
		if l := asList(schema["type"]); len(l) > 0 {
			typ, _ = l[0].(string)
		}
	}
	switch g.r.IntN(3) {
	case 0: // the wrong type
		wrong := []any{42, true, map[string]any{}, []any{}, "x", nil}
		v := wrong[g.r.IntN(len(wrong))]
		return v, fmt.Sprintf("%#v", v)
	case 1: // an edge number
		v := walkNumbers[g.r.IntN(len(walkNumbers))]
		return v, fmt.Sprint(v)
	}
	switch typ {
	case "array":
		s := g.pick(walkStrings)
		return []any{s, s}, fmt.Sprintf("[%q, …]", trim(s))
	case "object":
		return map[string]any{g.pick(walkStrings): g.pick(walkStrings)}, "an object of odd strings"
	}
	s := g.pick(walkStrings)
	return s, strconv.Quote(trim(s))
}

func resolveProps(doc map[string]any, schema map[string]any) map[string]any {
	props, _ := schema["properties"].(map[string]any)
	out := map[string]any{}
	for k, v := range props {
		out[k] = v
	}
	for _, sub := range asList(schema["allOf"]) {
		for k, v := range resolveProps(doc, resolve(doc, sub)) {
			out[k] = v
		}
	}
	return out
}

func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func trim(s string) string {
	if len(s) > 24 {
		return s[:24] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// walkResult is what came back.
type walkResult struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
	elapsed     time.Duration
	err         error
}

func walkSend(t *testing.T, hc *http.Client, base, method string, in walkInput, cred walkCred) walkResult {
	t.Helper()
	u := base + in.path
	if in.query != "" {
		u += "?" + in.query
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if in.body != nil && method != http.MethodHead && method != http.MethodGet {
		body = bytes.NewReader(in.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		// A URL the client itself refuses to send is no finding.
		return walkResult{status: -1, err: err}
	}
	if body != nil && in.contentType != "" {
		req.Header.Set("Content-Type", in.contentType)
	}
	if cred.set != nil {
		cred.set(req)
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return walkResult{status: -2, err: err, elapsed: time.Since(start)}
	}
	defer res.Body.Close()
	out := walkResult{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), header: res.Header}
	if strings.HasPrefix(out.contentType, "text/event-stream") {
		out.elapsed = time.Since(start) // a stream does not end: its headers are the answer
		return out
	}
	out.body, err = io.ReadAll(res.Body)
	out.elapsed = time.Since(start)
	if err != nil {
		out.err = err
	}
	return out
}

var problemType = regexp.MustCompile(`^/docs/problems#[a-z_]+$`)

// walkCheck lists what is wrong with the answer to in.
func walkCheck(op walkOp, in walkInput, got walkResult) []string {
	switch got.status {
	case -1:
		return nil
	case -2:
		return []string{fmt.Sprintf("no answer after %v: %v", got.elapsed.Round(time.Millisecond), got.err)}
	}
	var out []string
	if got.status >= 500 {
		out = append(out, fmt.Sprintf("server error: %.300s", got.body))
	}
	if got.elapsed > walkSlow {
		out = append(out, fmt.Sprintf("took %v", got.elapsed.Round(time.Millisecond)))
	}
	if got.err != nil {
		out = append(out, "reading the body: "+got.err.Error())
	}
	if op.model == nil || op.model.Responses == nil {
		return append(out, "no operation in the model")
	}
	resp := op.model.Responses.Codes.GetOrZero(strconv.Itoa(got.status))
	if resp == nil {
		resp = op.model.Responses.Default
	}
	if resp == nil {
		return append(out, fmt.Sprintf("status not documented: %.300s", got.body))
	}
	if resp.Headers != nil {
		for name, h := range resp.Headers.FromOldest() {
			if h.Required && got.header.Get(name) == "" {
				out = append(out, fmt.Sprintf("no %s header, which the document requires for %d", name, got.status))
			}
		}
	}
	mt, _, _ := mime.ParseMediaType(got.contentType)
	if resp.Content == nil || resp.Content.Len() == 0 {
		if len(got.body) > 0 {
			out = append(out, fmt.Sprintf("documented without a body, got %q: %.200s", got.contentType, got.body))
		}
		return out
	}
	media := resp.Content.GetOrZero(mt)
	if media == nil {
		return append(out, fmt.Sprintf("content type %q not documented for %d: %.200s", got.contentType, got.status, got.body))
	}
	if mt == "text/event-stream" || media.Schema == nil {
		return out
	}
	schema := media.Schema.Schema()
	if ok, errs := openAPI.schemas.ValidateSchemaBytes(schema, got.body); !ok {
		for _, e := range errs {
			msg := e.Message + ": " + e.Reason
			for _, f := range e.SchemaValidationErrors {
				msg += fmt.Sprintf("; %s: %s", f.FieldPath, f.Reason)
			}
			out = append(out, fmt.Sprintf("body does not match the schema: %s: %.300s", msg, got.body))
		}
	}
	if mt == "application/problem+json" {
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(got.body, &p); err != nil || p.Status != got.status || !problemType.MatchString(p.Type) {
			out = append(out, fmt.Sprintf("problem document says status %d, type %q: %.200s", p.Status, p.Type, got.body))
		}
	}
	return out
}

// TestWalkCheckCatches proves the walk's judge: an undocumented status, a
// body off its schema, a missing required header and a slow answer are
// each reported; a documented problem is not.
func TestWalkCheckCatches(t *testing.T) {
	if err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	var op walkOp
	for _, o := range walkOperations(walkDocumentFromRaw(t)) {
		if o.method == "GET" && o.path == "/api/0/users/me/" {
			op = o
		}
	}
	problem := `{"type":"/docs/problems#not_authenticated","title":"Unauthorized","status":401,"code":"not_authenticated","requestId":"x"}`
	hdr := func() http.Header {
		h := http.Header{}
		h.Set("X-Request-Id", "x")
		h.Set("WWW-Authenticate", `Bearer realm="plugboard"`)
		return h
	}
	for _, tc := range []struct {
		name string
		got  walkResult
		bad  bool
	}{
		{"documented problem", walkResult{status: 401, contentType: "application/problem+json", header: hdr(), body: []byte(problem)}, false},
		{"undocumented status", walkResult{status: 418, contentType: "application/problem+json", header: hdr(), body: []byte(problem)}, true},
		{"server error", walkResult{status: 500, contentType: "application/problem+json", header: hdr(), body: []byte(problem)}, true},
		{"body off its schema", walkResult{status: 200, contentType: "application/json", header: hdr(), body: []byte(`{"id":7}`)}, true},
		{"problem off Problem", walkResult{status: 401, contentType: "application/problem+json", header: hdr(), body: []byte(`{"status":401}`)}, true},
		{"undocumented content type", walkResult{status: 401, contentType: "text/html", header: hdr(), body: []byte("<p>no</p>")}, true},
		{"no X-Request-Id", walkResult{status: 401, contentType: "application/problem+json", header: http.Header{"Www-Authenticate": {"Bearer"}}, body: []byte(problem)}, true},
		{"slow", walkResult{status: 401, contentType: "application/problem+json", header: hdr(), body: []byte(problem), elapsed: 2 * time.Second}, true},
	} {
		if got := walkCheck(op, walkInput{}, tc.got); (len(got) > 0) != tc.bad {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

func walkDocumentFromRaw(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPI.raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
