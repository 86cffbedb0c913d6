package marketplace

import (
	"context"

	"gorm.io/gorm"
)

// publishHost publishes a platform event to the host's endpoints in tx.
// A placeholder until the hostep branch (host webhooks) is merged: that
// branch replaces it with the real one, and this file is deleted then.
func (s *core) publishHost(ctx context.Context, tx *gorm.DB, eventType string, data any) error {
	return nil
}
