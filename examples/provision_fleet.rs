//! A gateway provisioning its fleet: N devices of a symmetric-key enrollment group registering
//! concurrently from one process, with progress and a summary.
//!
//! `cargo run --example provision_fleet -- [DEVICES] [CONCURRENCY]` (defaults 200 and 50).
//! Azure settings: `PROVISIONING_HOST`, `PROVISIONING_IDSCOPE`, `PROVISIONING_GROUP_KEY`; device
//! ids are `fleet-device-{n}`. Without them it uses the embedded emulator.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use dps_auth::GroupKey;
use dps_client::ProvisioningClient;
use futures_util::StreamExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(50), |a| a.parse())?;

    let target = common::Target::from_env_or_emulator().await?;
    let group = GroupKey::from_base64(&target.group_key("fleet").await?)?;

    // The fleet template: endpoint, trust roots and deadline configured once; each device gets
    // a client stamped from it with its own registration id and derived key.
    let template = ProvisioningClient::template(&target.id_scope)
        .endpoint(&target.endpoint)
        .tls(target.tls.clone())
        .deadline(target.deadline());

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(devices);
    let mut failures = Vec::new();
    let mut results = futures_util::stream::iter(0..devices)
        .map(|n| {
            let registration_id = format!("fleet-device-{n:05}");
            let client = group
                .derive(&registration_id)
                .map(|key| template.for_device(&registration_id, key));
            async move {
                let began = Instant::now();
                let outcome = match client {
                    Ok(client) => client.register().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (registration_id, began.elapsed(), outcome)
            }
        })
        .buffer_unordered(concurrency);

    while let Some((registration_id, latency, outcome)) = results.next().await {
        match outcome {
            Ok(_) => latencies.push(latency),
            Err(e) => failures.push((registration_id, e)),
        }
        let done = latencies.len() + failures.len();
        if done % 10 == 0 || done == devices {
            print!(
                "\r[{:<40}] {done}/{devices}",
                "#".repeat(done * 40 / devices.max(1))
            );
            std::io::stdout().flush()?;
        }
    }
    println!();

    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Duration::ZERO)
    };
    println!(
        "{} assigned, {} failed in {:.2} s ({:.0} devices/s); latency p50 {} ms, p99 {} ms",
        latencies.len(),
        failures.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(50).as_millis(),
        percentile(99).as_millis(),
    );
    for (id, error) in failures.iter().take(10) {
        println!("  {id}: {error}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} registrations failed", failures.len()).into())
    }
}
