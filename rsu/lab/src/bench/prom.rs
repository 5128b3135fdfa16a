//! The daemon's `/metrics` as the bench reads it: one HTTP GET over plain TCP (the endpoint is
//! the daemon's own minimal HTTP/1.1 server on loopback), the Prometheus text format parsed into
//! samples, counters summed over their labels, and every histogram turned into quantiles the way
//! Prometheus's `histogram_quantile` does (linear inside the bucket that holds the rank), so the
//! daemon's latencies print next to the clients' exact ones. A bucket quantile is only as fine
//! as the buckets: the output says "≤" where the rank falls in the last finite bucket or beyond.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` suffixes as written).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Every sample.
    pub samples: Vec<Sample>,
}

/// Fetches `http://<addr>/metrics` and returns the body.
pub fn fetch(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).context("read timeout")?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").context("sending GET")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading the response")?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP header end in the response")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        bail!("GET /metrics answered {status:?}");
    }
    Ok(body.to_owned())
}

/// Parses the Prometheus text exposition format (comments and malformed lines are skipped).
pub fn parse(text: &str) -> Scrape {
    let samples = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(parse_line).collect();
    Scrape { samples }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let (name_labels, value) = match line.find('}') {
        Some(end) => (&line[..=end], line[end + 1..].trim()),
        None => line.split_once(' ').map(|(a, b)| (a, b.trim()))?,
    };
    // A timestamp may follow the value.
    let value = value.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match name_labels.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (name_labels, Vec::new()),
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// `a="x",b="y"` (values may hold escaped quotes and commas).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(out)
}

/// A histogram's quantiles, from its buckets.
#[derive(Clone, Debug, Serialize)]
pub struct HistogramQuantiles {
    /// Metric name (without `_bucket`).
    pub name: String,
    /// Its labels other than `le`, as `k=v,…` (empty without).
    pub labels: String,
    /// Observations.
    pub count: u64,
    /// Mean [s].
    pub mean_s: f64,
    /// Quantiles 0.5, 0.9, 0.99, 0.999 [s]: `(value, exact_bound)`; `exact_bound` false where
    /// the rank is beyond the last finite bucket (the value is then that bucket's bound, a lower
    /// limit).
    pub quantiles: Vec<(f64, f64, bool)>,
    /// Upper bound of the highest non-empty bucket [s] (∞ if the +Inf bucket).
    pub max_bound_s: f64,
}

/// The quantiles this module reports.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

impl Scrape {
    /// The sum over all label sets of `name` (`None` when the daemon does not export it).
    pub fn total(&self, name: &str) -> Option<f64> {
        let mut found = false;
        let sum = self.samples.iter().filter(|s| s.name == name).inspect(|_| found = true).map(|s| s.value).sum();
        found.then_some(sum)
    }

    /// The sum of `name` over label sets with `key` = `value`.
    pub fn labelled(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        let mut found = false;
        let sum = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels.iter().any(|(k, v)| k == key && v == value))
            .inspect(|_| found = true)
            .map(|s| s.value)
            .sum();
        found.then_some(sum)
    }

    /// Every histogram whose name matches `keep`, one per label set, in name order.
    pub fn histograms(&self, keep: impl Fn(&str) -> bool) -> Vec<HistogramQuantiles> {
        // (name, labels without le) → buckets (le, cumulative count), sum, count.
        type Key = (String, String);
        let mut buckets: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
        let mut sums: BTreeMap<Key, f64> = BTreeMap::new();
        for s in &self.samples {
            let others = || {
                s.labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if let Some(base) = s.name.strip_suffix("_bucket").filter(|b| keep(b)) {
                let le = s.labels.iter().find(|(k, _)| k == "le").and_then(|(_, v)| match v.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    v => v.parse().ok(),
                });
                if let Some(le) = le {
                    buckets.entry((base.to_owned(), others())).or_default().push((le, s.value));
                }
            } else if let Some(base) = s.name.strip_suffix("_sum").filter(|b| keep(b)) {
                sums.insert((base.to_owned(), others()), s.value);
            }
        }
        buckets
            .into_iter()
            .map(|((name, labels), mut b)| {
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                let count = b.last().map_or(0.0, |l| l.1);
                let sum = sums.get(&(name.clone(), labels.clone())).copied().unwrap_or(f64::NAN);
                let quantiles = QUANTILES
                    .iter()
                    .map(|&q| {
                        let (v, exact) = bucket_quantile(&b, q);
                        (q, v, exact)
                    })
                    .collect();
                // The highest bucket whose count rose over the one below it.
                let max_bound_s = b
                    .iter()
                    .scan(0.0, |below, &(le, c)| {
                        let rose = c > *below;
                        *below = c;
                        Some((le, rose))
                    })
                    .filter(|(_, rose)| *rose)
                    .map(|(le, _)| le)
                    .last()
                    .unwrap_or(0.0);
                HistogramQuantiles {
                    name,
                    labels,
                    count: count as u64,
                    mean_s: if count > 0.0 { sum / count } else { f64::NAN },
                    quantiles,
                    max_bound_s,
                }
            })
            .collect()
    }
}

