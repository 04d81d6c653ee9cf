//! Deterministic scenarios for certificate renewal in the device lifecycle: over the hub's
//! credentials topic, by provisioning again, and the first issuance.

mod device_world;
mod harness;

use device_world::*;

const CSR: &str = "TUlJQ1NSZmFrZQ==";

fn renewing(over_hub: bool) -> DeviceConfig {
    config().renewal(Some(CertificateRenewal::default().over_hub(over_hub)))
}

fn credentials_reply(w: &mut World, status: u16, rid: &str, body: &str) {
    let topic = format!("$iothub/credentials/res/{status}/?$rid={rid}");
    w.device.handle_publish(
        w.now,
        IncomingPublish::new(topic, body.as_bytes().to_vec(), Some(9)),
    );
    w.drain();
}

fn issue_requests(w: &World) -> Vec<(Timestamp, String, String)> {
    w.hub_publishes
        .iter()
        .filter(|p| {
            p.1.starts_with("$iothub/credentials/POST/issueCertificate/")
        })
        .cloned()
        .collect()
}

/// Renewal is asked for at 80 % of the lifetime less up to 5 %, and not before.
#[test]
fn renewal_is_due_at_the_configured_share_of_the_lifetime() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(1));
    // A 100-day certificate issued at the origin.
    w.device
        .certificate_validity(w.now, UNIX0, UNIX0 + 100 * 86_400);
    w.run_until(at(75 * 86_400 - 1));
    assert!(!w.events().contains(&LifecycleEvent::CsrNeeded));
    w.run_until(at(80 * 86_400));
    let due: Vec<Timestamp> = w
        .lifecycle
        .iter()
        .filter(|(_, e)| *e == LifecycleEvent::CsrNeeded)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(due.len(), 1, "{due:?}");
    assert!(due[0] >= at(75 * 86_400) && due[0] <= at(80 * 86_400));
    assert!(w.dps_requests().is_empty());
}

/// Over the hub: the credentials filter is in the SUBSCRIBE, the request carries the CSR,
/// 202 then 200 saves the chain, and DPS is never asked.
#[test]
fn renewal_over_the_hub_saves_the_new_chain_with_no_dps_call() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    assert!(w.subscribes[0].contains(&"$iothub/credentials/res/#".to_string()));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    let requests = issue_requests(&w);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, at(10));
    assert_eq!(
        requests[0].2,
        format!(r#"{{"id":"dev-1","csr":"{CSR}","replace":"*"}}"#)
    );
    credentials_reply(
        &mut w,
        202,
        "1",
        r#"{"correlationId":"c","operationExpires":"x"}"#,
    );
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, LifecycleEvent::CertificateRenewed { .. }))
    );
    let connects = w.hub_connects().len();
    credentials_reply(&mut w, 200, "1", r#"["bGVhZg==","aW50ZXJt"]"#);
    let events = w.events();
    assert_eq!(
        events[events.len() - 2..],
        [
            LifecycleEvent::CertificateRenewed { via: Issuer::Hub },
            LifecycleEvent::Connected { credential: X509 },
        ],
        "the connection moves to the new certificate at once"
    );
    assert_eq!(w.hub_connects().len(), connects + 1);
    assert_eq!(w.hub_connects().last().unwrap().0, w.now);
    let Some(StoreAction::Save(record)) = w.store.last() else {
        panic!("a save: {:?}", w.store)
    };
    assert_eq!(record.issued_certificate_chain, ["bGVhZg==", "aW50ZXJt"]);
    assert!(w.dps_requests().is_empty());
}

/// 409004: a request is already active; the request is sent again after its retry-after.
#[test]
fn renewal_over_the_hub_waits_out_409004() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(
        &mut w,
        409,
        "1",
        r#"{"errorCode":409004,"message":"active","trackingId":"t","timestampUtc":"x","retryAfter":5}"#,
    );
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::RenewalDeferred { retry_in: secs(5) })
    );
    w.run_until(at(14));
    assert_eq!(issue_requests(&w).len(), 1);
    w.run_until(at(15));
    let requests = issue_requests(&w);
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.0, r.1.clone()))
            .collect::<Vec<_>>(),
        [
            (
                at(10),
                "$iothub/credentials/POST/issueCertificate/?$rid=1".to_string()
            ),
            (
                at(15),
                "$iothub/credentials/POST/issueCertificate/?$rid=2".to_string()
            ),
        ]
    );
    // A late answer for the first request is ignored; the second one's counts.
    credentials_reply(&mut w, 200, "1", r#"["b2xk"]"#);
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, LifecycleEvent::CertificateRenewed { .. }))
    );
    credentials_reply(&mut w, 200, "2", r#"["bmV3"]"#);
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Hub })
    );
}

