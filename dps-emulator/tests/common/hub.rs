//! Hub helpers: a minimal IoT Hub device client on top of [`Conn`](super::Conn) (hub username,
//! hub SAS tokens, twin, methods, C2D) and the hub service API with an `iothubowner` token.

use std::time::{Duration, Instant};

use dps_auth::{SasResource, SasStyle, SymmetricKey, generate_sas};
use dps_emulator::model::{HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, Emulator};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Login, Packet, SubscribeReasonCode};
use serde_json::Value;

use super::{
    Conn, ConnectOutcome, HttpReply, Leaf, STEP, connect_raw, connection_string_field, encode,
    https, service_token_with, unix_now,
};

/// The api-version the hub service API and device usernames carry.
pub(crate) const HUB_API: &str = "2021-04-12";

/// `{hub}/{device}[/{module}]/?api-version=..` as the Python SDK writes it.
pub(crate) fn hub_username(hub: &str, device_id: &str, module_id: Option<&str>) -> String {
    let client = client_id(device_id, module_id);
    format!("{hub}/{client}/?api-version=2019-10-01&DeviceClientType=rust-tests%2F1.0")
}

/// `{device}` or `{device}/{module}`.
pub(crate) fn client_id(device_id: &str, module_id: Option<&str>) -> String {
    match module_id {
        Some(module_id) => format!("{device_id}/{module_id}"),
        None => device_id.to_owned(),
    }
}

/// A device (or module) SAS token in the documented hub form, expiring at `expiry`.
pub(crate) fn hub_sas_until(
    key: &str,
    hub: &str,
    device_id: &str,
    module_id: Option<&str>,
    expiry: u64,
) -> String {
    let key = SymmetricKey::from_base64(key).unwrap();
    let resource = match module_id {
        Some(module_id) => SasResource::hub_module(hub, device_id, module_id),
        None => SasResource::hub_device(hub, device_id),
    };
    generate_sas(&key, &resource, &SasStyle::hub(), expiry)
        .unwrap()
        .into_string()
}

/// A device SAS token valid for an hour.
pub(crate) fn hub_sas(key: &str, hub: &str, device_id: &str) -> String {
    hub_sas_until(key, hub, device_id, None, unix_now() + 3600)
}

/// A CONNECT packet with the given keep-alive and clean-session flag.
pub(crate) fn hub_connect_packet(
    client_id: &str,
    username: &str,
    password: Option<&str>,
    keep_alive: u16,
    clean_session: bool,
) -> Vec<u8> {
    let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
    connect.keep_alive = keep_alive;
    connect.clean_session = clean_session;
    connect.login = Some(Login::new(username, password.unwrap_or_default()));
    encode(&Packet::Connect(connect))
}

/// How a hub CONNECT was answered (`Ok` with the session-present flag).
pub(crate) async fn hub_connect_raw(
    emu: &Emulator,
    identity: Option<&Leaf>,
    packet: &[u8],
) -> Result<Conn, ConnectReturnCode> {
    match connect_raw(emu, identity, packet).await {
        ConnectOutcome::Accepted(conn) => Ok(*conn),
        ConnectOutcome::Refused(code) => Err(code),
        ConnectOutcome::Closed => panic!("the server closed without CONNACK"),
    }
}

/// CONNECT a device or module with a SAS token (keep-alive 60 s, clean session).
pub(crate) async fn hub_connect(
    emu: &Emulator,
    hub: &str,
    device_id: &str,
    module_id: Option<&str>,
    token: Option<String>,
    identity: Option<&Leaf>,
) -> Result<Conn, ConnectReturnCode> {
    let packet = hub_connect_packet(
        &client_id(device_id, module_id),
        &hub_username(hub, device_id, module_id),
        token.as_deref(),
        60,
        true,
    );
    hub_connect_raw(emu, identity, &packet).await
}

/// A connected device (SAS, default hub), not yet subscribed to anything.
pub(crate) async fn hub_device(emu: &Emulator, device_id: &str, key: &str) -> Conn {
    let hub = emu.default_hub().to_owned();
    hub_connect(
        emu,
        &hub,
        device_id,
        None,
        Some(hub_sas(key, &hub, device_id)),
        None,
    )
    .await
    .unwrap_or_else(|code| panic!("hub CONNECT of {device_id} refused: {code:?}"))
}

/// A SAS device identity with the given primary key (secondary generated).
pub(crate) fn sas_identity(device_id: &str, primary: &str) -> DeviceIdentity {
    DeviceIdentity {
        device_id: device_id.into(),
        authentication: HubAuthentication {
            kind: HubAuthType::Sas,
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: Some(primary.into()),
                secondary_key: None,
            }),
            x509_thumbprint: None,
        },
        ..DeviceIdentity::default()
    }
}

