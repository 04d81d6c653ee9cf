//! # dps-benches
//!
//! The benchmark harness of dps-rs (issue 7); see `BENCHMARKS.md` at the repository root for
//! the commands and the figures.
//!
//! - `benches/core.rs` (criterion) and the `allocs` binary (dhat): the core's hot paths and
//!   their allocation counts, on the inputs of [`fixtures`].
//! - The `loadgen` binary: the system benchmarks. The emulator runs as a separate process (pinned
//!   to one core), each client run is its own child process (pinned to the other core) so that
//!   its peak RSS and CPU time are its own, and three clients face the same emulator in the same
//!   run: this SDK, the official Python SDK (`python/fleet.py`) and the [`raw`] baseline.
//!
//! The library holds what the binaries share: the inputs of the micro-benchmarks, the raw
//! baseline client, process measurements, statistics, the report writer and the plot.

pub mod fixtures;
pub mod measure;
pub mod plot;
pub mod raw;
pub mod ready;
pub mod report;
pub mod stats;
pub mod telemetry;
