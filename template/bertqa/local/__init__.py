"""Local runs: the progress line and what a failed local job reports."""
