#!/bin/sh
# A jobsd notify command that posts the document as is to a webhook (docs/spec.md, `[notify]`).
#   [notify]
#   command = ["/usr/local/bin/notify-webhook.sh", "https://hooks.example.com/jobsd"]
# A non-2xx answer makes curl exit non-zero: jobsd records notify.failed with its output.
set -eu
url=${1:?usage: notify-webhook.sh URL}
exec curl --silent --show-error --fail --max-time 20 --retry 2 \
     -H 'Content-Type: application/json' --data-binary @- "$url"