/// Creates a SAS device in the default hub; its primary key.
pub(crate) async fn create_sas_device(emu: &Emulator, device_id: &str) -> String {
    let key = super::key(7, 32);
    emu.create_device(emu.default_hub(), sas_identity(device_id, &key))
        .await
        .unwrap();
    key
}

impl Conn {
    /// Subscribes to one filter with QoS 1 and checks it was granted QoS 1.
    pub(crate) async fn subscribe_ok(&mut self, filter: &str) {
        let codes = self
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap_or_else(|| panic!("SUBACK for {filter}"));
        assert_eq!(
            codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            "{filter}"
        );
    }

    /// The next PUBLISH, which must arrive within [`STEP`].
    pub(crate) async fn expect_publish(&mut self) -> (String, Vec<u8>) {
        self.next_publish(STEP).await.expect("a message in time")
    }

    /// Publishes telemetry with QoS 1 on `devices/{id}/messages/events/{bag}` and waits for
    /// its PUBACK (the hub acknowledges after storing it).
    pub(crate) async fn telemetry(&mut self, device_id: &str, bag: &str, body: &[u8]) {
        let topic = format!("devices/{device_id}/messages/events/{bag}");
        assert!(self.publish(&topic, body.to_vec()).await, "telemetry sent");
        self.wait_puback().await;
    }

    /// Waits for the next PUBACK (publishes read meanwhile are kept).
    pub(crate) async fn wait_puback(&mut self) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_packet(remaining).await.expect("PUBACK in time") {
                Packet::PubAck(_) => return,
                Packet::Publish(publish) => self.keep(publish).await,
                _ => {}
            }
        }
    }

    /// Twin GET with `$rid={rid}` (subscribed to `$iothub/twin/res/#` already): status, body.
    pub(crate) async fn twin_get(&mut self, rid: &str) -> (String, Value) {
        let topic = format!("$iothub/twin/GET/?$rid={rid}");
        assert!(self.publish(&topic, b" ".to_vec()).await);
        let (topic, body) = self.expect_publish().await;
        (topic, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Reported PATCH with `$rid={rid}`: the response topic.
    pub(crate) async fn twin_patch(&mut self, rid: &str, patch: &Value) -> String {
        let topic = format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}");
        assert!(self.publish(&topic, patch.to_string()).await);
        self.expect_publish().await.0
    }
}

/// A valid `iothubowner` token from the emulator's hub connection string.
pub(crate) fn hub_token(emu: &Emulator) -> String {
    let cs = &emu.info().hub_connection_string;
    service_token_with(
        connection_string_field(cs, "HostName"),
        connection_string_field(cs, "SharedAccessKey"),
        connection_string_field(cs, "SharedAccessKeyName"),
        unix_now() + 3600,
    )
}

/// An authenticated hub service API request with a JSON body (if any) and extra headers.
pub(crate) async fn hub_service(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> HttpReply {
    hub_service_with(emu, &hub_token(emu), method, path, body, headers).await
}

/// [`hub_service`] with a given token.
pub(crate) async fn hub_service_with(
    emu: &Emulator,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> HttpReply {
    let mut all = vec![("authorization", token.to_owned())];
    all.extend(headers.iter().map(|(n, v)| (*n, v.clone())));
    let separator = if path.contains('?') { '&' } else { '?' };
    https(
        emu,
        method,
        &format!("{path}{separator}api-version={HUB_API}"),
        &all,
        body.map(|b| serde_json::to_vec(b).unwrap()),
    )
    .await
}

/// Polls the events feed until `pred` holds for one event after `since` (or [`STEP`] passes).
pub(crate) async fn wait_event(
    emu: &Emulator,
    since: u64,
    pred: impl Fn(&dps_emulator::HubEvent) -> bool,
) -> dps_emulator::HubEvent {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(e) = emu
            .hub_events(emu.default_hub(), since)
            .into_iter()
            .find(|e| pred(e))
        {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching event in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number of the last event so far.
pub(crate) fn last_event(emu: &Emulator) -> u64 {
    emu.hub_events(emu.default_hub(), 0)
        .last()
        .map_or(0, |e| e.sequence_number)
}

/// Creates a job and waits until it is no longer active; the final job.
pub(crate) async fn run_job(emu: &dps_emulator::Emulator, job: Value) -> Value {
    let reply = hub_service(emu, "POST", "/jobs/create", Some(&job), &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let created = reply.json();
    assert_eq!(created["status"], "enqueued", "{created}");
    let id = created["jobId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = hub_service(emu, "GET", &format!("/jobs/{id}"), None, &[])
            .await
            .json();
        if !matches!(job["status"].as_str(), Some("enqueued" | "running")) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job ends in time: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
