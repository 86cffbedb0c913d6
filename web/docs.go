package web

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/fault"
)

//go:embed assets
var assets embed.FS

// assetHandler serves the embedded files under /assets/. Anything else
// there (a directory, a name that climbs out or is not a file, a bad
// escape) is the 404 problem every other missing path gets.
func assetHandler() echo.HandlerFunc {
	sub, _ := fs.Sub(assets, "assets")
	return func(c echo.Context) error {
		name, err := url.PathUnescape(c.Param("*"))
		if err != nil || !fs.ValidPath(name) {
			return echo.ErrNotFound
		}
		f, err := sub.Open(name)
		if err != nil {
			return echo.ErrNotFound
		}
		defer f.Close()
		st, err := f.Stat()
		rs, seekable := f.(io.ReadSeeker)
		if err != nil || st.IsDir() || !seekable {
			return echo.ErrNotFound
		}
		http.ServeContent(c.Response(), c.Request(), st.Name(), st.ModTime(), rs)
		return nil
	}
}

// apiDocsPage is the API reference: assets/docs.js has Redoc render the
// served OpenAPI document into #redoc, its styles carrying the nonce.
var apiDocsPage = template.Must(template.New("api").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Plugboard API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{{.}}">body{margin:0}</style></head>
<body><div id="redoc" data-spec-url="/api/0/openapi.json" data-nonce="{{.}}"></div>
<script src="/assets/vendor/redoc/redoc.standalone.js"></script>
<script src="/assets/docs.js"></script></body></html>`))

// apiDocs is GET /docs/api: the API reference, rendered from the OpenAPI
// document by Redoc (vendored, no CDN), under a policy that lets it run
// from here alone (docsCSP).
func (s *Server) apiDocs(c echo.Context) error {
	nonce := newNonce()
	docsHeaders(c, docsCSP(nonce))
	c.Response().WriteHeader(http.StatusOK)
	return apiDocsPage.Execute(c.Response(), nonce)
}

var problemsPage = template.Must(template.New("problems").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error codes · Plugboard API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{{.Nonce}}">body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
dt{font-family:ui-monospace,monospace;font-weight:600;margin-top:1.25rem}dt:target{background:#fff8c5}
dt a{color:inherit;text-decoration:none}.meta{color:#59636e;font-family:system-ui,sans-serif;font-weight:400}
dd{margin-left:1.5rem}dd strong{display:block}</style></head>
<body><h1>Error codes</h1><p>Every error is an RFC 9457 problem document: <code>type</code>, <code>title</code>,
<code>status</code>, <code>detail</code>, a stable <code>code</code>, the <code>requestId</code> and, for invalid
input, <code>fields</code>. Its <code>type</code> links to the code's entry below. The OAuth endpoints
(<code>/oauth/token</code>, <code>/oauth/revoke</code>) answer RFC 6749 errors as <code>{"error", "error_description"}</code>
instead. See the <a href="/docs/api">API reference</a>.</p>
<dl>{{range .Codes}}<dt id="{{.Code}}"><a href="#{{.Code}}">{{.Code}}</a> <span class="meta">{{.Status}}{{if .OAuth}} · OAuth (RFC 6749){{end}}</span></dt>
<dd><strong>{{.Title}}</strong>{{.Description}}</dd>
{{end}}</dl></body></html>`))

// problemsDoc is GET /docs/problems: every registered code (fault.Codes),
// each at the anchor problem documents' type links to.
func (s *Server) problemsDoc(c echo.Context) error {
	nonce := newNonce()
	docsHeaders(c, problemsCSP(nonce))
	c.Response().WriteHeader(http.StatusOK)
	return problemsPage.Execute(c.Response(), map[string]any{"Nonce": nonce, "Codes": fault.Codes()})
}
