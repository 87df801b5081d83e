"""The terminal UI (interactive shell, result tables, thumbnails): a front beside the CLI that uses the engine."""
