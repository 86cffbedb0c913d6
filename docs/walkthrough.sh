#!/usr/bin/env bash
# Plugboard API walkthrough: sign up, create an organization, register a public
# app with a plan, submit it, have an operator publish it, and find it in the
# marketplace directory. Run it against `make run`:
#
#   bash docs/walkthrough.sh            # BASE defaults to http://localhost:8080
#
# The operator is created with the CLI, as the first operator always is.
set -euo pipefail
BASE=${BASE:-http://localhost:8080}
PLUGBOARD=${PLUGBOARD:-bin/plugboard}
RUN=${RUN:-$RANDOM}
J='content-type: application/json'
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }   # first string field named $1

echo "# 1. Sign up and sign in (the token is a short-lived JWT)"
curl -sf -X POST "$BASE/api/0/users/" -H "$J" \
  -d "{\"email\":\"partner-$RUN@example.com\",\"name\":\"Pat Partner\",\"password\":\"correct horse battery\"}" >/dev/null
TOKEN=$(curl -sf -X POST "$BASE/api/0/auth/" -H "$J" \
  -d "{\"email\":\"partner-$RUN@example.com\",\"password\":\"correct horse battery\"}" | field token)
AUTH="Authorization: Bearer $TOKEN"

echo "# 2. Create an organization"
ORG=$(curl -sf -X POST "$BASE/api/0/organizations/" -H "$AUTH" -H "$J" -d "{\"name\":\"Pager Co $RUN\"}" | field slug)
echo "organization: $ORG"

echo "# 3. Register a public app; clientSecret and webhookSecret are shown only now"
APP=$(curl -sf -X POST "$BASE/api/0/organizations/$ORG/apps/" -H "$AUTH" -H "$J" -d "{
  \"name\": \"Pager Bot $RUN\",
  \"overview\": \"Pages the on-call engineer when an issue is created.\",
  \"categories\": [\"alerting\"],
  \"scopes\": [\"org:read\", \"member:read\"],
  \"events\": [\"installation.created\"],
  \"webhookUrl\": \"https://pager.example/webhooks\",
  \"redirectUrl\": \"https://pager.example/setup\"
}" | field slug)
echo "app: $APP"

echo "# 4. Add a plan"
curl -sf -X POST "$BASE/api/0/apps/$APP/plans/" -H "$AUTH" -H "$J" \
  -d '{"name":"Team","price":"29.00","currency":"USD","interval":"month"}' | field slug

echo "# 5. Submit it for review"
curl -sf -X POST "$BASE/api/0/apps/$APP/publish-requests/" -H "$AUTH" | field status

echo "# 6. An operator publishes it"
"$PLUGBOARD" users create --email "operator-$RUN@example.com" --password "correct horse battery" --operator
OPTOKEN=$(curl -sf -X POST "$BASE/api/0/auth/" -H "$J" \
  -d "{\"email\":\"operator-$RUN@example.com\",\"password\":\"correct horse battery\"}" | field token)
curl -sf "$BASE/api/0/apps/?status=submitted" -H "Authorization: Bearer $OPTOKEN" | field slug
curl -sf -X PUT "$BASE/api/0/apps/$APP/" -H "Authorization: Bearer $OPTOKEN" -H "$J" -d '{"status":"published"}' | field status

echo "# 7. Anyone finds it in the marketplace"
curl -sf "$BASE/api/0/apps/?query=pager%20bot%20$RUN&expand=plans" | field slug
