"""Dataset classes (what one sample is); builders create them from config."""
