//! The bytes one registration in flight keeps in its task, for the fleet's memory figure
//! (BENCHMARKS.md, #16): `cargo test --release -p dps-client --test sizes -- --nocapture`.

use dps_auth::SymmetricKey;
use dps_client::ProvisioningClient;

#[test]
fn a_registration_in_flight_stays_small() {
    let key = SymmetricKey::from_bytes(&[7; 32]).unwrap();
    let client = ProvisioningClient::new("0ne00000000", "device-1", key);
    let register = client.register();
    let size = std::mem::size_of_val(&register);
    println!("register future: {size} bytes");
    println!(
        "Registration machine: {} bytes",
        std::mem::size_of::<dps_core::dps::Registration>()
    );
    println!(
        "MqttConnection: {} bytes",
        std::mem::size_of::<dps_transport_mqtt::MqttConnection>()
    );
    // A guard against a future that grows by accident: the driver keeps its large parts
    // (the connection attempt, the MQTT session) on the heap, and no `async fn` on the way
    // keeps a moved argument twice (1.2 KB today; 2.4 KB before #16 found the copies).
    assert!(size < 1600, "register future: {size} bytes");
}

/// A connection attempt boxes each stage (TCP, the TLS handshake, the MQTT handshake) while
/// it runs, so that thousands of devices connecting at once each hold the state of the stage
/// they wait in, not room for the largest (#16).
#[tokio::test]
async fn a_connection_attempt_starts_small() {
    use dps_transport_mqtt::{ConnectOptions, MqttTransport, Transport as _};
    let options = ConnectOptions::new(
        "localhost:1",
        "device-1",
        "user",
        dps_auth::Credentials::Sas(dps_auth::SasToken::from("t".to_owned())),
    );
    let transport = MqttTransport::new();
    let attempt = transport.connect(&options);
    let size = std::mem::size_of_val(&*attempt);
    println!("MqttTransport::connect future: {size} bytes");
    // 0.2 KB today, the stages apart (0.6 KB for TCP, 1.3 KB for TLS or MQTT, one at a time).
    assert!(size < 512, "connect future: {size} bytes");
}
