# Lu & Wang 2025 (ReAlnet-fMRI): CORnet-S aligned to fMRI, Shen/Horikawa/THINGS-EEG2 evaluation.
