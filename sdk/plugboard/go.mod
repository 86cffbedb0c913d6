module github.com/plugboard/plugboard/sdk/plugboard

go 1.26.0

require (
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1
	golang.org/x/oauth2 v0.37.0
)

require github.com/golang-jwt/jwt/v5 v5.3.1
