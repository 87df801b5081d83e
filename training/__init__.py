"""Training of models the library ships (the encoder's projection heads); imports the library, never the reverse."""
