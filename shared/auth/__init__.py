"""API keys: scopes, hashed secrets, teams."""
