package plugboard

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strings"
)

// Page is one page of a list. Pass NextCursor back as the Cursor option for
// the next page while HasNext; or let the All… iterators do it.
type Page[T any] struct {
	Items      []T
	NextCursor string // the cursor of the next page; "" when there is none
	HasNext    bool   // whether the next page has items
	PrevCursor string // the cursor of the previous page; "" when there is none
	HasPrev    bool   // whether the previous page has items
}

// list fetches one page of a list route.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) (*Page[T], error) {
	var items []T
	res, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q}, &items)
	if err != nil {
		return nil, err
	}
	p := &Page[T]{Items: items}
	links := parseLinkHeader(res.Header.Values("Link"))
	if l, ok := links["next"]; ok {
		p.NextCursor, p.HasNext = l.Cursor, l.Results && l.Cursor != ""
	}
	if l, ok := links["previous"]; ok {
		p.PrevCursor, p.HasPrev = l.Cursor, l.Results && l.Cursor != ""
	}
	return p, nil
}

// all iterates over the items of every page from cursor on.
func all[T any](cursor string, fetch func(cursor string) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		seen := map[string]bool{}
		for {
			seen[cursor] = true
			p, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			// Stop at the end, and should a server ever hand back a cursor
			// already followed, rather than loop.
			if !p.HasNext || seen[p.NextCursor] {
				return
			}
			cursor = p.NextCursor
		}
	}
}

// link is one relation of a Link header, as Plugboard (like Sentry) writes
// it: <url>; rel="next"; results="true"; cursor="…".
type link struct {
	URL     string
	Rel     string
	Results bool   // results="true": following it finds rows
	Cursor  string // the value to pass back as cursor
}

// parseLinkHeader reads Link header values into their relations by rel.
// It accepts several header lines, several links per line, and commas or
// semicolons inside the <url> and quoted values.
func parseLinkHeader(values []string) map[string]link {
	out := map[string]link{}
	for _, v := range values {
		for _, part := range splitOutside(v, ',') {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			l := link{URL: part[1:end]}
			for _, param := range splitOutside(part[end+1:], ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok {
					continue
				}
				val = unquote(strings.TrimSpace(val))
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "rel":
					l.Rel = val
				case "results":
					l.Results = strings.EqualFold(val, "true")
				case "cursor":
					l.Cursor = val
				}
			}
			if l.Rel == "" {
				continue
			}
			for _, rel := range strings.Fields(l.Rel) {
				if _, dup := out[rel]; !dup {
					out[rel] = l
				}
			}
		}
	}
	return out
}

// splitOutside splits s at sep where sep is not inside <…> or "…".
func splitOutside(s string, sep byte) []string {
	var parts []string
	inURL, inQuote, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case inQuote:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inQuote = false
			}
		case inURL:
			if ch == '>' {
				inURL = false
			}
		case ch == '"':
			inQuote = true
		case ch == '<':
			inURL = true
		case ch == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
