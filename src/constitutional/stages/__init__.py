"""One module per stage of the method; each reads records and writes records."""
