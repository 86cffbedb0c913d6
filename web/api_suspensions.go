package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/marketplace"
)

// Suspension (marketplace/suspensions.go): an organization admin or the
// app suspends an installation; whoever suspended it, or an operator,
// lifts it. The operator's kill switch on a whole app is PUT
// /api/0/apps/{app_slug}/ {status: "suspended"} (api_apps.go).

type suspensionRequest struct {
	Reason *string `json:"reason"`
}

type suspensionJSON struct {
	By            string    `json:"by"`
	Reason        string    `json:"reason"`
	DateSuspended time.Time `json:"dateSuspended"`
	LiftableBy    []string  `json:"liftableBy"`
}

func toSuspensionJSON(sp *marketplace.Suspension) *suspensionJSON {
	if sp == nil {
		return nil
	}
	return &suspensionJSON{By: sp.By, Reason: sp.Reason, DateSuspended: sp.At, LiftableBy: sp.LiftableBy}
}

// suspend answers 201 with the installation when this request suspended
// it, 200 when it was suspended already by the same side (or an admin
// took over the app's suspension). The body is optional.
func (s *Server) suspend(c echo.Context) error {
	var in suspensionRequest
	if c.Request().ContentLength != 0 {
		if err := bindJSON(c, &in); err != nil {
			return err
		}
	}
	inst, isNew, err := s.opts.Suspensions.Suspend(c.Request().Context(), actor(c), c.Param("uuid"), in.Reason)
	if err != nil {
		return err
	}
	if isNew {
		return created(c, "/api/0/installations/"+inst.UUID+"/", toInstallationJSON(inst))
	}
	return c.JSON(http.StatusOK, toInstallationJSON(inst))
}

func (s *Server) unsuspend(c echo.Context) error {
	if err := s.opts.Suspensions.Unsuspend(c.Request().Context(), actor(c), c.Param("uuid")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
