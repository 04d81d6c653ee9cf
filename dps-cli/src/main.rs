//! The `dps` command.

fn main() {}
