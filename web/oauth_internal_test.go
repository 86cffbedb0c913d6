package web

import "testing"

func TestSafeNextKeepsRedirectsLocal(t *testing.T) {
	for in, want := range map[string]string{
		"/oauth/authorize?client_id=x": "/oauth/authorize?client_id=x",
		"/":                            "/",
		"":                             "/",
		"https://evil.example/":        "/",
		"//evil.example":               "/",
		"/\\evil.example":              "/",
		"/\t/evil.example":             "/",
		"/\n/evil.example":             "/",
		"/%09/evil.example":            "/%09/evil.example", // stays a path: browsers do not decode it into the host
		"javascript:alert(1)":          "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
