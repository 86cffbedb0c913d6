package marketplace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/app/fault"
)

func TestConfigVarPrefix(t *testing.T) {
	for _, tt := range []struct{ slug, set, want string }{
		{"pager-bot", "", "PAGER_BOT_"},
		{"x-9lives", "", "X_9LIVES_"},
		{"pager-bot", "PB_", "PB_"},
	} {
		if got := (&App{Slug: tt.slug, ConfigPrefix: tt.set}).ConfigVarPrefix(); got != tt.want {
			t.Errorf("%s/%q: %q, want %q", tt.slug, tt.set, got, tt.want)
		}
	}
	f := fault.Fields{}
	for _, bad := range []string{"pager_", "PAGER", "9PAGER_", "P_" + strings.Repeat("X", 31)} {
		checkConfigPrefix(f, bad)
		if f["configPrefix"] == "" {
			t.Errorf("prefix %q accepted", bad)
		}
		delete(f, "configPrefix")
	}
	checkConfigPrefix(f, "PAGER_BOT_")
	if len(f) != 0 {
		t.Errorf("PAGER_BOT_ refused: %v", f)
	}
}

// A partner's 2xx answer is accepted only when it keeps the rules; what it
// says is trimmed to what may be shown.
func TestParseAnswer(t *testing.T) {
	app := &App{Slug: "pager-bot"}
	tests := []struct {
		name   string
		body   string
		fields []string // the refused fields; nil: accepted
	}{
		{"empty", ``, nil},
		{"everything", `{"config":{"PAGER_BOT_URL":"https://x"},"message":" Ready ","externalId":"a1","configUrl":"https://p.example/a1"}`, nil},
		{"not JSON", `ready`, []string{}},
		{"another prefix", `{"config":{"DATABASE_URL":"postgres://x"}}`, []string{"config.DATABASE_URL"}},
		{"a value too long", `{"config":{"PAGER_BOT_BIG":"` + strings.Repeat("x", MaxConfigVarValue+1) + `"}}`, []string{"config.PAGER_BOT_BIG"}},
		{"a bad configUrl", `{"configUrl":"javascript:alert(1)"}`, []string{"configUrl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ans, err := parseAnswer(app, []byte(tt.body))
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.name == "everything" && (ans.Message != "Ready" || *ans.Config["PAGER_BOT_URL"] != "https://x" || *ans.ExternalID != "a1") {
					t.Errorf("answer %+v", ans)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			fe, _ := fault.As(err)
			var got []string
			if fe != nil {
				for k := range fe.Fields {
					got = append(got, k)
				}
			}
			if len(tt.fields) > 0 && !cmp.Equal(got, tt.fields) {
				t.Errorf("fields %v, want %v", got, tt.fields)
			}
		})
	}
	if m := cleanMessage(strings.Repeat("é", maxMessage)); len(m) > maxMessage || !strings.HasPrefix(m, "é") || strings.ContainsRune(m, '\uFFFD') {
		t.Errorf("a long message is cut badly: %d bytes", len(m))
	}
}
