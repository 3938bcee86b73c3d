"""Use cases shared by the API, the console and the CLI; each is a plain function over the bound database."""
