//! Provision a device with an X.509 certificate chain (device → intermediate → root) under an
//! enrollment group that trusts the intermediate. The chain is sent in the TLS handshake.
//!
//! Azure settings: `PROVISIONING_HOST`, `PROVISIONING_IDSCOPE`, `PROVISIONING_X509_CERT_FILE`
//! (PEM: device certificate then intermediates) and `PROVISIONING_X509_KEY_FILE`. Without them it
//! generates a chain on the fly, enrolls the intermediate in the embedded emulator, and
//! provisions `x509-device-001`.

mod common;

use dps_auth::X509Identity;
use dps_client::ProvisioningClient;
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentGroup, EnrollmentSettings, X509Attestation,
    X509CertificateWithInfo, X509Certificates,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::Target::from_env_or_emulator().await?;
    let identity = match (
        std::env::var("PROVISIONING_X509_CERT_FILE").ok(),
        std::env::var("PROVISIONING_X509_KEY_FILE").ok(),
    ) {
        (Some(cert), Some(key)) if target.emulator.is_none() => {
            X509Identity::from_pem(&std::fs::read(cert)?, &std::fs::read(key)?)?
        }
        _ => demo_chain(&target, "x509-device-001").await?,
    };
    let registration_id = identity.registration_id()?.to_owned();
    println!(
        "{registration_id}: presenting a chain of {} certificates",
        identity.chain_len()
    );

    let assignment = ProvisioningClient::new(&target.id_scope, &registration_id, identity)
        .endpoint(&target.endpoint)
        .tls(target.tls.clone())
        .deadline(target.deadline())
        .register()
        .await?;
    println!(
        "{registration_id}: assigned to {} as {}",
        assignment.assigned_hub(),
        assignment.device_id()
    );
    Ok(())
}

/// Generates root → intermediate → device, enrolls the intermediate in the emulator's group.
async fn demo_chain(
    target: &common::Target,
    registration_id: &str,
) -> Result<X509Identity, Box<dyn std::error::Error>> {
    let ca = |cn: &str| -> Result<CertificateParams, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ok(params)
    };
    let root_key = KeyPair::generate()?;
    let root = ca("Demo Root CA")?.self_signed(&root_key)?;
    let root_issuer = Issuer::new(ca("Demo Root CA")?, root_key);
    let intermediate_key = KeyPair::generate()?;
    let intermediate = ca("Demo Intermediate CA")?.signed_by(&intermediate_key, &root_issuer)?;
    let intermediate_issuer = Issuer::new(ca("Demo Intermediate CA")?, intermediate_key);

    let device_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, registration_id);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device = params.signed_by(&device_key, &intermediate_issuer)?;
    drop(root);

    if let Some(emulator) = &target.emulator {
        emulator
            .put_enrollment_group(
                EnrollmentGroup {
                    enrollment_group_id: "demo-x509-group".into(),
                    settings: EnrollmentSettings {
                        attestation: AttestationMechanism {
                            kind: AttestationType::X509,
                            x509: Some(X509Attestation {
                                signing_certificates: Some(X509Certificates {
                                    primary: Some(X509CertificateWithInfo {
                                        certificate: Some(intermediate.pem()),
                                        info: None,
                                    }),
                                    secondary: None,
                                }),
                                ..X509Attestation::default()
                            }),
                            ..AttestationMechanism::default()
                        },
                        ..EnrollmentSettings::default()
                    },
                },
                None,
            )
            .await?;
    }
    let chain = format!("{}{}", device.pem(), intermediate.pem());
    Ok(X509Identity::from_pem(
        chain.as_bytes(),
        device_key.serialize_pem().as_bytes(),
    )?)
}
