package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
	"sigs.k8s.io/yaml"

	"github.com/plugboard/plugboard/app/fault"
)

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPIJSON is the API's OpenAPI 3.1 document as JSON.
func OpenAPIJSON() ([]byte, error) { return yaml.YAMLToJSON(openapiYAML) }

func (s *Server) openapi(c echo.Context) error {
	b, err := OpenAPIJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

var errNotSignedIn = fault.Unauthorized(fault.NotAuthenticated, "Sign in, or send an API token as Authorization: Bearer.")
