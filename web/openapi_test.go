package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/plugboard/plugboard/web"
)

// openAPI is the document and its validator, built once for all tests.
var openAPI struct {
	once      sync.Once
	err       error
	raw       []byte
	doc       libopenapi.Document
	model     *v3.Document
	validator validator.Validator
	problem   *base.Schema
	schemas   schema_validation.SchemaValidator
}

func loadOpenAPI() error {
	openAPI.once.Do(func() {
		raw, err := web.OpenAPIJSON()
		if err != nil {
			openAPI.err = fmt.Errorf("converting openapi.yaml to JSON: %w", err)
			return
		}
		doc, err := libopenapi.NewDocument(raw)
		if err != nil {
			openAPI.err = fmt.Errorf("parsing the OpenAPI document: %w", err)
			return
		}
		m, err := doc.BuildV3Model()
		if err != nil {
			openAPI.err = fmt.Errorf("building the OpenAPI model: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
		if len(errs) > 0 {
			openAPI.err = fmt.Errorf("building the OpenAPI validator: %v", errs)
			return
		}
		var problem *base.Schema
		if m.Model.Components != nil && m.Model.Components.Schemas != nil {
			if p := m.Model.Components.Schemas.GetOrZero("Problem"); p != nil {
				problem = p.Schema()
			}
		}
		if problem == nil {
			openAPI.err = fmt.Errorf("the OpenAPI document has no components.schemas.Problem")
			return
		}
		openAPI.raw, openAPI.doc, openAPI.model, openAPI.validator, openAPI.problem = raw, doc, &m.Model, v, problem
		openAPI.schemas = schema_validation.NewSchemaValidatorWithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	return openAPI.err
}

// validateOpenAPI checks one request and its response against the OpenAPI
// document. reqBody and resBody are the bodies' bytes (req.Body and res.Body
// are consumed by then). The request is validated only when the server
// accepted it (status < 400), since tests send invalid input on purpose; the
// response always is. Paths outside /api/0/ and documentedOutsideAPI are
// skipped.
func validateOpenAPI(t testing.TB, req *http.Request, reqBody []byte, res *http.Response, resBody []byte) {
	t.Helper()
	if req == nil || res == nil || req.URL == nil {
		return
	}
	p := req.URL.Path
	if !strings.HasPrefix(p, "/api/0/") && !documentedOutsideAPI[p] {
		return
	}
	if err := loadOpenAPI(); err != nil {
		t.Errorf("OpenAPI: %v", err)
		return
	}
	// The server answers /api/0/x as /api/0/x/; the document has the latter.
	if strings.HasPrefix(p, "/api/0/") && !strings.HasSuffix(p, "/") && !strings.HasSuffix(p, ".json") {
		p += "/"
	}
	r := req.Clone(req.Context())
	r.URL.Path, r.URL.RawPath = p, ""
	// A client's transport may add credentials to a copy of req; the
	// response carries the request as it was sent.
	if sent := res.Request; sent != nil && sent != req && sent.Method == req.Method && sent.URL != nil && sent.URL.Path == req.URL.Path {
		r.Header = sent.Header.Clone()
	}
	if len(reqBody) > 0 {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(reqBody)), int64(len(reqBody))
	} else {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	resp := *res
	resp.Request = r
	resp.Body = io.NopCloser(bytes.NewReader(resBody))

	report := func(what string, errs []*liberrors.ValidationError) {
		t.Helper()
		for _, e := range errs {
			var details []string
			for _, f := range e.SchemaValidationErrors {
				if f.FieldPath != "" {
					details = append(details, fmt.Sprintf("%s: %s", f.FieldPath, f.Reason))
				} else {
					details = append(details, f.Reason)
				}
			}
			msg := fmt.Sprintf("OpenAPI %s: %s %s (%d): %s: %s", what, req.Method, req.URL.Path, res.StatusCode, e.Message, e.Reason)
			if len(details) > 0 {
				msg += "\n\t" + strings.Join(details, "\n\t")
			}
			t.Errorf("%s", msg)
		}
	}

	// A route the document does not describe may only be refused, with a
	// problem document.
	if item, errs, _ := paths.FindPath(r, openAPI.model, nil); item == nil || len(errs) > 0 {
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("OpenAPI: %s %s answered %d but the document has no such operation", req.Method, req.URL.Path, res.StatusCode)
			return
		}
		if req.Method == http.MethodHead {
			return
		}
		if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/problem+json" {
			t.Errorf("OpenAPI response: %s %s (%d): content type %q, want application/problem+json", req.Method, req.URL.Path, res.StatusCode, res.Header.Get("Content-Type"))
			return
		}
		if ok, errs := openAPI.schemas.ValidateSchemaBytes(openAPI.problem, resBody); !ok {
			report("response", errs)
		}
		return
	}

	if res.StatusCode < 400 {
		if ok, errs := openAPI.validator.ValidateHttpRequestSync(r); !ok {
			report("request", errs)
		}
	}
	if ok, errs := openAPI.validator.ValidateHttpResponse(r, &resp); !ok {
		report("response", errs)
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	info := openAPI.doc.GetSpecInfo()
	if !strings.HasPrefix(info.Version, "3.1.") {
		t.Errorf("openapi version %q, want 3.1.x", info.Version)
	}
	if ok, errs := openAPI.validator.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
			for _, f := range e.SchemaValidationErrors {
				t.Errorf("\t%s: %s", f.FieldPath, f.Reason)
			}
		}
	}

	// Every operation is described well enough to be read and generated from.
	ids := map[string]string{}
	for path, item := range openAPI.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := strings.ToUpper(method) + " " + path
			if op.OperationId == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, ok := ids[op.OperationId]; ok {
				t.Errorf("%s: operationId %s is also %s", where, op.OperationId, prev)
			}
			ids[op.OperationId] = where
			if op.Summary == "" || op.Description == "" || len(op.Tags) == 0 {
				t.Errorf("%s: needs a summary, a description and tags", where)
			}
			if op.Responses == nil || op.Responses.Codes == nil || op.Responses.Codes.Len() == 0 {
				t.Errorf("%s: no responses", where)
			}
		}
	}
}

