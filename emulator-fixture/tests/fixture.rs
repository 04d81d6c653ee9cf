//! The fixture's builders provision devices and connect them to their hub, end to end.

use dps_emulator::HubEventKind;
use dps_emulator_fixture::ClientFixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builders_provision_and_connect_individual_and_group_devices() {
    let fixture = ClientFixture::start().await.unwrap();
    for device in [
        fixture.enroll_symmetric_key("fx-1").await.unwrap(),
        fixture
            .enroll_group_device("fx-fleet", "fx-2")
            .await
            .unwrap(),
    ] {
        let assignment = device
            .provisioning_client()
            .unwrap()
            .register()
            .await
            .unwrap();
        assert_eq!(assignment.assigned_hub(), fixture.emulator().default_hub());
        let hub = device
            .hub_client(&assignment)
            .unwrap()
            .connect()
            .await
            .unwrap();
        hub.send(hub_client::Message::new("from the fixture"))
            .await
            .unwrap();
        hub.close().await;
        let received = fixture
            .emulator()
            .hub_events(fixture.emulator().default_hub(), 0)
            .into_iter()
            .filter(|e| e.kind == HubEventKind::Telemetry && e.device_id == assignment.device_id())
            .count();
        assert_eq!(received, 1);
    }
    fixture.shutdown().await;
}
