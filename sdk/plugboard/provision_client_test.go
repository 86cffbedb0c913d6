package plugboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// TestAsyncProvisioningCalls: what a partner sends to finish a 202 with
// the client: the config vars (a nil value deletes one), then the status,
// each with the installation's own token; and reading them back.
func TestAsyncProvisioningCalls(t *testing.T) {
	const uuid = "7c2e4b1a-0000-4000-8000-000000000001"
	var (
		mu   sync.Mutex
		vars = map[string]string{"PAGER_BOT_OLD": "x"}
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer pbi_inst" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Method+" "+r.URL.Path+" "+string(body))
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "PUT /api/0/installations/" + uuid + "/config-vars/":
			var in struct {
				Vars map[string]*string `json:"vars"`
			}
			if err := json.Unmarshal(body, &in); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			for k, v := range in.Vars {
				if v == nil {
					delete(vars, k)
				} else {
					vars[k] = *v
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"vars": vars})
		case "GET /api/0/installations/" + uuid + "/config-vars/":
			json.NewEncoder(w).Encode(map[string]any{"vars": vars})
		case "PUT /api/0/installations/" + uuid + "/":
			json.NewEncoder(w).Encode(map[string]any{"uuid": uuid, "status": "installed"})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := plugboard.NewClient(srv.URL, plugboard.WithToken("pbi_inst"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := plugboard.Vars(map[string]string{"PAGER_BOT_URL": "https://pager.example/1"})
	set["PAGER_BOT_OLD"] = nil
	got, err := c.SetConfigVars(ctx, uuid, set)
	if err != nil || len(got.Vars) != 1 || got.Vars["PAGER_BOT_URL"] != "https://pager.example/1" {
		t.Fatalf("SetConfigVars = %+v, %v", got, err)
	}
	if _, err := c.SetConfigVars(ctx, uuid, map[string]*string{" ": nil}); err == nil {
		t.Error("a config var without a name was sent")
	}
	inst, err := c.CompleteProvisioning(ctx, uuid)
	if err != nil || inst.Status != plugboard.StatusInstalled {
		t.Fatalf("CompleteProvisioning = %+v, %v", inst, err)
	}
	back, err := c.ConfigVars(ctx, uuid)
	if err != nil || back.Vars["PAGER_BOT_URL"] != "https://pager.example/1" {
		t.Fatalf("ConfigVars = %+v, %v", back, err)
	}
	want := []string{
		"PUT /api/0/installations/" + uuid + `/config-vars/ {"vars":{"PAGER_BOT_OLD":null,"PAGER_BOT_URL":"https://pager.example/1"}}`,
		"PUT /api/0/installations/" + uuid + `/ {"status":"installed"}`,
		"GET /api/0/installations/" + uuid + "/config-vars/ ",
	}
	for i, w := range want {
		if i >= len(seen) {
			t.Errorf("request %d never sent, want %q", i, w)
		} else if seen[i] != w {
			t.Errorf("request %d = %q, want %q", i, seen[i], w)
		}
	}
}