/// Quantile `q` of cumulative `buckets` (sorted by bound, the last +Inf): linear inside the bucket
/// holding rank `q × count`, from the bucket below's bound (0 for the first). Returns the value
/// and whether it is inside a finite bucket (else it is the last finite bound, a lower limit).
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> (f64, bool) {
    let count = buckets.last().map_or(0.0, |b| b.1);
    if count <= 0.0 {
        return (f64::NAN, false);
    }
    let rank = q * count;
    let mut below = (0.0, 0.0);
    for &(le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return (below.0, false);
            }
            let in_bucket = cumulative - below.1;
            let fraction = if in_bucket > 0.0 { (rank - below.1) / in_bucket } else { 1.0 };
            return (below.0 + (le - below.0) * fraction, true);
        }
        below = (le, cumulative);
    }
    (below.0, false)
}

impl HistogramQuantiles {
    /// One line in milliseconds, like the clients' lines.
    pub fn line(&self) -> String {
        let name = if self.labels.is_empty() { self.name.clone() } else { format!("{}{{{}}}", self.name, self.labels) };
        if self.count == 0 {
            return format!("{name:<44} no samples");
        }
        let mut out = format!("{name:<44} n={:<7}", self.count);
        for &(q, v, exact) in &self.quantiles {
            let label = format!("p{}", q * 100.0);
            let bound = if exact { " " } else { "≥" };
            out.push_str(&format!("  {label} {bound}{:>7.2} ms", v * 1e3));
        }
        out.push_str(&format!("  max ≤{:>7.2} ms  mean {:>7.2} ms", self.max_bound_s * 1e3, self.mean_s * 1e3));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE rsu_frames_sent_total counter
rsu_frames_sent_total 20000
rsu_frames_undelivered_total{reason="expired"} 3
rsu_frames_undelivered_total{reason="closed"} 7
# TYPE rsu_added_latency_seconds histogram
rsu_added_latency_seconds_bucket{le="0.001"} 50
rsu_added_latency_seconds_bucket{le="0.002"} 90
rsu_added_latency_seconds_bucket{le="0.005"} 100
rsu_added_latency_seconds_bucket{le="+Inf"} 100
rsu_added_latency_seconds_sum 0.12
rsu_added_latency_seconds_count 100
rsu_stage_seconds_bucket{stage="a,\"b\"",le="0.01"} 1
rsu_stage_seconds_bucket{stage="a,\"b\"",le="+Inf"} 4
rsu_stage_seconds_sum{stage="a,\"b\""} 1.0
garbage line without value
"#;

    #[test]
    fn counters_are_summed_over_labels_and_absent_ones_say_so() {
        let s = parse(TEXT);
        assert_eq!(s.total("rsu_frames_sent_total"), Some(20000.0));
        assert_eq!(s.total("rsu_frames_undelivered_total"), Some(10.0));
        assert_eq!(s.labelled("rsu_frames_undelivered_total", "reason", "closed"), Some(7.0));
        assert_eq!(s.labelled("rsu_frames_undelivered_total", "reason", "send_error"), None);
        assert_eq!(s.total("rsu_frames_delivered_total"), None);
    }

    #[test]
    fn histogram_quantiles_interpolate_inside_buckets() {
        let s = parse(TEXT);
        let h = s.histograms(|n| n.ends_with("_seconds"));
        assert_eq!(h.len(), 2);
        let added = &h[0];
        assert_eq!((added.name.as_str(), added.count), ("rsu_added_latency_seconds", 100));
        // Rank 50 is the top of the first bucket; rank 90 the top of the second; rank 99 is
        // 9/10 of the way through (2 ms, 5 ms].
        assert!((added.quantiles[0].1 - 0.001).abs() < 1e-12);
        assert!((added.quantiles[1].1 - 0.002).abs() < 1e-12);
        assert!((added.quantiles[2].1 - 0.0047).abs() < 1e-9 && added.quantiles[2].2);
        assert_eq!(added.max_bound_s, 0.005);
        assert!((added.mean_s - 0.0012).abs() < 1e-12);
        // Escaped label values; 3 of 4 observations beyond the last finite bucket.
        let stage = &h[1];
        assert_eq!(stage.labels, r#"stage=a,"b""#);
        assert_eq!(stage.quantiles[0], (0.5, 0.01, false));
        assert!(stage.max_bound_s.is_infinite());
        assert!(stage.line().contains('≥'), "{}", stage.line());
    }
}
