"""What openpacs tells about itself while it runs: Prometheus metrics, the associations open
and recent, the log files. Below the core and the adapters, so each can report to it."""
