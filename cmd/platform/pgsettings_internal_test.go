package platform

import (
	"slices"
	"testing"

	"github.com/plugboard/plugboard/config"
)

// TestPostgresMismatches: each setting is judged against what the README
// says Plugboard expects; one the server does not report is not judged.
func TestPostgresMismatches(t *testing.T) {
	cfg := config.Config{DatabaseMaxConns: 40}
	good := map[string]string{"fsync": "on", "synchronous_commit": "on", "autovacuum": "on", "jit": "off", "max_connections": "100",
		"shared_preload_libraries": "pg_stat_statements"}
	for _, tc := range []struct {
		name   string
		change map[string]string
		want   []string
	}{
		{"as expected", nil, nil},
		{"synchronous_commit local is durable here", map[string]string{"synchronous_commit": "local"}, nil},
		{"this box's server", map[string]string{"autovacuum": "off", "jit": "on", "shared_preload_libraries": ""}, []string{"autovacuum", "jit", "shared_preload_libraries"}},
		{"unsafe", map[string]string{"fsync": "off", "synchronous_commit": "off"}, []string{"fsync", "synchronous_commit"}},
		{"too few connections", map[string]string{"max_connections": "49"}, []string{"max_connections"}},
		{"just enough", map[string]string{"max_connections": "50"}, nil},
		{"not reported", map[string]string{"jit": ""}, nil},
	} {
		values := map[string]string{}
		for k, v := range good {
			values[k] = v
		}
		for k, v := range tc.change {
			values[k] = v
		}
		if tc.name == "not reported" {
			delete(values, "jit")
		}
		var got []string
		for _, m := range postgresMismatches(values, cfg) {
			got = append(got, m.name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: mismatches %v, want %v", tc.name, got, tc.want)
		}
	}
}
