"""Rasa stores the deployment configures in endpoints.yml (tracker store), careful with health data."""
