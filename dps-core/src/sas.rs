//! SAS token formatting and parsing (no cryptography: signing is the caller's).
