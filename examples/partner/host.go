package main

// Calling the host product's own API: the partner's reason to be
// installed. Plugboard gave the installation scopes the host declared
// (issue:read); the partner mints a token for the installation with its
// own client credentials whenever it needs one (the SDK's AppTokenSource,
// which keeps each token until a minute before it expires), and the host
// checks it by introspection (examples/host). No refresh token is stored.

import (
	"io"
	"net/http"

	"golang.org/x/oauth2"

	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

// tokenSource is the installation's source of tokens, made once.
func (p *Partner) tokenSource(installation string) (oauth2.TokenSource, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.acct[installation]; !ok {
		return nil, false
	}
	ts := p.tokens[installation]
	if ts == nil {
		ts = plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: p.cfg.PlugboardURL, ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret}, installation)
		p.tokens[installation] = ts
	}
	return ts, true
}

// hostIssues is GET /host-issues?installation={uuid}: the host's issues of
// the organization of one of our installations, as the host answers them.
func (p *Partner) hostIssues(w http.ResponseWriter, r *http.Request) {
	if p.cfg.HostURL == "" {
		http.Error(w, "set HOST_URL to the host's API", http.StatusNotFound)
		return
	}
	ts, ok := p.tokenSource(r.URL.Query().Get("installation"))
	if !ok {
		http.Error(w, "no such installation here", http.StatusNotFound)
		return
	}
	res, err := oauth2.NewClient(r.Context(), ts).Get(p.cfg.HostURL + "/api/issues")
	if err != nil {
		p.log.Warn("calling the host", "err", err)
		http.Error(w, "the host could not be called", http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
	w.WriteHeader(res.StatusCode)
	io.Copy(w, io.LimitReader(res.Body, 1<<20))
}
