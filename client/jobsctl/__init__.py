"""jobsctl: the command-line client. Never imports the daemon."""
