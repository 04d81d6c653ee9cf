//! Reporting: the generated BENCHMARKS.md sections (Markdown tables, the plot) and the JSON results.

use crate::Error;
use crate::cli::{Kind, Opts};
use crate::env::Env;
use crate::result::{Curve, Fleet, HubResults, HubScenario, RunResult};
use dps_benches::raw::Breakdown;
use dps_benches::{plot, stats};
use serde::Serialize;
use std::path::PathBuf;

/// The generated sections, written to BENCHMARKS.md as each completes.
pub(crate) struct Sections {
    pub(crate) path: PathBuf,
    pub(crate) no_write: bool,
}

impl Sections {
    pub(crate) fn new(env: &Env, no_write: bool) -> Self {
        Self {
            path: env.root.join("BENCHMARKS.md"),
            no_write,
        }
    }
    pub(crate) fn put(&mut self, name: &str, body: &str) {
        println!("\n## {name}\n{body}");
        if !self.no_write {
            if let Err(e) = dps_benches::report::write_section(&self.path, name, body) {
                eprintln!("loadgen: cannot write {}: {e}", self.path.display());
            }
        }
    }
    pub(crate) fn save(&self) -> Result<(), Error> {
        if !self.no_write {
            println!("\nwrote {}", self.path.display());
        }
        Ok(())
    }
}

pub(crate) fn save_json<T: Serialize>(
    env: &Env,
    opts: &Opts,
    name: &str,
    value: &T,
) -> Result<(), Error> {
    if opts.no_write {
        return Ok(());
    }
    let dir = env.results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(value)?)?;
    Ok(())
}

pub(crate) fn median_of(runs: &[RunResult], f: impl Fn(&RunResult) -> f64) -> f64 {
    let values: Vec<f64> = runs.iter().map(f).filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        f64::NAN
    } else {
        stats::median(&values)
    }
}

/// The medians of one client's runs.
#[derive(Clone, Copy, Default)]
pub(crate) struct Summary {
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) rss_mib: f64,
    pub(crate) cpu_s: f64,
    pub(crate) cpu_us: f64,
    pub(crate) emulator_us: f64,
    pub(crate) failed: f64,
    pub(crate) retransmits: f64,
    pub(crate) busy: f64,
}

pub(crate) fn summarize(runs: &[RunResult]) -> Summary {
    Summary {
        rate: median_of(runs, RunResult::rate),
        p50: median_of(runs, |r| r.p50_ms),
        p99: median_of(runs, |r| r.p99_ms),
        rss_mib: median_of(runs, |r| r.peak_rss_kib as f64 / 1024.0),
        cpu_s: median_of(runs, |r| r.cpu_s),
        cpu_us: median_of(runs, RunResult::cpu_us_per_registration),
        emulator_us: median_of(runs, RunResult::emulator_us_per_registration),
        failed: median_of(runs, |r| r.failed as f64),
        retransmits: median_of(runs, |r| r.retransmits as f64),
        busy: median_of(runs, |r| r.machine_busy_pct),
    }
}

