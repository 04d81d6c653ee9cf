//! The DPS device protocol over MQTT: CONNECT fields, topics, JSON bodies, and the registration
//! state machine ([`Registration`]).
//!
//! The stateless pieces ([`topic`], [`DpsConnectInfo`], [`Response::parse`],
//! [`RegistrationRequest`]) mirror the Embedded C SDK's `az_iot_provisioning_client` and can be
//! used on their own; [`Registration`] adds request correlation, polling, retry and deadlines on
//! top of them.

mod connect;
mod model;
pub mod registration;
mod response;
pub mod topic;

pub use connect::{
    CSR_API_VERSION, DEFAULT_API_VERSION, DpsConnectInfo, DpsUsername, GLOBAL_ENDPOINT,
};
pub use model::{
    DeviceRegistrationResult, ErrorCode, ModelError, RegistrationOperationStatus,
    RegistrationRequest, RegistrationStatus, ServiceError, Substatus,
    SymmetricKeyRegistrationResult, TpmRegistrationResult, X509CertificateInfo,
    X509RegistrationResult,
};
pub use registration::Registration;
pub use response::{Response, ResponseBody, ResponseError, parse_body};
