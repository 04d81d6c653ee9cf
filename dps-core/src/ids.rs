//! Identifier rules: registration ids, device ids, module ids.
