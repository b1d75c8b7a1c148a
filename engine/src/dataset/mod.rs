//! Prompt-pair datasets (filled in by the dataset work).
