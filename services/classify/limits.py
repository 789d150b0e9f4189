"""What is read of a post: a wire story's headline, lede and body fit in 20,000 characters, and a bound here
bounds every pass of the classifier (a 1 MB post costs what its first 20,000 characters cost)."""

MAX_CHARS = 20_000
TITLE_CHARS = 1_000
