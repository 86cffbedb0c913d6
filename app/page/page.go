// Package page is keyset pagination shared by the stores of marketplace and
// webhooks and by web, which turns pages into cursor query parameters and
// Link headers. It imports gorm and nothing of Plugboard.
package page

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"
)

// Default and maximum page sizes.
const (
	DefaultLimit = 25
	MaxLimit     = 100
)

// Cursor marks a position in a sorted list: the sort value and id of the
// last (or, for Prev, first) row seen, and the sort it was made for.
type Cursor struct {
	Value string `json:"v,omitempty"`
	ID    int64  `json:"i"`
	Prev  bool   `json:"p,omitempty"`
	// Incl includes the boundary row itself: the way back from an empty
	// page past either end starts at the row the empty page started after.
	Incl bool `json:"n,omitempty"`
	// Sort is the sort the cursor was made for (Sort.key): Query refuses
	// a cursor made for another, whose Value would mean something else.
	Sort string `json:"s,omitempty"`
}

// ErrBadCursor is returned for a cursor that was not made by a Codec with
// the same key: malformed, forged or tampered with.
var ErrBadCursor = errors.New("malformed cursor")

// ErrCursorSort is returned (by the query Query builds) for a cursor made
// for another sort. It is an ErrBadCursor too.
var ErrCursorSort = fmt.Errorf("%w: made for another sort order", ErrBadCursor)

// macSize is the length of a cursor's signature: 128 bits.
const macSize = 16

// Codec turns cursors into the opaque strings clients are given and back,
// signed with HMAC-SHA256 so that a client can only hand back a cursor it
// was given. Its key comes from the caller (web derives it from the
// platform's secret key); page imports nothing of Plugboard.
type Codec struct{ key []byte }

// NewCodec returns a codec signing with key.
func NewCodec(key []byte) Codec { return Codec{key: slices.Clone(key)} }

func (k Codec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write(payload)
	return m.Sum(nil)[:macSize]
}

// Encode returns the opaque form of c given to clients: its JSON and its
// signature, base64url, joined by a dot. A nil cursor is "".
func (k Codec) Encode(c *Cursor) string {
	if c == nil {
		return ""
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(k.mac(b))
}

// Decode parses a cursor made by Encode with the same key; "" is none.
func (k Codec) Decode(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	payload, sig, ok := strings.Cut(s, ".")
	if !ok {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ErrBadCursor
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, k.mac(b)) {
		return nil, ErrBadCursor
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID <= 0 {
		return nil, ErrBadCursor
	}
	return &c, nil
}

// Request asks for one page.
type Request struct {
	Cursor *Cursor
	Limit  int
}

// Size is the number of rows the page holds.
func (r Request) Size() int {
	switch {
	case r.Limit <= 0:
		return DefaultLimit
	case r.Limit > MaxLimit:
		return MaxLimit
	}
	return r.Limit
}

// Page is one page of results with the cursors either side of it. Next and
// Prev are always set once the page has rows; HasNext and HasPrev say whether
// following them finds anything (Sentry's results="true|false").
type Page[T any] struct {
	Items   []T
	Next    *Cursor
	Prev    *Cursor
	HasNext bool
	HasPrev bool
}

// Sort names the column a list is ordered by; the id breaks ties.
type Sort struct {
	Column string // SQL column, qualified when joined: "apps.name"
	Desc   bool
}

// key names s in the cursors made for it.
func (s Sort) key() string {
	if s.Desc {
		return s.Column + " desc"
	}
	return s.Column
}

// Query applies the keyset condition, order and limit (one extra row, to see
// whether more exist) to q. Run it, then call Finish with the rows. A
// cursor made for another sort makes the query fail with ErrCursorSort
// before it reaches the database.
func Query(q *gorm.DB, idColumn string, s Sort, r Request) *gorm.DB {
	if r.Cursor != nil && r.Cursor.Sort != s.key() {
		q = q.Session(&gorm.Session{})
		_ = q.AddError(ErrCursorSort)
		return q
	}
	desc := s.Desc
	if r.Cursor != nil && r.Cursor.Prev {
		desc = !desc
	}
	op, dir := ">", "ASC"
	if desc {
		op, dir = "<", "DESC"
	}
	if r.Cursor != nil && r.Cursor.Incl {
		op += "="
	}
	if c := r.Cursor; c != nil {
		if s.Column == idColumn || s.Column == "" {
			q = q.Where(fmt.Sprintf("%s %s ?", idColumn, op), c.ID)
		} else {
			q = q.Where(fmt.Sprintf("(%s, %s) %s (?, ?)", s.Column, idColumn, op), c.Value, c.ID)
		}
	}
	if s.Column != "" && s.Column != idColumn {
		q = q.Order(fmt.Sprintf("%s %s", s.Column, dir))
	}
	return q.Order(fmt.Sprintf("%s %s", idColumn, dir)).Limit(r.Size() + 1)
}

// Finish trims the extra row, restores order for backward pages and sets the
// cursors, made for s (the sort Query was given). key returns a row's sort
// value (as text) and id.
func Finish[T any](rows []T, r Request, s Sort, key func(T) (string, int64)) Page[T] {
	size := r.Size()
	more := len(rows) > size
	if more {
		rows = rows[:size]
	}
	p := Page[T]{Items: rows}
	backward := r.Cursor != nil && r.Cursor.Prev
	if backward {
		slices.Reverse(p.Items)
		p.HasPrev, p.HasNext = more, true
	} else {
		p.HasNext, p.HasPrev = more, r.Cursor != nil
	}
	if len(p.Items) == 0 {
		if r.Cursor != nil {
			// An empty page past either end: offer the way back.
			c := *r.Cursor
			c.Prev, c.Incl = !backward, true
			if backward {
				p.Next, p.HasNext = &c, true
			} else {
				p.Prev, p.HasPrev = &c, true
			}
		}
		return p
	}
	fv, fid := key(p.Items[0])
	lv, lid := key(p.Items[len(p.Items)-1])
	p.Prev = &Cursor{Value: fv, ID: fid, Prev: true, Sort: s.key()}
	p.Next = &Cursor{Value: lv, ID: lid, Sort: s.key()}
	return p
}

// Map converts a page of one type to another.
func Map[T, U any](p Page[T], f func(T) U) Page[U] {
	out := Page[U]{Next: p.Next, Prev: p.Prev, HasNext: p.HasNext, HasPrev: p.HasPrev, Items: make([]U, len(p.Items))}
	for i, it := range p.Items {
		out.Items[i] = f(it)
	}
	return out
}
