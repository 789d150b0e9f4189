"""Ingest: feeds (RSS, Atom, JSON Feed) and pushed posts in, one `PostMessage` per new post out on `wf:posts`.

    Poller ──tick──▶ due sources ──▶ fetch ──▶ parse ──▶ normalise ──▶ store (posts, source health)
                                                                         └──▶ outbox ──▶ wf:posts
    POST /ingest ─────────────────────────────────────▶ normalise ──▶ store ──▶ outbox ──▶ wf:posts
"""
