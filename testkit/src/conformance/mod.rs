//! The transport conformance suite, run by `dps-transport-mqtt` and `dps-transport-ws`. Every
//! case takes a [`Setup`]: the transport under test and which of the emulator's ports it
//! speaks to. [`conformance_suite!`](crate::conformance_suite) expands to one `#[tokio::test]`
//! per case.

pub mod echo;
pub mod silent;
pub mod tls_servers;

mod dps_cases;
mod harness;
mod session_cases;
mod tls_cases;

use std::time::Duration;

pub use dps_cases::*;
pub use harness::{Port, Setup, trusting};
pub use session_cases::*;
pub use tls_cases::*;

/// The longest any single step may take.
pub const STEP: Duration = Duration::from_secs(5);

/// Expands to one `#[tokio::test]` per conformance case, each running the case of
/// [`conformance`](crate::conformance) on `$setup` (an expression giving a
/// [`Setup`](crate::conformance::Setup)).
#[macro_export]
macro_rules! conformance_suite {
    ($setup:expr) => {
        $crate::conformance_suite!(@cases $setup;
            sas_register_round_trip,
            x509_chain_via_intermediate_group,
            x509_full_chain_is_presented,
            wrong_key_is_refused_with_code_5,
            qos2_is_unsupported_and_never_sent,
            keep_alive_pings_keep_an_idle_connection_open,
            dropping_the_connection_closes_it,
            dropping_a_registration_future_midway_closes_it,
            disconnect_is_clean,
            an_inline_session_runs_where_it_is_polled,
            echo_round_trip_and_concurrent_senders,
            incoming_publishes_are_acknowledged_only_on_request,
            outstanding_operations_fail_when_the_connection_dies,
            an_oversized_packet_closes_as_too_large,
            subscribe_times_out,
            a_silent_server_is_detected_by_keep_alive,
            connect_times_out_in_the_tls_stage,
            client_hello_offers_only_the_policy_and_tls11_is_refused,
            ecc_only_offers_only_ecdsa,
            cbc_suite_server_is_refused,
            wrong_host_name_is_refused,
            untrusted_ca_is_refused,
            expired_certificate_is_refused,
            debug_output_hides_the_token,
        );
    };
    (@cases $setup:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::$case($setup).await;
            }
        )+
    };
}
