package plugboard

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// Organization is the organization an installation acts in.
type Organization struct {
	ID          string    `json:"id"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	DateCreated time.Time `json:"dateCreated"`
}

// Member is a person in the organization and their role there.
type Member struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	User struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"user"`
	DateCreated time.Time `json:"dateCreated"`
}

// GetOrganization reads the organization (slug or id) with an installation
// token; it needs the org:read scope.
func (c *Client) GetOrganization(ctx context.Context, org string) (*Organization, error) {
	var out Organization
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/organizations/" + esc(org) + "/"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListMembers lists the organization's members with an installation token;
// it needs the member:read scope.
func (c *Client) ListMembers(ctx context.Context, org, cursor string, limit int) (*Page[Member], error) {
	q := url.Values{}
	setPage(q, cursor, limit)
	return list[Member](ctx, c, "/organizations/"+esc(org)+"/members/", q)
}

// AllMembers iterates over every member of the organization.
func (c *Client) AllMembers(ctx context.Context, org string) iter.Seq2[Member, error] {
	return all("", func(cursor string) (*Page[Member], error) { return c.ListMembers(ctx, org, cursor, 100) })
}
