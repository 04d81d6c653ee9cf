//! Counts the heap allocations of the core micro-benchmarks' operations with dhat's allocator:
//! prints one JSON object per operation (`blocks` and `bytes` per call, over 1,000 calls after
//! a warm-up call).
//!
//! `cargo run --release -p dps-benches --bin allocs`

use dps_auth::SasStyle;
use dps_benches::fixtures;
use dps_benches::fixtures::{connected_session, telemetry_cycle, telemetry_message};
use dps_core::hub::{HubSession, Message};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 1_000;

fn count(name: &str, mut op: impl FnMut()) -> serde_json::Value {
    op();
    let before = dhat::HeapStats::get();
    for _ in 0..CALLS {
        op();
    }
    let after = dhat::HeapStats::get();
    serde_json::json!({
        "name": name,
        "blocks": (after.total_blocks - before.total_blocks) as f64 / CALLS as f64,
        "bytes": (after.total_bytes - before.total_bytes) as f64 / CALLS as f64,
    })
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let properties = fixtures::telemetry_properties();
    let mut buffer = String::with_capacity(256);
    let key = fixtures::device_key();
    let resource = fixtures::dps_resource();
    let style = SasStyle::documented_dps();
    let group = fixtures::group_key();
    let mut bare = connected_session();
    let mut with_properties = connected_session();
    let results = [
        count("telemetry_cycle_no_properties", || {
            telemetry_cycle(&mut bare, Message::new(&b"{\"t\":22.5}"[..]));
        }),
        count("telemetry_cycle_6_properties_incl_building_them", || {
            telemetry_cycle(&mut with_properties, telemetry_message());
        }),
        count("build_message_6_properties", || {
            std::hint::black_box(telemetry_message());
        }),
        count("parse_response_topic", || {
            std::hint::black_box(fixtures::parse_response_topic());
        }),
        count("parse_response_topic_and_json", || {
            std::hint::black_box(fixtures::parse_response());
        }),
        count("format_telemetry_topic", || {
            std::hint::black_box(fixtures::format_telemetry_topic(&mut buffer, &properties));
        }),
        count("generate_sas", || {
            std::hint::black_box(fixtures::generate_sas_token(&key, &resource, &style));
        }),
        count("derive_group_key", || {
            std::hint::black_box(fixtures::derive_group_key(&group));
        }),
    ];
    for result in results {
        println!("{result}");
    }
    // The inline size of what every connection keeps (heap parts not included): the session
    // machines and the TLS connection, for the per-connection memory breakdown.
    for (name, size) in [
        ("HubSession", std::mem::size_of::<HubSession>()),
        (
            "dps::Registration",
            std::mem::size_of::<dps_core::dps::Registration>(),
        ),
        (
            "rustls::ClientConnection",
            std::mem::size_of::<rustls::ClientConnection>(),
        ),
        (
            "tokio_rustls::client::TlsStream<TcpStream>",
            std::mem::size_of::<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>(),
        ),
    ] {
        println!("{}", serde_json::json!({ "size_of": name, "bytes": size }));
    }
}
