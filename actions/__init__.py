"""Custom actions of the assistant, run by the rasa-sdk action server (`rasa run actions`)."""
