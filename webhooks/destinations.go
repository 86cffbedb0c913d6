package webhooks

import "strings"

// Deliveries go to one of two kinds of destination: an app's webhook
// endpoint, or one of the host's own endpoints (host webhooks: the host
// product receives platform events the way partners do). Everything kept
// per destination — drains, rate limits and in-flight caps, endpoint state
// and health, the signer cache, the delivery log and its figures,
// redelivery — is keyed by one number, the destination key: the app's id,
// or the host endpoint's id negated (HostKey). So the Dispatcher, the
// drain registry, the Limiter and the relay treat both alike, with every
// guarantee they give apps.
//
// In deliveries and endpoints the two are separate columns, each
// deleted with what it names (app_id, host_endpoint_id; exactly one is set;
// deliveries.app_id's cascade is a trigger, migration 00022); keyCol says
// which one a key is stored in. attempts.app_id, which has no foreign key
// and only serves the figures, holds the key itself.

// HostKey is the destination key of the host endpoint with id
// hostEndpointID.
func HostKey(hostEndpointID int64) int64 { return -hostEndpointID }

// IsHostKey reports whether key is a host endpoint's destination key, and
// that endpoint's id.
func IsHostKey(key int64) (int64, bool) {
	if key < 0 {
		return -key, true
	}
	return 0, false
}

// keyCol is the column of deliveries and endpoints that names key's
// destination, and the value it holds there.
func keyCol(key int64) (string, int64) {
	if id, ok := IsHostKey(key); ok {
		return "host_endpoint_id", id
	}
	return "app_id", key
}

// keyExpr is a deliveries or endpoints row's destination key, in SQL.
const keyExpr = "COALESCE(app_id, -host_endpoint_id)"

// forKey rewrites an app's statement (its "app_id = " filters) into key's.
func forKey(sql string, key int64) (string, int64) {
	col, v := keyCol(key)
	if col == "app_id" {
		return sql, v
	}
	return strings.ReplaceAll(sql, "app_id = ", col+" = "), v
}
