package plugboard

import "testing"

func TestParseLinkHeader(t *testing.T) {
	// As web/paginate.go writes it, and as openapi.yaml documents it.
	h := `<https://plugboard.example.com/api/0/apps/>; rel="previous"; results="false"; cursor="", ` +
		`<https://plugboard.example.com/api/0/apps/?cursor=eyJ2IjoiYWNtZSIsImkiOjQyfQ&expand=plans,owner>; rel="next"; results="true"; cursor="eyJ2IjoiYWNtZSIsImkiOjQyfQ"`
	got := parseLinkHeader([]string{h})
	next, prev := got["next"], got["previous"]
	if !next.Results || next.Cursor != "eyJ2IjoiYWNtZSIsImkiOjQyfQ" || next.URL != "https://plugboard.example.com/api/0/apps/?cursor=eyJ2IjoiYWNtZSIsImkiOjQyfQ&expand=plans,owner" {
		t.Errorf("next %+v", next)
	}
	if prev.Results || prev.Cursor != "" || prev.URL != "https://plugboard.example.com/api/0/apps/" {
		t.Errorf("previous %+v", prev)
	}
	// Two header lines, unquoted values, odd spacing and case.
	got = parseLinkHeader([]string{`<a>;rel=previous;results=false;cursor=`, ` <b> ; REL="next" ; Results="TRUE" ; cursor="c\"1;2,3"`})
	if got["next"].Cursor != `c"1;2,3` || !got["next"].Results || got["next"].URL != "b" || got["previous"].URL != "a" {
		t.Errorf("odd %+v", got)
	}
	for _, bad := range []string{"", "garbage", "<unterminated", `<x>; cursor="no rel"`, `"<"`, `<x>; rel="next"; results="true"; cursor="unterminated`} {
		_ = parseLinkHeader([]string{bad})
	}
	if len(parseLinkHeader(nil)) != 0 {
		t.Error("links from nothing")
	}
}

func FuzzParseLinkHeader(f *testing.F) {
	f.Add(`<https://x/api/0/apps/>; rel="previous"; results="false"; cursor="", <https://x/api/0/apps/?cursor=abc>; rel="next"; results="true"; cursor="abc"`)
	f.Add(`<a>;rel=next;cursor="\`)
	f.Add(`<<>>;;,,"\"`)
	f.Fuzz(func(t *testing.T, h string) {
		for rel, l := range parseLinkHeader([]string{h}) {
			if rel == "" {
				t.Fatalf("empty rel in %q: %+v", h, l)
			}
		}
	})
}
