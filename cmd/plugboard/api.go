package main

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/cmd/platform"
	sdk "github.com/plugboard/plugboard/sdk/plugboard"
)

// apiFlags are --api and --token, the commands that call a running platform
// with a personal API token (listen, deliveries, trigger).
type apiFlags struct {
	base  string
	token string
}

// errNoToken is what a command says when it has no token to call with.
var errNoToken = errors.New("no API token: pass --token or set PLUGBOARD_API_TOKEN (create one with POST /api/0/api-tokens/)")

// addAPIFlags adds --api and --token, defaulting to PLUGBOARD_API_URL and
// PLUGBOARD_API_TOKEN.
func addAPIFlags(fs interface {
	StringVar(p *string, name, value, usage string)
}, getenv env) *apiFlags {
	f := &apiFlags{}
	base, _ := getenv("PLUGBOARD_API_URL")
	if base == "" {
		base = "http://localhost:8080"
	}
	token, _ := getenv("PLUGBOARD_API_TOKEN")
	fs.StringVar(&f.base, "api", base, "the platform's URL (PLUGBOARD_API_URL)")
	fs.StringVar(&f.token, "token", token, "a personal API token, pbu_… (PLUGBOARD_API_TOKEN); make one with POST /api/0/api-tokens/")
	return f
}

// client is the SDK's client for --api with --token. Its HTTP client has no
// timeout: a command waits as long as the platform takes, as curl would.
func (f *apiFlags) client() (*sdk.Client, error) {
	if f.token == "" {
		return nil, errNoToken
	}
	c, err := sdk.NewClient(f.base, sdk.WithToken(f.token), sdk.WithHTTPClient(&http.Client{}),
		sdk.WithUserAgent("plugboard-cli/"+platform.Version))
	if err != nil {
		return nil, fmt.Errorf("--api: %w", err)
	}
	return c, nil
}

// cliError is an error as the CLI words it: an API error as "STATUS
// CODE: DETAIL" and the domain error of an operator command as its
// message, each followed by its field problems (see problemText); a failed
// request as net/http says it, a closed delivery stream as the platform
// shutting down, the rest as it is.
func cliError(err error) error {
	var apiErr *sdk.APIError
	var urlErr *url.Error
	var fe *fault.Error
	switch {
	case errors.As(err, &apiErr):
		return &problemError{apiErr}
	case errors.As(err, &fe) && fe.Kind != fault.KindInternal:
		return &domainError{fault: fe}
	case errors.As(err, &urlErr):
		return urlErr
	case errors.Is(err, sdk.ErrStreamClosed):
		return errors.New("the platform is shutting down")
	}
	return err
}

// problemError is an API error, worded for the command line.
type problemError struct{ *sdk.APIError }

func (e *problemError) Error() string {
	code, detail := e.Code, e.Detail
	if code == "" {
		code, detail = "error", strings.TrimSpace(string(e.Body))
	}
	return fmt.Sprintf("%d %s: %s", e.Status, code, problemText(detail, e.Fields))
}

func (e *problemError) Unwrap() error { return e.APIError }

// domainError is an error of the marketplace's services (what an operator
// command such as users create gets), worded like problemError without
// the HTTP status: fault.Error's own text repeats the field problems after
// the message on one line.
type domainError struct{ fault *fault.Error }

func (e *domainError) Error() string { return problemText(e.fault.Message, e.fault.Fields) }

func (e *domainError) Unwrap() error { return e.fault }

// problemText is a problem's detail, then each field problem on a line of
// its own, "  - field: problem", by field name. A field problem the detail
// already says (the detail names the field and contains the problem, as
// "That email is already taken." does email's "is already taken") is left
// out: it would only say it twice.
func problemText(detail string, fields map[string]string) string {
	var b strings.Builder
	b.WriteString(detail)
	lower := strings.ToLower(detail)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		msg := fields[k]
		if strings.Contains(lower, strings.ToLower(k)) && strings.Contains(lower, strings.ToLower(msg)) {
			continue
		}
		fmt.Fprintf(&b, "\n  - %s: %s", k, msg)
	}
	return b.String()
}