pub(crate) fn fleet_section(results: &Fleet, opts: &Opts) -> String {
    use dps_benches::report::{num, table};
    let summaries: Vec<(Kind, Summary, usize)> = results
        .iter()
        .map(|(k, runs)| (*k, summarize(runs), runs.len()))
        .collect();
    let rows = summaries
        .iter()
        .map(|(k, s, n)| {
            vec![
                k.label().into(),
                num(s.rate),
                num(s.p50),
                num(s.p99),
                num(s.rss_mib),
                format!("{:.3}", s.cpu_s),
                num(s.cpu_us),
                num(s.emulator_us),
                num(s.retransmits),
                format!("{:.0} %", s.busy),
                num(s.failed),
                n.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    let mut text = format!(
        "{} group-derived symmetric-key devices, all in flight at once, MQTT over TLS, emulator \
         retry-after 0 (register, one poll). Medians over the runs.\n\n",
        opts.devices
    );
    text.push_str(&table(
        &[
            "client",
            "devices/s",
            "p50 ms",
            "p99 ms",
            "peak RSS MiB",
            "client CPU s",
            "client CPU µs/reg",
            "emulator CPU µs/reg",
            "TCP retransmits",
            "machine busy",
            "failed",
            "runs",
        ],
        &rows,
    ));
    text.push_str(&ratios_table(&summaries));
    text
}

/// Every pair of clients: the ratio of each figure (higher devices/s is better; lower latency,
/// RSS and CPU are better).
pub(crate) fn ratios_table(summaries: &[(Kind, Summary, usize)]) -> String {
    use dps_benches::report::{ratio, table};
    let find = |k: Kind| {
        summaries
            .iter()
            .find(|(kind, ..)| *kind == k)
            .map(|(_, s, _)| *s)
    };
    let pairs = [
        (Kind::Sdk, Kind::Raw),
        (Kind::Sdk, Kind::Python),
        (Kind::Raw, Kind::Python),
    ];
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .filter_map(|&(a, b)| {
            let (x, y) = (find(a)?, find(b)?);
            Some(vec![
                format!("{} / {}", a.label(), b.label()),
                ratio(x.rate, y.rate),
                ratio(x.p50, y.p50),
                ratio(x.p99, y.p99),
                ratio(x.rss_mib, y.rss_mib),
                ratio(x.cpu_us, y.cpu_us),
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\nRatios (devices/s: higher is better; the others: lower is better):\n\n{}",
        table(
            &["ratio", "devices/s", "p50", "p99", "peak RSS", "CPU/reg"],
            &rows
        )
    )
}

pub(crate) fn curve_section(env: &Env, curve: &Curve, opts: &Opts) -> Result<String, Error> {
    use dps_benches::report::{num, table};
    let kinds: Vec<Kind> = curve
        .first()
        .map(|(_, p)| p.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let mut headers = vec!["in flight".to_owned()];
    for k in &kinds {
        headers.push(format!("{} devices/s", k.label()));
        headers.push(format!("{} p99 ms", k.label()));
        headers.push(format!("{} CPU µs/reg", k.label()));
        headers.push(format!("{} peak RSS MiB", k.label()));
    }
    headers.push("emulator CPU µs/reg (SDK run)".into());
    let mut rows = Vec::new();
    let mut series: Vec<Vec<plot::Series>> = vec![Vec::new(); 4];
    for k in &kinds {
        for s in &mut series {
            s.push((k.label().to_owned(), Vec::new()));
        }
    }
    for (c, point) in curve {
        let mut row = vec![c.to_string()];
        let mut emulator = f64::NAN;
        for (i, (k, runs)) in point.iter().enumerate() {
            let s = summarize(runs);
            let devices = runs.first().map_or(0, |r| r.devices);
            let failed = if s.failed > 0.0 {
                format!(" ({} failed)", num(s.failed))
            } else {
                String::new()
            };
            row.push(format!("{}{failed}", num(s.rate)));
            row.push(num(s.p99));
            row.push(num(s.cpu_us));
            row.push(num(s.rss_mib));
            if *k == Kind::Sdk {
                emulator = s.emulator_us;
            }
            let x = *c as f64;
            series[0][i].1.push((x, s.rate));
            series[1][i].1.push((x, s.p99));
            series[2][i].1.push((x, s.cpu_us));
            series[3][i].1.push((x, s.rss_mib));
            let _ = devices;
        }
        row.push(num(emulator));
        rows.push(row);
    }
    let png = env.results_dir().join("scaling.png");
    if !opts.no_write {
        std::fs::create_dir_all(env.results_dir())?;
        let titles = [
            ("registrations per second", "devices/s"),
            ("p99 registration latency", "ms"),
            ("client CPU per registration", "µs"),
            ("client peak RSS", "MiB"),
        ];
        let panels: Vec<plot::Panel> = titles
            .iter()
            .zip(series)
            .map(|((title, unit), series)| plot::Panel {
                title: (*title).into(),
                y_label: (*unit).into(),
                series,
            })
            .collect();
        plot::draw(
            &png,
            "DPS registration vs devices in flight (log-log)",
            &panels,
        )?;
    }
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let devices_note = kinds
        .iter()
        .map(|k| {
            let sizes: Vec<String> = curve
                .iter()
                .map(|(_, p)| {
                    p.iter()
                        .find(|(kk, _)| kk == k)
                        .and_then(|(_, r)| r.first())
                        .map_or(0, |r| r.devices)
                        .to_string()
                })
                .collect();
            format!("{}: {}", k.label(), sizes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(format!(
        "Devices registered per point ({devices_note}); medians over {} runs for the Rust clients, \
         one run for the Python SDK (except at the fleet size, which reuses the fleet runs).\n\n{}\n\
         ![scaling curve](benches/results/scaling.png)\n",
        opts.runs,
        table(&header_refs, &rows)
    ))
}

/// A phase of the breakdown: its name and how to read it.
pub(crate) type Phase = (&'static str, fn(&Breakdown) -> f64);

pub(crate) fn latency_section(results: &[(Kind, RunResult)], opts: &Opts) -> String {
    use dps_benches::report::{num, ratio, table};
    let medians: Vec<(Kind, f64)> = results
        .iter()
        .map(|(k, r)| (*k, stats::median(&r.samples_ms)))
        .collect();
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(k, r)| {
            vec![
                k.label().into(),
                num(stats::median(&r.samples_ms)),
                num(stats::quantile(&r.samples_ms, 0.1)),
                num(stats::quantile(&r.samples_ms, 0.9)),
                num(stats::quantile(&r.samples_ms, 0.0)),
                num(r.emulator_us_per_registration() / 1e3),
                r.failed.to_string(),
            ]
        })
        .collect();
    let mut text = format!(
        "{} registrations one after the other, each a new device on a new TLS connection (after one \
         warm-up), retry-after 0.\n\n",
        opts.latency_runs
    );
    text.push_str(&table(
        &[
            "client",
            "median ms",
            "p10 ms",
            "p90 ms",
            "min ms",
            "emulator CPU ms/reg",
            "failed",
        ],
        &rows,
    ));
    let get = |k: Kind| medians.iter().find(|(kk, _)| *kk == k).map(|(_, m)| *m);
    let mut ratios = Vec::new();
    for (a, b) in [
        (Kind::Sdk, Kind::Raw),
        (Kind::Python, Kind::Sdk),
        (Kind::Python, Kind::Raw),
    ] {
        if let (Some(x), Some(y)) = (get(a), get(b)) {
            ratios.push(vec![format!("{} / {}", a.label(), b.label()), ratio(x, y)]);
        }
    }
    if !ratios.is_empty() {
        text.push_str(&format!(
            "\nRatios of the medians:\n\n{}",
            table(&["ratio", "median latency"], &ratios)
        ));
    }
    if let Some((_, raw_result)) = results.iter().find(|(k, _)| *k == Kind::Raw) {
        let b = &raw_result.breakdowns;
        let phases: [Phase; 6] = [
            ("TCP connect + TLS handshake", |b| b.tcp_tls_ms),
            ("CONNECT → CONNACK", |b| b.connect_ms),
            ("SUBSCRIBE → SUBACK", |b| b.subscribe_ms),
            ("register → PUBACK + 202", |b| b.register_ms),
            ("poll → 200 assigned", |b| b.poll_ms),
            ("DISCONNECT + TLS close", |b| b.close_ms),
        ];
        let total = stats::median(&b.iter().map(Breakdown::total_ms).collect::<Vec<_>>());
        let rows: Vec<Vec<String>> = phases
            .iter()
            .map(|(name, f)| {
                let m = stats::median(&b.iter().map(f).collect::<Vec<_>>());
                vec![
                    (*name).into(),
                    format!("{m:.3}"),
                    format!("{:.0} %", 100.0 * m / total),
                ]
            })
            .collect();
        text.push_str(&format!(
            "\nBreakdown of the raw baseline's registration (medians of each phase over the {} runs; \
             the SDK performs the same exchange):\n\n{}",
            b.len(),
            table(&["phase", "median ms", "share"], &rows)
        ));
    }
    text
}

pub(crate) fn hub_section(results: &HubResults) -> String {
    use dps_benches::report::{num, ratio, table};
    let mut telemetry_rows = Vec::new();
    let mut idle_rows = Vec::new();
    let mut ratio_rows = Vec::new();
    for (scenario, per_kind) in results {
        let mut medians = Vec::new();
        for (kind, runs) in per_kind {
            let rate = median_of(runs, RunResult::rate);
            let cpu_us = median_of(runs, |r| {
                if r.ok == 0 {
                    f64::NAN
                } else {
                    r.cpu_s * 1e6 / r.ok as f64
                }
            });
            let emulator_us = median_of(runs, RunResult::emulator_us_per_registration);
            let peak = median_of(runs, |r| r.peak_rss_kib as f64 / 1024.0);
            let per_connection = median_of(runs, |r| {
                if r.ok == 0 {
                    f64::NAN
                } else {
                    (r.rss_end_kib as f64 - r.rss_start_kib as f64) / r.ok as f64
                }
            });
            let failed = median_of(runs, |r| r.failed as f64);
            let messages = runs.first().map_or(0, |r| r.ok + r.failed);
            if *scenario == HubScenario::Idle {
                idle_rows.push(vec![
                    kind.label().into(),
                    num(median_of(runs, |r| r.ok as f64)),
                    num(per_connection),
                    num(peak),
                    num(failed),
                    runs.len().to_string(),
                ]);
                medians.push((*kind, per_connection, f64::NAN));
            } else {
                telemetry_rows.push(vec![
                    scenario.label().into(),
                    kind.label().into(),
                    messages.to_string(),
                    num(rate),
                    num(cpu_us),
                    num(emulator_us),
                    num(peak),
                    num(failed),
                    runs.len().to_string(),
                ]);
                medians.push((*kind, rate, cpu_us));
            }
        }
        let get = |k: Kind| medians.iter().find(|m| m.0 == k).copied();
        for (a, b) in [(Kind::Sdk, Kind::Raw), (Kind::Sdk, Kind::Python)] {
            if let (Some(x), Some(y)) = (get(a), get(b)) {
                let what = if *scenario == HubScenario::Idle {
                    "RSS/connection"
                } else {
                    "msgs/s; CPU/msg"
                };
                let value = if *scenario == HubScenario::Idle {
                    ratio(x.1, y.1)
                } else {
                    format!("{}; {}", ratio(x.1, y.1), ratio(x.2, y.2))
                };
                ratio_rows.push(vec![
                    scenario.label().into(),
                    format!("{} / {}", a.label(), b.label()),
                    what.into(),
                    value,
                ]);
            }
        }
    }
    format!(
        "Telemetry: QoS 1, 256-byte payload, 4 system + 2 application properties, 16 messages in \
         flight per connection (the SDK's window), devices registered through DPS first. Idle: RSS \
         growth of the client process per connected device after 5 s idle (keep-alive 60 s \
         running), measured from just before connecting.\n\n{}\n{}\nRatios:\n\n{}",
        table(
            &[
                "connections",
                "client",
                "messages",
                "msgs/s",
                "client CPU µs/msg",
                "emulator CPU µs/msg",
                "peak RSS MiB",
                "failed",
                "runs"
            ],
            &telemetry_rows
        ),
        table(
            &[
                "client",
                "connected",
                "RSS growth KiB/connection",
                "peak RSS MiB",
                "failed",
                "runs"
            ],
            &idle_rows
        ),
        table(&["scenario", "ratio", "figure", "value"], &ratio_rows),
    )
}
