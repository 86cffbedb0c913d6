// Package fault is Plugboard's one error model: the coded errors that domain
// packages (marketplace, webhooks) and web return, and the registry of every
// code they may carry (codes.go), which /docs/problems is generated from.
//
// An *Error has a Kind (how it is answered: 400, 403, 409, an RFC 6749 OAuth
// error, …), a registered Code (stable on the wire; partners code against
// it), a message safe to show, per-field messages for invalid input and
// optional details (extension members such as the live installation of an
// already_installed conflict). web maps every *Error to a problem document,
// or to an RFC 6749 body on the OAuth endpoints, in one place (web/errors.go).
//
// Every package may import fault; fault imports nothing of Plugboard.
package fault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind classifies an error; web answers each kind with one HTTP status,
// except KindOAuth, whose status is its code's (Lookup).
type Kind int

// The kinds of error.
const (
	KindInternal     Kind = iota
	KindInvalid           // the input is wrong: 400
	KindUnauthorized      // no or bad credentials: 401
	KindForbidden         // known caller without the right: 403
	KindNotFound          // absent, or hidden from this caller: 404
	KindConflict          // clashes with existing state: 409
	KindUnavailable       // a dependency is down: 503
	KindOAuth             // an RFC 6749 error; Code is its error code (invalid_grant, …)
	KindRateLimited       // past a rate limit: 429, with Retry-After
)

// DetailRetryAfter, in an error's Details, is how long the caller should
// wait before trying again (a time.Duration); web sends it as Retry-After
// and never as an extension member.
const DetailRetryAfter = "retryAfter"

// Error is a coded error with a message safe to show.
type Error struct {
	Kind    Kind
	Code    Code              // registered in codes.go: "slug_taken"
	Message string            // safe to show to the caller; an OAuth error's error_description
	Fields  map[string]string // field (camelCase JSON path) → what is wrong
	Details map[string]any    // extension members for the caller: "installation" → the live one
	Err     error             // the cause, never shown
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind == KindOAuth {
		b.WriteString(string(e.Code))
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "; %s: %s", k, e.Fields[k])
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, fault.ErrNotFound) true for every not-found error,
// whatever its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == "" && t.Kind == e.Kind
}

// With returns e with details key set to v.
func (e *Error) With(key string, v any) *Error {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.Details[key] = v
	return e
}

// Sentinels for errors.Is: they match any error of their kind.
var (
	ErrNotFound = &Error{Kind: KindNotFound}
	ErrConflict = &Error{Kind: KindConflict}
)

// Invalid reports bad input; fields maps each bad field to its message.
func Invalid(code Code, msg string, fields map[string]string) *Error {
	return &Error{Kind: KindInvalid, Code: code, Message: msg, Fields: fields}
}

// Field reports one bad field.
func Field(field, msg string) *Error {
	return Invalid(InvalidInput, "The request has invalid fields.", map[string]string{field: msg})
}

// NotFound reports a missing resource, named for the caller ("app").
func NotFound(what string) *Error {
	return &Error{Kind: KindNotFound, Code: CodeNotFound, Message: fmt.Sprintf("The %s does not exist.", what)}
}

// Conflict reports a clash with existing state.
func Conflict(code Code, msg string) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: msg}
}

// Forbidden reports a caller without the right.
func Forbidden(code Code, msg string) *Error {
	return &Error{Kind: KindForbidden, Code: code, Message: msg}
}

// Unauthorized reports missing or bad credentials.
func Unauthorized(code Code, msg string) *Error {
	return &Error{Kind: KindUnauthorized, Code: code, Message: msg}
}

// Throttled reports a caller past a rate limit, who may try again after
// retryAfter.
func Throttled(msg string, retryAfter time.Duration) *Error {
	return (&Error{Kind: KindRateLimited, Code: RateLimited, Message: msg}).With(DetailRetryAfter, retryAfter)
}

// Busy reports that the server cannot take the request now (a dependency
// or a bounded resource is saturated); the caller may try again after
// retryAfter.
func Busy(msg string, retryAfter time.Duration) *Error {
	return (&Error{Kind: KindUnavailable, Code: Unavailable, Message: msg}).With(DetailRetryAfter, retryAfter)
}

// OAuth reports an RFC 6749 error: code is its error (InvalidGrant, …),
// desc its error_description.
func OAuth(code Code, desc string) *Error {
	return &Error{Kind: KindOAuth, Code: code, Message: desc}
}

// Fields collects field errors while validating input.
type Fields map[string]string

// Add records msg for field unless the field already has a message.
func (f Fields) Add(field, msg string) {
	if _, ok := f[field]; !ok {
		f[field] = msg
	}
}

// Check records msg for field when bad is true.
func (f Fields) Check(bad bool, field, msg string) {
	if bad {
		f.Add(field, msg)
	}
}

// Err returns an invalid-input error when any field was recorded, else nil.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return Invalid(InvalidInput, "The request has invalid fields.", f)
}

// As returns err's *Error, if it has one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Detail returns err's detail key as a T, if err is an *Error that has one.
func Detail[T any](err error, key string) (T, bool) {
	var zero T
	e, ok := As(err)
	if !ok {
		return zero, false
	}
	v, ok := e.Details[key].(T)
	return v, ok
}
