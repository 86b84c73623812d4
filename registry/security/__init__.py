"""Security infrastructure: encryption at rest, authorisation, audit chain, passwords."""