// documentedOutsideAPI are the paths outside /api/0/ the document
// describes: the probes, OpenID Connect's (oidc.go) and introspection (introspect.go).
var documentedOutsideAPI = map[string]bool{
	"/healthz": true, "/readyz": true, "/.well-known/openid-configuration": true, "/oauth/userinfo": true, "/oauth/introspect": true,
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func TestOpenAPICoversEveryRoute(t *testing.T) {
	if err := loadOpenAPI(); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI.raw, &doc); err != nil {
		t.Fatal(err)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			if !slices.Contains(methods, key) {
				continue
			}
			if key == "patch" {
				t.Errorf("PATCH %s: the API updates with PUT, never PATCH", path)
			}
			documented[strings.ToUpper(key)+" "+path] = true
		}
	}

	srv := web.New(web.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	routed := map[string]bool{}
	for _, r := range srv.Echo().Routes() {
		if !slices.Contains(methods, strings.ToLower(r.Method)) {
			continue // echo_route_any and other non-standard methods
		}
		if !strings.HasPrefix(r.Path, "/api/0/") && !documentedOutsideAPI[r.Path] {
			continue
		}
		routed[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(routed) == 0 {
		t.Fatal("the router has no /api/0/ routes")
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, k := range missing {
		t.Errorf("routed but not documented: %s", k)
	}
	for _, k := range extra {
		t.Errorf("documented but not routed: %s", k)
	}
}

func TestOpenAPIServed(t *testing.T) {
	srv := web.New(web.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/api/0/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("content type %q, want application/json", res.Header.Get("Content-Type"))
	}
	// The document's version only; libopenapi parses the rest below.
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	if _, err := libopenapi.NewDocument(body); err != nil {
		t.Errorf("served document does not parse: %v", err)
	}
	validateOpenAPI(t, req, nil, res, body)
}
