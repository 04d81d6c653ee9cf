//! Criterion micro-benchmarks of the core's hot paths: parse a DPS response (topic alone, and
//! topic + JSON body), format a telemetry topic with properties, take a telemetry message
//! through the hub session (built, queued, published, acknowledged), mint a SAS token, derive a
//! group-enrolled device's key. The inputs are in `dps_benches::fixtures`; the allocation
//! counts of the same functions come from `cargo run --release -p dps-benches --bin allocs`.
//!
//! `cargo bench -p dps-benches --bench core`

#![allow(missing_docs)] // criterion_group! generates undocumented public items.

use criterion::{Criterion, criterion_group, criterion_main};
use dps_auth::SasStyle;
use dps_benches::fixtures;

fn core(c: &mut Criterion) {
    c.bench_function("parse_response_topic", |b| {
        b.iter(fixtures::parse_response_topic);
    });
    c.bench_function("parse_response_topic_and_json", |b| {
        b.iter(fixtures::parse_response);
    });
    let properties = fixtures::telemetry_properties();
    let mut buffer = String::with_capacity(256);
    c.bench_function("format_telemetry_topic", |b| {
        b.iter(|| fixtures::format_telemetry_topic(&mut buffer, &properties));
    });
    let mut session = fixtures::connected_session();
    c.bench_function("telemetry_cycle", |b| {
        b.iter(|| fixtures::telemetry_cycle(&mut session, fixtures::telemetry_message()));
    });
    let key = fixtures::device_key();
    let resource = fixtures::dps_resource();
    let style = SasStyle::documented_dps();
    c.bench_function("generate_sas", |b| {
        b.iter(|| fixtures::generate_sas_token(&key, &resource, &style));
    });
    let group = fixtures::group_key();
    c.bench_function("derive_group_key", |b| {
        b.iter(|| fixtures::derive_group_key(&group));
    });
}

criterion_group!(benches, core);
criterion_main!(benches);
