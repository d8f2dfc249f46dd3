#!/usr/bin/env bash
# The quickstart as a program: run it (`bash docs/quickstart.sh`) or paste it line by line. It uses the
# service `make serve` runs (the same data directory, var/), or starts it when nothing answers on $PORT, and
# the bundled webhook receiver; then does what a customer does: onboarding, a facility, webhook settings, a
# bulk request, the upload of a generated file, the status, the result download, one patient's Document
# Query. tests/test_quickstart.py runs it from a fresh clone exactly as written.
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .venv/bin/python || make setup
PY=.venv/bin/python
PORT=${PORT:-8000}
HOOK_PORT=${HOOK_PORT:-8099}
BASE=http://127.0.0.1:$PORT
export DATA_DIR=${DATA_DIR:-var}  # make serve's: the customer created below is the running service's
export WEBHOOK_ALLOW_PRIVATE_URLS=true  # the bundled receiver listens on 127.0.0.1 (make serve allows it too)
OUT=$DATA_DIR/quickstart
mkdir -p "$OUT"
json() { $PY -c 'import json,sys; print(json.load(sys.stdin)'"$1"')'; }

# 1. The service (unless `make serve` runs already) and the webhook receiver, in the background (stopped
#    when the script ends).
$PY manage.py migrate --noinput >/dev/null
PIDS=""
if ! curl -sf "$BASE/healthz" >/dev/null; then
    $PY manage.py serve 127.0.0.1:$PORT >"$OUT/serve.log" 2>&1 &
    PIDS="$!"
fi
$PY manage.py webhook_receiver --port "$HOOK_PORT" >"$OUT/webhooks.log" 2>&1 &
PIDS="$PIDS $!"
trap 'kill $PIDS 2>/dev/null || true' EXIT
until curl -sf "$BASE/healthz" >/dev/null && curl -sf "http://127.0.0.1:$HOOK_PORT/" >/dev/null; do sleep 0.5; done

# 2. Onboarding (operators do this): a customer with an API key, and a facility.
ONBOARD=$($PY manage.py create_customer "Acme Health" --with-key)
CUSTOMER=$(echo "$ONBOARD" | sed -n 's/^customer_id=//p')
KEY=$(echo "$ONBOARD" | sed -n 's/^api_key=//p')
FACILITY=$($PY manage.py create_facility "$CUSTOMER" --name "Main Clinic" --npi 1234567893 \
    --address-line1 "1 Main St" --city Springfield --state IL --zip 62701 | sed -n 's/^facility_id=//p')
curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/facility/$FACILITY"; echo

# 3. Webhooks: the URL is accepted once it answers the ping {"ping": "<random>"} with {"pong": "<same>"}.
curl -sf -X POST -H "x-api-key: $KEY" -H 'content-type: application/json' "$BASE/settings" \
    -d "{\"webhookUrl\": \"http://127.0.0.1:$HOOK_PORT/hook\"}"; echo

# 4. Bulk Patient Create: a request, the upload of a generated file (2,000 rows, 5% invalid), the status.
$PY manage.py generate_sample_csv --rows 2000 --invalid-ratio 0.05 --seed 1 --output "$OUT/patients.csv"
CREATED=$(curl -sf -X POST -H "x-api-key: $KEY" "$BASE/medical/v1/patient/bulk?facilityId=$FACILITY")
echo "$CREATED"
UPLOAD_URL=$(echo "$CREATED" | json '["uploadUrl"]')
REQUEST_ID=$(echo "$CREATED" | json '["requestId"]')
curl -sf -X PUT -T "$OUT/patients.csv" "$UPLOAD_URL"; echo
# `completed` once the patients exist and their Document Queries have ended (the sandbox answers in ~2 s).
until [ "$(curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/patient/bulk/$REQUEST_ID" | json '["status"]')" != processing ]; do
    sleep 1
