//! The printed results: one Markdown table (pasteable into the README) and the lines around it.

use std::fmt::Write as _;

use crate::server::CpuUse;

/// One workload at one concurrency.
pub struct Row {
    pub workload: String,
    pub concurrency: usize,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Non-2xx answers other than expected 503s, and failed connections.
    pub errors: u64,
    pub timeouts: u64,
    pub peak_mib: Option<f64>,
    /// Cores used by the server, the load generator and the rest of the machine.
    pub cpu: CpuUse,
    /// The request rate over its raw limit, with what that limit is.
    pub ratio: Option<(f64, &'static str)>,
    pub target: String,
    pub met: Option<bool>,
    /// Why there were errors: the first one seen.
    pub first_error: Option<String>,
}

/// The login flood beside a workload: what the logins beyond the queue got.
pub struct FloodRow {
    pub during: String,
    pub connections: usize,
    pub logins_per_s: f64,
    pub busy: u64,
    pub busy_per_s: f64,
    pub busy_with_retry_after: u64,
    pub busy_p50_ms: Option<f64>,
    pub busy_p99_ms: Option<f64>,
    pub errors: u64,
    pub timeouts: u64,
    /// `None` when no login got a 503 (the flood did not fill the queue).
    pub met: Option<bool>,
}

pub fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "–",
    }
}

fn ms(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
        None => "–".into(),
    }
}

fn rate(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A Markdown table with padded columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            let pad = w - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('\n');
    out.push('|');
    for w in &widths {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

pub fn rows_table(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.workload.clone(),
                r.concurrency.to_string(),
                rate(r.rps),
                ms(r.p50_ms),
                ms(r.p99_ms),
                if r.timeouts > 0 {
                    format!("{} ({} timeouts)", r.errors + r.timeouts, r.timeouts)
                } else {
                    r.errors.to_string()
                },
                r.peak_mib.map_or("–".into(), |m| format!("{m:.0}")),
                format!("{:.2}/{:.2}/{:.2}", r.cpu.server, r.cpu.bench, r.cpu.other),
                r.ratio
                    .map_or("–".into(), |(v, of)| format!("{:.0} % {of}", v * 100.0)),
                r.target.clone(),
                mark(r.met).into(),
            ]
        })
        .collect();
    table(
        &[
            "Workload",
            "Conc.",
            "req/s",
            "p50 ms",
            "p99 ms",
            "Errors",
            "Peak RSS MB",
            "CPU srv/gen/other",
            "Ratio to raw limit",
            "Target",
            "Met",
        ],
        &cells,
    )
}

pub fn flood_table(rows: &[FloodRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.during.clone(),
                r.connections.to_string(),
                rate(r.logins_per_s),
                format!("{} ({}/s)", r.busy, rate(r.busy_per_s)),
                format!("{} of {}", r.busy_with_retry_after, r.busy),
                ms(r.busy_p50_ms),
                ms(r.busy_p99_ms),
                if r.timeouts > 0 {
                    format!("{} ({} timeouts)", r.errors + r.timeouts, r.timeouts)
                } else {
                    r.errors.to_string()
                },
                "503 p99 ≤ 50 ms, all with Retry-After".into(),
                mark(r.met).into(),
            ]
        })
        .collect();
    table(
        &[
            "Login flood during",
            "Conns",
            "logins/s",
            "503s",
            "with Retry-After",
            "503 p50 ms",
            "503 p99 ms",
            "Errors",
            "Target",
            "Met",
        ],
        &cells,
    )
}
