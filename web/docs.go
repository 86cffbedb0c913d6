package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"
)

//go:embed assets
var assets embed.FS

// assetHandler serves the embedded assets under /assets/.
func assetHandler() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	return http.StripPrefix("/assets/", http.FileServer(http.FS(sub)))
}

var apiDocsPage = []byte(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Plugboard API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin:0"><redoc spec-url="/api/0/openapi.json" hide-download-button="false"></redoc>
<script src="/assets/vendor/redoc/redoc.standalone.js"></script></body></html>`)

// apiDocs is GET /docs/api: the API reference, rendered from the OpenAPI
// document by Redoc (vendored, no CDN).
func (s *Server) apiDocs(c echo.Context) error {
	return c.HTMLBlob(http.StatusOK, apiDocsPage)
}

// problemCodes explains every stable error code; problem documents link
// here with type /docs/problems#<code>.
var problemCodes = map[string]string{
	"invalid_input":            "A field is missing or wrong; fields names each one and what is expected.",
	"malformed_json":           "The body is not one JSON value.",
	"unsupported_media_type":   "Send bodies as application/json.",
	"schema_mismatch":          "An event's data does not match its type's JSON Schema; fields names the failing paths.",
	"body_too_large":           "The body is larger than PLUGBOARD_HTTP_BODY_LIMIT.",
	"not_authenticated":        "Sign in, or send a token as Authorization: Bearer.",
	"unauthorized":             "Credentials are missing or wrong.",
	"rate_limited":             "Too many requests; wait as Retry-After says.",
	"unavailable":              "A dependency is down; try again shortly.",
	"timeout":                  "The request took too long; try again.",
	"invalid_token":            "The token is invalid, expired or revoked (signing out, uninstalling and rotating revoke).",
	"invalid_credentials":      "The email or password is wrong.",
	"invalid_client":           "The app's client id or secret is wrong.",
	"invalid_grant":            "The code or refresh token is unknown, expired, used, revoked, or was issued for another client or redirect URI.",
	"forbidden":                "The caller may not do this.",
	"insufficient_role":        "This needs a higher role in the organization.",
	"operator_only":            "Only operators do this.",
	"users_only":               "This route is for users, not app or installation credentials.",
	"app_only":                 "Only the app itself does this, with its credentials or the installation's token.",
	"missing_scope":            "The installation was not granted the scope this needs.",
	"installation_pending":     "The app has not verified the installation yet.",
	"not_found":                "Nothing is there, or the caller may not see it.",
	"method_not_allowed":       "The path does not take that method.",
	"conflict":                 "The request clashes with the current state.",
	"slug_taken":               "Another resource has that slug.",
	"email_taken":              "A user has that email.",
	"already_member":           "The user is already a member.",
	"already_installed":        "The app is installed in the organization already; the problem carries the installation.",
	"last_owner":               "An organization keeps at least one owner.",
	"last_plan":                "An app with plans keeps at least one.",
	"has_installations":        "Organizations still have the app installed.",
	"installation_not_live":    "The installation was deleted or failed.",
	"invalid_transition":       "The app's review status cannot change that way.",
	"not_public":               "Internal apps are neither reviewed nor listed.",
	"no_webhook_url":           "The app has no webhook URL.",
	"not_ready":                "A dependency (PostgreSQL or Redis) is unreachable.",
	"internal_error":           "Something failed on our side; the requestId finds it in our logs.",
	"app_credentials_required": "Use the app's own credentials, not an installation token.",
	"cross_origin":             "Cookie-authenticated changes must come from Plugboard's own pages.",
}

var problemsPage = template.Must(template.New("problems").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error codes · Plugboard API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
dt{font-family:ui-monospace,monospace;font-weight:600;margin-top:1rem}dt:target{background:#fff8c5}</style></head>
<body><h1>Error codes</h1><p>Every error is an RFC 9457 problem document: <code>type</code>, <code>title</code>,
<code>status</code>, <code>detail</code>, a stable <code>code</code>, the <code>requestId</code> and, for invalid
input, <code>fields</code>. See the <a href="/docs/api">API reference</a>.</p>
<dl>{{range .}}<dt id="{{.Code}}">{{.Code}}</dt><dd>{{.Text}}</dd>{{end}}</dl></body></html>`))

func (s *Server) problemsDoc(c echo.Context) error {
	type entry struct{ Code, Text string }
	var list []entry
	for code, text := range problemCodes {
		list = append(list, entry{code, text})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	return problemsPage.Execute(c.Response(), list)
}
