// Package page is keyset pagination shared by the stores of marketplace and
// webhooks and by web, which turns pages into cursor query parameters and
// Link headers. It imports gorm and nothing of Plugboard.
package page

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// Default and maximum page sizes.
const (
	DefaultLimit = 25
	MaxLimit     = 100
)

// Cursor marks a position in a sorted list: the sort value and id of the
// last (or, for Prev, first) row seen.
type Cursor struct {
	Value string `json:"v,omitempty"`
	ID    int64  `json:"i"`
	Prev  bool   `json:"p,omitempty"`
	// Incl includes the boundary row itself: the way back from an empty
	// page past either end starts at the row the empty page started after.
	Incl bool `json:"n,omitempty"`
}

// Encode returns the opaque form given to clients.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadCursor is returned for a cursor that was not made by Encode.
var ErrBadCursor = errors.New("malformed cursor")

// Decode parses a cursor made by Encode.
func Decode(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
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

// Query applies the keyset condition, order and limit (one extra row, to see
// whether more exist) to q. Run it, then call Finish with the rows.
func Query(q *gorm.DB, idColumn string, s Sort, r Request) *gorm.DB {
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
// cursors. key returns a row's sort value (as text) and id.
func Finish[T any](rows []T, r Request, key func(T) (string, int64)) Page[T] {
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
	p.Prev = &Cursor{Value: fv, ID: fid, Prev: true}
	p.Next = &Cursor{Value: lv, ID: lid}
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
