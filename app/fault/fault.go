// Package fault defines the coded errors that Plugboard's domain packages
// (marketplace, webhooks) return and that web maps to RFC 9457 problem
// documents in one place. It imports nothing of Plugboard and may be imported
// by every package.
package fault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Kind classifies an error; web maps each kind to one HTTP status.
type Kind int

// The kinds of domain error.
const (
	KindInternal     Kind = iota
	KindInvalid           // the input is wrong: 400
	KindUnauthorized      // no or bad credentials: 401
	KindForbidden         // known caller without the right: 403
	KindNotFound          // absent, or hidden from this caller: 404
	KindConflict          // clashes with existing state: 409
	KindGone              // existed, no longer: 410
	KindRateLimited       // too many requests: 429
	KindUnavailable       // a dependency is down: 503
)

// Error is a domain error with a stable machine code, a message safe to show,
// and per-field details for invalid input.
type Error struct {
	Kind    Kind
	Code    string            // stable, snake_case: "slug_taken"
	Message string            // safe to show to the caller
	Fields  map[string]string // field (camelCase JSON path) → what is wrong
	Err     error             // the cause, never shown
}

func (e *Error) Error() string {
	var b strings.Builder
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

// Sentinels for errors.Is: they match any error of their kind.
var (
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrUnauthorized = &Error{Kind: KindUnauthorized}
	ErrForbidden    = &Error{Kind: KindForbidden}
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrConflict     = &Error{Kind: KindConflict}
)

// Invalid reports bad input; fields maps each bad field to its message.
func Invalid(code, msg string, fields map[string]string) *Error {
	return &Error{Kind: KindInvalid, Code: code, Message: msg, Fields: fields}
}

// Field reports one bad field.
func Field(field, msg string) *Error {
	return Invalid("invalid_input", "The request has invalid fields.", map[string]string{field: msg})
}

// NotFound reports a missing resource, named for the caller ("app").
func NotFound(what string) *Error {
	return &Error{Kind: KindNotFound, Code: "not_found", Message: fmt.Sprintf("The %s does not exist.", what)}
}

// Conflict reports a clash with existing state.
func Conflict(code, msg string) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: msg}
}

// Forbidden reports a caller without the right.
func Forbidden(code, msg string) *Error {
	return &Error{Kind: KindForbidden, Code: code, Message: msg}
}

// Unauthorized reports missing or bad credentials.
func Unauthorized(code, msg string) *Error {
	return &Error{Kind: KindUnauthorized, Code: code, Message: msg}
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
	return Invalid("invalid_input", "The request has invalid fields.", f)
}

// As returns err's *Error, if it has one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
