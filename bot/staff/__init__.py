"""Staff channels: hand-off notices to a staff room (Matrix, Slack or Telegram) and their settings."""
