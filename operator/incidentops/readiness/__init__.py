"""What the schema cannot check about user objects: references, secrets, step parameters, delays in days."""
