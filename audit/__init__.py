"""The persistence foundation shared by the decision log and the web layer: the database and governance events."""
