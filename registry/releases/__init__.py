"""Released persons in resettlement and aftercare (安置帮教)."""
