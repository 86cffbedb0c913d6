package e2e_test

import (
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

var (
	csrfRe     = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	ssoFormRe  = regexp.MustCompile(`<form method="post" action="([^"]+)" class="card" data-autopost>`)
	ssoTokenRe = regexp.MustCompile(`<input type="hidden" name="token" value="([^"]+)">`)
)

// member is a browser signed in to the platform: the session cookie, and
// the pages' CSRF token.
type member struct {
	t    *testing.T
	base string
	http *http.Client
}

func browserSignIn(t *testing.T, base, email string) *member {
	jar, _ := cookiejar.New(nil)
	m := &member{t: t, base: base, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	res, err := m.http.PostForm(base+"/login", url.Values{"email": {email}, "password": {"correct horse battery"}})
	if err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in %s: %v %v", email, err, res)
	}
	res.Body.Close()
	return m
}

func (m *member) page(method, path string, form url.Values) string {
	m.t.Helper()
	req, _ := http.NewRequest(method, m.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", m.base)
	res, err := m.http.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		m.t.Fatalf("%s %s: %d: %s", method, path, res.StatusCode, b)
	}
	return string(b)
}

// open clicks "Open {App}" on the installed-app page and returns where
// the answer's form posts and the token it carries.
func (m *member) open(org, inst string) (string, string) {
	m.t.Helper()
	pg := m.page("GET", "/orgs/"+org+"/installations/"+inst, nil)
	csrf := csrfRe.FindStringSubmatch(pg)
	if csrf == nil || !strings.Contains(pg, "/installations/"+inst+"/sso") {
		m.t.Fatalf("no Open button on the installed-app page:\n%s", pg)
	}
	pg = m.page("POST", "/orgs/"+org+"/installations/"+inst+"/sso", url.Values{"csrf": {html.UnescapeString(csrf[1])}})
	action, token := ssoFormRe.FindStringSubmatch(pg), ssoTokenRe.FindStringSubmatch(pg)
	if action == nil || token == nil {
		m.t.Fatalf("the sign-on page has no form:\n%s", pg)
	}
	return html.UnescapeString(action[1]), html.UnescapeString(token[1])
}

// ssoPartner serves two apps' ssoUrls with the SDK's verifier, and keeps
// who signed in and why a sign-on was refused.
type ssoPartner struct {
	srv      *httptest.Server
	mu       sync.Mutex
	signedIn []*plugboard.SSOClaims
	refused  []error
}

func (p *ssoPartner) handle(v *plugboard.SSOVerifier) http.Handler {
	v.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		p.mu.Lock()
		p.refused = append(p.refused, err)
		p.mu.Unlock()
		http.Error(w, "refused", http.StatusUnauthorized)
	}
	return v.Handler(func(w http.ResponseWriter, r *http.Request, c *plugboard.SSOClaims) {
		p.mu.Lock()
		p.signedIn = append(p.signedIn, c)
		p.mu.Unlock()
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
}

// post submits the sign-on form as the browser does, and returns the
// status and the refusal, if any.
func (p *ssoPartner) post(t *testing.T, action, token string) (int, error) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p.mu.Lock()
	before := len(p.refused)
	p.mu.Unlock()
	res, err := c.PostForm(action, url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refused) > before {
		return res.StatusCode, p.refused[len(p.refused)-1]
	}
	return res.StatusCode, nil
}

// The SDK's SSOVerifier against the real platform, over HTTP: a member
// opens the app from the installed-app page and the partner signs them in;
// the same token again, an expired one and one minted for another app are
// refused.
func TestSSOVerifierAgainstThePlatform(t *testing.T) {
	pb := apptest.Start(t)
	if _, err := pb.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: "ops@plugboard.example", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}
	ops := signIn(t, pb.URL, "ops@plugboard.example")
	sp := &ssoPartner{}
	mux := http.NewServeMux()
	sp.srv = httptest.NewServer(mux)
	t.Cleanup(sp.srv.Close)

	dev := signUp(t, pb.URL, "dev@partner.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Partner"}, 201, nil)
	admin := signUp(t, pb.URL, "admin@customer.example")
	admin.do("POST", "/api/0/organizations/", map[string]string{"name": "Customer"}, 201, nil)
	clients, installs := map[string]string{}, map[string]string{}
	for _, slug := range []string{"alpha", "beta"} {
		var app struct{ ClientID string }
		dev.do("POST", "/api/0/organizations/partner/apps/", map[string]any{"name": slug, "overview": "An app.", "scopes": []string{"org:read"},
			"redirectUrl": sp.srv.URL + "/" + slug + "/setup", "ssoUrl": sp.srv.URL + "/" + slug + "/sso"}, 201, &app)
		dev.do("POST", "/api/0/apps/"+slug+"/plans/", map[string]any{"name": "Free"}, 201, nil)
		dev.do("POST", "/api/0/apps/"+slug+"/publish-requests/", nil, 201, nil)
		ops.do("PUT", "/api/0/apps/"+slug+"/", map[string]any{"status": "published"}, 200, nil)
		var inst struct{ UUID string }
		admin.do("POST", "/api/0/organizations/customer/installations/", map[string]any{"app": slug, "plan": "free"}, 201, &inst)
		clients[slug], installs[slug] = app.ClientID, inst.UUID
		mux.Handle("POST /"+slug+"/sso", sp.handle(plugboard.NewSSOVerifier(pb.URL, app.ClientID)))
	}
	signUp(t, pb.URL, "mia@customer.example")
	admin.do("POST", "/api/0/organizations/customer/members/", map[string]string{"email": "mia@customer.example", "role": "member"}, 201, nil)
	mia := browserSignIn(t, pb.URL, "mia@customer.example")

	// Open alpha: the partner signs Mia in.
	action, token := mia.open("customer", installs["alpha"])
	if action != sp.srv.URL+"/alpha/sso" {
		t.Fatalf("the form posts to %s", action)
	}
	if status, err := sp.post(t, action, token); status != http.StatusSeeOther || err != nil {
		t.Fatalf("sign-on: %d %v", status, err)
	}
	c := sp.signedIn[0]
	if c.Email != "mia@customer.example" || c.Name != "mia" || c.Org != "customer" || c.Installation != installs["alpha"] ||
		c.Role != "member" || c.ID == "" || c.ExpiresAt.Sub(c.IssuedAt) != time.Minute {
		t.Errorf("claims %+v", c)
	}

	// The same token again.
	if status, err := sp.post(t, action, token); status != http.StatusUnauthorized || !errors.Is(err, plugboard.ErrSSOReplayed) {
		t.Errorf("replayed: %d %v", status, err)
	}
	// A token for beta, posted to alpha.
	_, betaToken := mia.open("customer", installs["beta"])
	if status, err := sp.post(t, action, betaToken); status != http.StatusUnauthorized || !errors.Is(err, plugboard.ErrSSOAudience) {
		t.Errorf("another app's token: %d %v", status, err)
	}
	// A fresh token, a little over a minute later (leeway 5 s).
	_, late := mia.open("customer", installs["alpha"])
	later := plugboard.NewSSOVerifier(pb.URL, clients["alpha"])
	later.Now = func() time.Time { return time.Now().Add(66 * time.Second) }
	if _, err := later.Verify(t.Context(), late); !errors.Is(err, plugboard.ErrSSOExpired) {
		t.Errorf("expired: %v", err)
	}
	// beta's token still works at beta, once.
	if status, err := sp.post(t, sp.srv.URL+"/beta/sso", betaToken); status != http.StatusSeeOther || err != nil {
		t.Errorf("beta: %d %v", status, err)
	}
	if len(sp.signedIn) != 2 {
		t.Errorf("%d sign-ons, want 2", len(sp.signedIn))
	}
}
