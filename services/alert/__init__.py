"""The alert service: wf:events in (classified reports), wf:alerts out (alert versions), and from wf:alerts
signed webhooks to subscribers and a live console. Rules, incidents and alerts live in SQL."""
