#!/usr/bin/env python3
"""A jobsd notify command that mails what happened (the document: docs/spec.md, `[notify]`).

    [notify]
    command = ["/usr/local/bin/notify-sendmail.py", "ops@example.com"]

or for every job: jobsd --notify-command '/usr/local/bin/notify-sendmail.py ops@example.com'.
Needs a sendmail (postfix, msmtp-mta, nullmailer, ...); $SENDMAIL overrides /usr/sbin/sendmail.
Stdlib only. A non-zero exit (sendmail refused) is recorded by jobsd as notify.failed.
"""
import json
import os
import subprocess
import sys
from email.message import EmailMessage


def body(doc: dict) -> str:
    run = doc["run"]
    if run is None:  # overdue: no run
        return f"{doc['message']}\n\njobsctl jobs show {doc['job']}\n"
    lines = [
        f"run:       {run['run']} ({run['trigger']})",
        f"state:     {run['state']}, exit {run['exit_code']}, signal {run['signal']}",
        f"reason:    {run['reason'] or '-'}",
        f"attempt:   {run['attempt']} of {run['max_attempts']}",
        f"started:   {run['started_at']} (scheduled {run['scheduled_at']})",
        f"duration:  {run['duration_seconds']} s",
        f"failures in a row: {doc['consecutive_failures']}",
        f"next run:  {doc['next_run_at']}",
        "",
        "last lines of output:",
        *(f"  {line}" for line in run["output_tail"]),
        "",
        f"artifacts: {run['artifacts']}",
        f"details:   jobsctl runs show {run['run']}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: notify-sendmail.py ADDRESS", file=sys.stderr)
        return 2
    doc = json.load(sys.stdin)
    mail = EmailMessage()
    mail["To"] = sys.argv[1]
    mail["Subject"] = f"[jobsd] {doc['job']}: {doc['event']} on {doc['host']}"
    mail.set_content(body(doc))
    sendmail = os.environ.get("SENDMAIL", "/usr/sbin/sendmail")
    return subprocess.run([sendmail, "-t", "-oi"], input=mail.as_bytes(), check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
