"""Input channels of the assistant (registered in credentials.yml)."""
