//! An IoT Plug and Play temperature controller with two thermostat components
//! (`dtmi:com:example:TemperatureController;2`, the model of the official samples): component
//! telemetry, read-only and writable properties with their acknowledgements, and component
//! commands, all by the conventions.
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it talks to Azure (set `thermostat1`'s
//! `targetTemperature` in IoT Explorer within a minute); without it it starts the local emulator
//! and plays the service: it sets a target temperature, calls a component command, and reads
//! the acknowledgement back from the twin.
//!
//! ```text
//! cargo run --example pnp_thermostat
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dps_emulator::MethodInvocation;
use hub_client::pnp::{ReportedPatch, ack_code};
use hub_client::{HubClient, Message};
use serde_json::{Value, json};

const MODEL_ID: &str = "dtmi:com:example:TemperatureController;2";
const THERMOSTATS: [&str; 2] = ["thermostat1", "thermostat2"];
const COMPONENTS: [&str; 3] = ["thermostat1", "thermostat2", "deviceInformation"];

/// One thermostat's state: the current temperature and the extremes since start.
#[derive(Debug, Clone, Copy)]
struct Thermostat {
    current: f64,
    target: f64,
    min: f64,
    max: f64,
}

impl Thermostat {
    fn new(current: f64) -> Self {
        Self {
            current,
            target: current,
            min: current,
            max: current,
        }
    }

    /// One step towards the target.
    fn step(&mut self) {
        self.current += (self.target - self.current).clamp(-1.0, 1.0);
        self.min = self.min.min(self.current);
        self.max = self.max.max(self.current);
    }
}

type Thermostats = Arc<Mutex<HashMap<&'static str, Thermostat>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "pnp-temperature-controller",
        None,
    )
    .await?;
    let hub = Arc::new(builder.model_id(MODEL_ID).connect().await?);
    println!("connected as {} announcing {MODEL_ID}", hub.device_id());
    let thermostats: Thermostats = Arc::new(Mutex::new(
        THERMOSTATS
            .iter()
            .map(|name| (*name, Thermostat::new(20.0)))
            .collect(),
    ));

    // Read-only properties: the root's and each component's, with the component marker.
    let mut patch = ReportedPatch::new()
        .property("serialNumber", json!("SN-PNP-0001"))
        .component_property("deviceInformation", "manufacturer", json!("dps-rs"))
        .component_property("deviceInformation", "swVersion", json!("1.0.0"));
    for name in THERMOSTATS {
        patch = patch.component_property(name, "maxTempSinceLastReboot", json!(20.0));
    }
    println!("reporting {}", patch.to_json());
    hub.update_reported(&patch).await?;

    // Commands: `thermostatN*getMaxMinReport` and the root's `reboot`.
    let commands = tokio::spawn(serve_commands(Arc::clone(&hub), Arc::clone(&thermostats)));
    // Writable properties, acknowledged by the conventions (also after every reconnect).
    let writable = tokio::spawn(serve_writable(Arc::clone(&hub), Arc::clone(&thermostats)));

    // Play the service on the emulator.
    if let Some(emulator) = &target.emulator {
        let (name, device) = (target.hub.clone(), target.device_id.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        emulator
            .patch_desired(
                &name,
                &device,
                json!({ "thermostat1": { "__t": "c", "targetTemperature": 23.5 } }),
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answer = emulator
            .invoke_method(
                &name,
                &device,
                MethodInvocation::new("thermostat1*getMaxMinReport"),
            )
            .await?;
        println!(
            "service: getMaxMinReport answered {}: {}",
            answer.status, answer.payload
        );
    }

    // Telemetry: one message per component, tagged with `$.sub`.
    let rounds = if target.emulator.is_some() { 3 } else { 30 };
    for _ in 0..rounds {
        let readings: Vec<(&str, f64)> = {
            let mut all = thermostats.lock().unwrap_or_else(PoisonError::into_inner);
            THERMOSTATS
                .iter()
                .map(|name| {
                    let t = all.entry(name).or_insert_with(|| Thermostat::new(20.0));
                    t.step();
                    (*name, t.current)
                })
                .collect()
        };
        for (component, temperature) in readings {
            hub.send(Message::json(&json!({ "temperature": temperature }))?.component(component))
                .await?;
            println!("{component}: temperature {temperature:.1}");
        }
        tokio::time::sleep(Duration::from_secs(if target.emulator.is_some() {
            0
        } else {
            2
        }))
        .await;
    }

    if let Some(emulator) = &target.emulator {
        let twin = emulator.twin(&target.hub, &target.device_id)?;
        let reported = serde_json::to_value(&twin)?;
        println!(
            "service: thermostat1 in the reported properties: {}",
            reported["properties"]["reported"]["thermostat1"]
        );
    }
    commands.abort();
    writable.abort();
    hub.close().await;
    Ok(())
}

/// Applies every writable property and acknowledges it.
async fn serve_writable(hub: Arc<HubClient>, thermostats: Thermostats) {
    let mut updates = match hub.desired_patches() {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("{error}");
            return;
        }
    };
    while let Some(update) = updates.recv().await {
        let mut patch = ReportedPatch::new();
        for property in update.writable_properties(&COMPONENTS) {
            let component = property.component.as_deref().unwrap_or("(root)");
            let ack = match (property.component.as_deref(), property.name.as_str()) {
                (Some(c), "targetTemperature") if THERMOSTATS.contains(&c) => {
                    match property.value.as_f64() {
                        Some(target) if (-40.0..=90.0).contains(&target) => {
                            let mut all =
                                thermostats.lock().unwrap_or_else(PoisonError::into_inner);
                            if let Some(t) = THERMOSTATS
                                .iter()
                                .find(|n| **n == c)
                                .and_then(|n| all.get_mut(n))
                            {
                                t.target = target;
                            }
                            property.ack(ack_code::COMPLETED).description("target set")
                        }
                        _ => property
                            .ack_with_value(ack_code::REJECTED, Value::Null)
                            .description("the target must be a temperature from -40 to 90"),
                    }
                }
                _ => property
                    .ack(ack_code::REJECTED)
                    .description("not a writable property of this model"),
            };
            println!(
                "{component}: desired {} = {} (v{}) acknowledged",
                property.name, property.value, property.version
            );
            patch = patch.ack(ack);
        }
        if !patch.is_empty() {
            if let Err(error) = hub.update_reported(&patch).await {
                eprintln!("acknowledgement not sent: {error}");
            }
        }
    }
}

/// Answers the model's commands.
async fn serve_commands(hub: Arc<HubClient>, thermostats: Thermostats) {
    let mut requests = match hub.method_requests() {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("{error}");
            return;
        }
    };
    while let Some(request) = requests.recv().await {
        let thermostat = request.component().and_then(|c| {
            let all = thermostats.lock().unwrap_or_else(PoisonError::into_inner);
            THERMOSTATS
                .iter()
                .find(|n| **n == c)
                .and_then(|n| all.get(n).copied())
        });
        let (status, payload) = match (thermostat, request.command()) {
            (Some(t), "getMaxMinReport") => (
                200,
                json!({ "maxTemp": t.max, "minTemp": t.min, "avgTemp": (t.max + t.min) / 2.0 }),
            ),
            (None, "reboot") if request.component().is_none() => (200, json!({})),
            _ => (404, json!({ "error": "no such command" })),
        };
        println!("command {} answered {status}", request.name());
        if let Err(error) = request.respond(status, payload).await {
            eprintln!("command answer not sent: {error}");
        }
    }
}
