//! The micro-benchmarks: criterion through cargo, and the allocation counter.

use crate::Error;
use crate::env::Env;
use crate::report::Sections;
use dps_benches::measure;
use std::process::Command;

/// Criterion (run through cargo) and the allocation counter.
pub(crate) fn micro(env: &Env, doc: &mut Sections) -> Result<(), Error> {
    use dps_benches::report::{num, table};
    println!("\nmicro: criterion (cargo bench -p dps-benches --bench core) and allocation counts");
    let status = Command::new(&env.cargo)
        .args(["bench", "-p", "dps-benches", "--bench", "core"])
        .current_dir(&env.root)
        .status()?;
    if !status.success() {
        return Err("cargo bench failed".into());
    }
    let output = Command::new(&env.cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "dps-benches",
            "--bin",
            "allocs",
        ])
        .current_dir(&env.root)
        .output()?;
    if !output.status.success() {
        return Err(format!("allocs failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let allocs: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let targets = [
        (
            "parse_response_topic",
            "parse a DPS response topic",
            "0 allocations",
        ),
        (
            "parse_response_topic_and_json",
            "parse a DPS response topic + `assigned` JSON body",
            "",
        ),
        (
            "format_telemetry_topic",
            "format a telemetry topic with 6 properties (reused buffer)",
            "",
        ),
        ("generate_sas", "generate a DPS SAS token", "< 2 µs"),
        (
            "derive_group_key",
            "derive a device key from a group key",
            "",
        ),
    ];
    let criterion_dir = env.root.join("target/criterion");
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|(name, what, target)| {
            let estimates =
                std::fs::read_to_string(criterion_dir.join(name).join("new/estimates.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            let median_ns = estimates
                .as_ref()
                .and_then(|e| e["median"]["point_estimate"].as_f64())
                .unwrap_or(f64::NAN);
            let a = allocs.iter().find(|a| a["name"] == *name);
            let blocks = a.and_then(|a| a["blocks"].as_f64()).unwrap_or(f64::NAN);
            let bytes = a.and_then(|a| a["bytes"].as_f64()).unwrap_or(f64::NAN);
            vec![
                (*what).into(),
                format!("`{name}`"),
                if median_ns >= 1000.0 {
                    format!("{:.2} µs", median_ns / 1e3)
                } else {
                    format!("{} ns", num(median_ns))
                },
                num(blocks),
                num(bytes),
                (*target).into(),
            ]
        })
        .collect();
    doc.put(
        "micro",
        &format!(
            "Criterion medians (`cargo bench -p dps-benches --bench core`) and heap allocations per \
             call counted with dhat (`cargo run --release -p dps-benches --bin allocs`); \
             load average before: {}.\n\n{}",
            measure::load_average(),
            table(&["operation", "bench", "median time", "allocations/call", "bytes/call", "target"], &rows)
        ),
    );
    Ok(())
}
