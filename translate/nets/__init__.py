"""Networks, one file per family. No training code lives here."""