#[test]
fn a_csr_over_8_kb_is_refused_before_anything_is_sent() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    let big = "A".repeat(8 * 1024 + 1);
    assert_eq!(
        w.device.renew_with_csr(w.now, big),
        Err(RenewError::CsrTooLarge { len: 8 * 1024 + 1 })
    );
    w.drain();
    assert!(issue_requests(&w).is_empty());
}

/// Where the hub does not issue, the device provisions again with the CSR and DPS's chain is
/// saved.
#[test]
fn renewal_by_reprovisioning_carries_the_csr_to_dps() {
    let mut w = World::new(renewing(false), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    assert!(w.subscribes.is_empty(), "{:?}", w.subscribes);
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.run_until(at(20));
    assert_eq!(w.dps_requests(), [(at(10), X509)]);
    assert!(
        w.dps_bodies[0].contains(&format!(r#""csr":"{CSR}""#)),
        "{}",
        w.dps_bodies[0]
    );
    assert_eq!(
        w.reprovisions(),
        [(
            at(10),
            ReprovisionReason::CertificateRenewal,
            Duration::ZERO
        )]
    );
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Dps })
    );
    assert!(issue_requests(&w).is_empty());
}

/// A hub that answers the credentials request with an error other than 409004 does not issue:
/// DPS does, with the same CSR.
#[test]
fn a_hub_refusing_to_issue_falls_back_to_dps() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(&mut w, 400, "1", r#"{"errorCode":400004,"message":"no"}"#);
    w.run_until(at(20));
    assert_eq!(w.dps_requests(), [(at(10), X509)]);
    assert!(w.dps_bodies[0].contains(CSR));
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Dps })
    );
}

/// The connection drops between 202 and 200: the request goes out again (replacing any active
/// one) as soon as the session is back, and that answer counts.
#[test]
fn a_renewal_interrupted_by_a_drop_is_sent_again_after_the_reconnect() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(
        &mut w,
        202,
        "1",
        r#"{"correlationId":"c","operationExpires":"x"}"#,
    );
    w.device.disconnected(w.now);
    w.run_until(at(100));
    let requests = issue_requests(&w);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let reconnect = w.hub_connects()[1].0;
    assert_eq!(requests[1].0, reconnect);
    assert_eq!(
        requests[1].1,
        "$iothub/credentials/POST/issueCertificate/?$rid=2"
    );
    // The credentials filter went out again on the new connection.
    assert_eq!(
        w.subscribes
            .iter()
            .filter(|f| f.contains(&"$iothub/credentials/res/#".to_string()))
            .count(),
        2
    );
    credentials_reply(&mut w, 200, "2", r#"["bmV3"]"#);
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Hub })
    );
    assert!(w.dps_requests().is_empty());
}

/// A CSR in the registration template is the first issuance: sent once, its chain reported as
/// issued by DPS; a later re-provisioning does not send it again.
#[test]
fn a_first_issuance_csr_is_sent_once() {
    let mut config = config();
    config.registration = RegistrationConfig::new("dev-1").csr(CSR);
    let mut w = World::new(config, None, assign(HUB_A), hub_ok());
    w.run_until(at(10));
    assert!(w.dps_bodies[0].contains(CSR), "{}", w.dps_bodies[0]);
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Dps })
    );
    let Some(StoreAction::Save(record)) = w.store.last() else {
        panic!("a save: {:?}", w.store)
    };
    assert_eq!(record.issued_certificate_chain, ["ZHBz"]);
    w.device.reprovision(w.now);
    w.run_until(at(20));
    assert_eq!(w.dps_bodies.len(), 2);
    assert!(!w.dps_bodies[1].contains("csr"), "{}", w.dps_bodies[1]);
}
