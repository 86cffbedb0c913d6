package plugboard_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

const exampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func ExampleSign() {
	sig, err := plugboard.Sign(exampleSecret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sig)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

func ExampleVerify() {
	body := []byte(`{"id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","type":"webhook.test","timestamp":"2026-01-02T15:04:05Z","installation":null,"data":{}}`)
	now := time.Now()
	sig, _ := plugboard.Sign(exampleSecret, "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c", now, body)

	// The headers as an HTTP server receives them.
	h := http.Header{}
	h.Set("Webhook-Id", "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c")
	h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("Webhook-Signature", sig)

	fmt.Println(plugboard.Verify(exampleSecret, h, body))

	body[len(body)-2] = ' ' // tamper with the body
	err := plugboard.Verify(exampleSecret, h, body)
	fmt.Println(errors.Is(err, plugboard.ErrInvalidSignature))
	// Output:
	// <nil>
	// true
}

func ExampleVerifier() {
	// While the webhook secret rotates, accept the old and the new one.
	v, err := plugboard.NewVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_dGhlIG5ldyBzZWNyZXQsIDMyIGJ5dGVzIGxvbmcu")
	if err != nil {
		log.Fatal(err)
	}
	sent := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	v.Now = func() time.Time { return sent.Add(10 * time.Minute) } // a fixed clock, for the example
	v.Tolerance = 15 * time.Minute

	body := []byte(`{}`)
	sig, _ := plugboard.Sign("whsec_dGhlIG5ldyBzZWNyZXQsIDMyIGJ5dGVzIGxvbmcu", "msg_1", sent, body)
	h := http.Header{}
	h.Set("Webhook-Id", "msg_1")
	h.Set("Webhook-Timestamp", strconv.FormatInt(sent.Unix(), 10))
	h.Set("Webhook-Signature", "v1,c29tZSBvbGQgc2lnbmF0dXJl "+sig)
	fmt.Println(v.Verify(h, body))

	v.Tolerance = 5 * time.Minute
	fmt.Println(errors.Is(v.Verify(h, body), plugboard.ErrTimestampTooOld))
	// Output:
	// <nil>
	// true
}

func ExampleEvent_InstallationCreated() {
	// The body of an installation.created webhook, as Plugboard sends it.
	body := []byte(`{"id":"5d0c7c8e-8f0a-4b7e-9a55-2b1b9d6f3c11","type":"installation.created","timestamp":"2026-01-02T15:04:05.123456Z",` +
		`"installation":{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"},` +
		`"data":{"code":"pbg_Zk8dW0pXr5sLm1vT7yBn4cHj6gFe9x9Qa","codeExpiresAt":"2026-01-02T15:14:05.123456Z",` +
		`"installation":{"app":{"clientId":"9f86d081884c7d659a2feaa0c55ad015","name":"Acme Alerts","slug":"acme-alerts"},` +
		`"organization":{"id":"8","name":"Globex","slug":"globex"},` +
		`"plan":{"currency":"USD","interval":"month","name":"Pro","price":"9.00","slug":"pro"},` +
		`"scopes":["org:read"],"status":"pending","uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"}}}`)

	ev, err := plugboard.ParseEvent(body) // after Verify; Handler does both
	if err != nil {
		log.Fatal(err)
	}
	created, err := ev.InstallationCreated()
	if err != nil {
		log.Fatal(err)
	}
	inst := created.Installation
	fmt.Println(ev.Type, ev.InstallationUUID())
	fmt.Println(inst.Organization.Slug, inst.Status, inst.Plan.Slug, inst.Plan.Price, inst.Scopes)
	fmt.Println(created.Code, created.CodeExpiresAt.Sub(ev.Timestamp))

	_, err = ev.InstallationDeleted()
	fmt.Println(errors.Is(err, plugboard.ErrWrongEventType))
	// Output:
	// installation.created b23eb701-895a-480e-8501-d1a4f15441f8
	// globex pending pro 9.00 [org:read]
	// pbg_Zk8dW0pXr5sLm1vT7yBn4cHj6gFe9x9Qa 10m0s
	// true
}

func ExampleHandler() {
	oauthConfig := plugboard.OAuth2Config("https://plugboard.example.com", "9f86d081884c7d659a2feaa0c55ad015",
		"pbcs_…", "https://alerts.acme.example/plugboard/callback")

	h := plugboard.Handler(exampleSecret, func(ctx context.Context, ev *plugboard.Event) error {
		switch ev.Type {
		case plugboard.EventInstallationCreated:
			created, err := ev.InstallationCreated()
			if err != nil {
				return err
			}
			if created.Code == "" {
				return nil // an internal integration: its token came at creation
			}
			tok, err := oauthConfig.Exchange(ctx, created.Code)
			if err != nil {
				return err // 500: Plugboard retries, and the code stays valid until it expires
			}
			log.Printf("installed in %s: %s", created.Installation.Organization.Slug, plugboard.InstallationID(tok))
		case plugboard.EventInstallationDeleted:
			deleted, err := ev.InstallationDeleted()
			if err != nil {
				return err
			}
			log.Printf("uninstalled %s: %s", deleted.Installation.UUID, deleted.Reason)
		default:
			var data map[string]any // a host event, such as issue.created
			if err := ev.DecodeData(&data); err != nil {
				return err
			}
		}
		return nil
	}, plugboard.WithSecrets("whsec_dGhlIG5ldyBzZWNyZXQsIDMyIGJ5dGVzIGxvbmcu")) // during a rotation

	http.Handle("/plugboard/webhooks", h)
	// Output:
}

func ExampleOAuth2Config() {
	ctx := context.Background()
	cfg := plugboard.OAuth2Config("https://plugboard.example.com", "9f86d081884c7d659a2feaa0c55ad015",
		"pbcs_…", "https://alerts.acme.example/plugboard/callback", "org:read")

	// The app starts an install: send the user to the consent page, with PKCE.
	verifier := oauth2.GenerateVerifier()
	fmt.Println(cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier)))

	// Back at the redirect URL with ?code=…: exchange it for the
	// installation's tokens.
	tok, err := cfg.Exchange(ctx, "pbg_…", oauth2.VerifierOption(verifier))
	if err != nil {
		log.Fatal(err)
	}
	client, err := plugboard.NewClient("https://plugboard.example.com", plugboard.WithTokenSource(cfg.TokenSource(ctx, tok)))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.VerifyInstallation(ctx, plugboard.InstallationID(tok), "acct_42", "https://alerts.acme.example/accounts/acct_42"); err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_AllInstallations() {
	ctx := context.Background()
	c, err := plugboard.NewClient("https://plugboard.example.com", plugboard.WithClientCredentials("9f86d081884c7d659a2feaa0c55ad015", "pbcs_…"))
	if err != nil {
		log.Fatal(err)
	}
	for inst, err := range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{Status: plugboard.StatusInstalled}) {
		if err != nil {
			var apiErr *plugboard.APIError
			if errors.As(err, &apiErr) {
				log.Fatalf("%s (request %s)", apiErr.Code, apiErr.RequestID)
			}
			log.Fatal(err)
		}
		fmt.Println(inst.Organization.Slug, inst.Plan)
	}
}
