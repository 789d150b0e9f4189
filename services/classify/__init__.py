"""classify: wf:posts (PostMessage) in, wf:events (EventMessage) and the `events` table out."""
