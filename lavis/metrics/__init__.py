"""Caption metrics (pycocoevalcap scorers and a fast CIDEr-D)."""
