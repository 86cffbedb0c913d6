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

func TestCookiesAreSecureOutsideDevelopment(t *testing.T) {
	for _, tc := range []struct {
		env, base string
		secure    bool
	}{
		{"production", "http://plugboard.internal", true},
		{"production", "https://plugboard.example", true},
		{"development", "http://localhost:8080", false},
		{"development", "https://dev.plugboard.example", true},
		{"test", "http://127.0.0.1:1234", false},
	} {
		s := &Server{opts: Options{Env: tc.env, BaseURL: tc.base}}
		if got := s.secureCookies(); got != tc.secure {
			t.Errorf("%s at %s: Secure=%v, want %v", tc.env, tc.base, got, tc.secure)
		}
	}
}
