//! The results as Markdown tables (for docs/benchmarks.md), JSON, and an SVG plot of latency
//! against throughput.

use crate::step::StepResult;
use std::fmt::Write as _;

pub fn markdown(steps: &[StepResult]) -> String {
    let mut out = String::from(
        "| system | step | offered /s | orders | completed | completed /s | e2e p50 ms | p95 | p99 | p99.9 | create p50 ms | create p99 | sustained |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in steps {
        writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} |",
            s.system,
            s.label,
            s.offered_rate,
            s.orders,
            s.completed,
            s.completed_per_s,
            s.e2e.p50_ms,
            s.e2e.p95_ms,
            s.e2e.p99_ms,
            s.e2e.p999_ms,
            s.create.p50_ms,
            s.create.p99_ms,
            if s.sustainable { "yes" } else { "no" }
        )
        .ok();
    }
    out
}

/// CPU (average cores) and peak memory per component for one step.
pub fn resources(step: &StepResult) -> String {
    let mut out = format!(
        "CPU and memory, {} step \"{}\" at {:.0}/s:\n\n| process | cores (avg) | peak RSS MiB |\n|---|---:|---:|\n",
        step.system, step.label, step.offered_rate
    );
    for (name, cores) in &step.cpu_cores {
        let rss = step
            .peak_rss_mib
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| format!("{m:.0}"))
            .unwrap_or_else(|| "–".into());
        writeln!(out, "| {name} | {cores:.2} | {rss} |").ok();
    }
    out
}

/// Latency (p50 and p99, log scale) against completed orders per second, both systems.
pub fn svg(steps: &[StepResult]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 460.0, 70.0, 200.0, 30.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let points: Vec<&StepResult> = steps.iter().filter(|s| s.completed > 0).collect();
    let max_x = points.iter().map(|s| s.completed_per_s).fold(1.0, f64::max) * 1.1;
    let lat = |s: &StepResult, p99: bool| if p99 { s.e2e.p99_ms } else { s.e2e.p50_ms }.max(1.0);
    let max_y = points
        .iter()
        .map(|s| lat(s, true))
        .fold(10.0, f64::max)
        .log10()
        .ceil();
    let x = |v: f64| left + v / max_x * pw;
    let y = |ms: f64| top + ph - (ms.max(1.0).log10() / max_y) * ph;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">End-to-end latency against completed orders/s (log scale)</text>\n"
    );
    // Axes and grid.
    writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        top + ph,
        left + pw,
        top + ph
    )
    .ok();
    writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        top + ph
    )
    .ok();
    for decade in 0..=(max_y as i32) {
        let ms = 10f64.powi(decade);
        let yy = y(ms);
        writeln!(out, "<line x1=\"{left}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{ms} ms</text>", left + pw, left - 6.0, yy + 4.0).ok();
    }
    for i in 0..=5 {
        let v = max_x * f64::from(i) / 5.0;
        let xx = x(v);
        writeln!(out, "<line x1=\"{xx}\" y1=\"{}\" x2=\"{xx}\" y2=\"{}\" stroke=\"black\"/><text x=\"{xx}\" y=\"{}\" text-anchor=\"middle\">{v:.0}</text>", top + ph, top + ph + 5.0, top + ph + 20.0).ok();
    }
    writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">completed orders per second</text>",
        left + pw / 2.0,
        h - 10.0
    )
    .ok();
    let series = [
        ("pipeline", false, "#1f77b4", "pipeline p50"),
        ("pipeline", true, "#1f77b4", "pipeline p99"),
        ("baseline", false, "#d62728", "baseline p50"),
        ("baseline", true, "#d62728", "baseline p99"),
    ];
    for (i, (system, p99, colour, name)) in series.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|s| s.system == *system && !s.label.starts_with("ingest"))
            .map(|s| (s.completed_per_s, lat(s, *p99)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let dash = if *p99 {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        if !path.is_empty() {
            writeln!(out, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>", path.join(" ")).ok();
        }
        for (a, b) in &pts {
            writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(*a),
                y(*b)
            )
            .ok();
        }
        let ly = top + 20.0 + 20.0 * i as f64;
        writeln!(out, "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{name}</text>", left + pw + 15.0, left + pw + 45.0, left + pw + 50.0, ly + 4.0).ok();
    }
    out.push_str("</svg>\n");
    out
}

/// Where the end-to-end time of one pipeline step went.
pub fn stages(step: &StepResult) -> String {
    let mut out = format!(
        "Stages, {} step \"{}\" at {:.0}/s (ms):\n\n| stage | p50 | p95 | p99 |\n|---|---:|---:|---:|\n",
        step.system, step.label, step.offered_rate
    );
    for (name, p) in &step.stages {
        writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.0} |",
            p.p50_ms, p.p95_ms, p.p99_ms
        )
        .ok();
    }
    out
}