done
STATUS=$(curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/patient/bulk/$REQUEST_ID")
echo "$STATUS"

# 5. The result CSV (every row with its outcome) and the failed rows only, ready to fix and upload again.
curl -sf -o "$OUT/result.csv" "$(echo "$STATUS" | json '["result"]')"
curl -sf -o "$OUT/invalid.csv" "$(echo "$STATUS" | json '["invalid"]')"
echo "result: $OUT/result.csv ($(($(wc -l <"$OUT/result.csv") - 1)) rows), failed rows: $OUT/invalid.csv"

# 6. One patient of the import whose Document Query completed (its row in the result file says so), its
#    Document Query and documents; the webhook status.
PATIENT=$($PY -c 'import csv,sys; print(next(r["metriportId"] for r in csv.DictReader(open(sys.argv[1]))
    if r["documentQuery"] == "completed"))' "$OUT/result.csv")
curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/document/query?patientId=$PATIENT"; echo
curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/document?patientId=$PATIENT&output=dto"; echo
curl -sf -H "x-api-key: $KEY" "$BASE/settings/webhook"; echo

# 7. The single-patient API: create (read as a bulk row is; a match answers the existing patient with 200,
#    never a duplicate), update with If-Match (412 when stale), match, by external id, HIE opt-out, delete.
NEW=$(curl -sf -X POST -H "x-api-key: $KEY" -H 'content-type: application/json' \
    "$BASE/medical/v1/patient?facilityId=$FACILITY" \
    -d '{"firstName":"Jane","lastName":"Doe","dob":"1980-02-03","genderAtBirth":"F","externalId":"MRN-1",
         "address":[{"addressLine1":"1 Main St","city":"Springfield","state":"IL","zip":"62701","country":"USA"}],
         "contact":[{"phone":"(217) 555-0100"}]}')
echo "$NEW"
JANE=$(echo "$NEW" | json '["id"]')
ETAG=$(echo "$NEW" | json '["eTag"]')
curl -sf -X PUT -H "x-api-key: $KEY" -H "If-Match: $ETAG" -H 'content-type: application/json' \
    "$BASE/medical/v1/patient/$JANE?facilityId=$FACILITY" \
    -d '{"firstName":"Jane","lastName":"Smith","dob":"1980-02-03","genderAtBirth":"F","externalId":"MRN-1",
         "address":{"addressLine1":"1 Main St","city":"Springfield","state":"IL","zip":"62701"}}'; echo
curl -s -o /dev/null -w 'the same eTag again: %{http_code}\n' -X PUT -H "x-api-key: $KEY" -H "If-Match: $ETAG" \
    -H 'content-type: application/json' "$BASE/medical/v1/patient/$JANE?facilityId=$FACILITY" \
    -d '{"firstName":"Jane","lastName":"Jones","dob":"1980-02-03","genderAtBirth":"F","externalId":"MRN-1",
         "address":{"addressLine1":"1 Main St","city":"Springfield","state":"IL","zip":"62701"}}'
curl -sf -H "x-api-key: $KEY" "$BASE/medical/v1/patient/external-id?externalId=MRN-1"; echo
curl -sf -X POST -H "x-api-key: $KEY" -H 'content-type: application/json' "$BASE/medical/v1/patient/match" \
    -d '{"firstName":"Jane","lastName":"Smith","dob":"1980-02-03","genderAtBirth":"F",
         "address":[{"addressLine1":"1 Main St","city":"Springfield","state":"IL","zip":"62701"}]}'; echo
curl -sf -X PUT -H "x-api-key: $KEY" "$BASE/medical/v1/patient/$JANE/hie-opt-out?hieOptOut=true"; echo
curl -sf -X DELETE -H "x-api-key: $KEY" "$BASE/medical/v1/patient/$JANE?facilityId=$FACILITY" \
    -w 'deleted: %{http_code}\n'

# 8. What the webhook receiver got (ping, bulk processing and completed, document-download messages of its patients).
sleep 2
sort "$OUT/webhooks.log" | uniq -c
