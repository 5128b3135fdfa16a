//! `rsu log info` (and `rsu-lab log info`): a summary of one replay log or recording for a person
//! or a script; `rsu log site`: the site and calibration a log was made with, as a site file for
//! `rsu serve` (an RSU that a log is played into must run with the log's site).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rsu_fusion::Timestamp;
use serde::Serialize;
use v2x_replays::{OpenOptions, ReadMode, ReplayReader};

/// Per-topic counts and time range.
#[derive(Serialize)]
struct TopicSummary {
    messages: u64,
    first_ns: i64,
    last_ns: i64,
}

/// What the log's `/meta` says (absent when the log cannot be opened).
#[derive(Serialize)]
struct MetaSummary {
    scenario: String,
    description: String,
    seed: u64,
    software_version: String,
    site_id: String,
    representative: bool,
    sensors: Vec<String>,
}

#[derive(Serialize)]
struct LogSummary {
    file: String,
    #[serde(flatten)]
    meta: Option<MetaSummary>,
    topics: BTreeMap<String, TopicSummary>,
    messages: u64,
    duration_s: f64,
    damage: Option<String>,
}

/// `log …` subcommands.
#[derive(clap::Subcommand)]
pub enum LogCommand {
    /// Summarise a replay log: scenario, site, sensors, topics with message counts and time
    /// ranges, and any damage (truncation, corrupt chunks or messages, a summary section that
    /// fails its CRC, bytes appended after the end). Exit code 2 when the log is damaged; with
    /// `--json` a JSON document is printed even when the log cannot be opened at all.
    Info {
        /// The log.
        file: std::path::PathBuf,
        /// Read past damage and report what is intact instead of stopping at it.
        #[arg(long)]
        recover: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the site and sensor calibration a log was made with (its `/meta`) as a site file
    /// (TOML) that `rsu serve` takes as `site_file`: the site an RSU needs before a log is
    /// played into it (`rsu-lab replay play`).
    Site {
        /// The log.
        file: std::path::PathBuf,
        /// The site file to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

/// Runs a `log` subcommand.
pub fn run(command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Info { file, recover, json } => info(&file, recover, json),
        LogCommand::Site { file, out } => {
            let reader = ReplayReader::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let text = toml::to_string(&reader.meta().site).context("serialising the site")?;
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote the site of {} ({} sensors) to {}",
                file.display(),
                reader.meta().site.sensors.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn info(file: &Path, recover: bool, json: bool) -> anyhow::Result<ExitCode> {
    let mode = if recover { ReadMode::Recover } else { ReadMode::Strict };
    let summary = match ReplayReader::open_with(file, OpenOptions { mode, ..Default::default() }) {
        Ok(reader) => summarise(file, reader),
        // A log whose start is damaged is summarised as such in JSON, so a script always gets
        // a document; in text it is an error naming the damage.
        Err(e) if json => LogSummary {
            file: file.display().to_string(),
            meta: None,
            topics: BTreeMap::new(),
            messages: 0,
            duration_s: 0.0,
            damage: Some(e.to_string()),
        },
        Err(e) => return Err(e).with_context(|| format!("opening {}", file.display())),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&summary).context("serialising the summary")?);
    } else {
        print_text(&summary);
    }
    Ok(if summary.damage.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Reads every message of `reader` into a summary, with the damage that ended it, if any.
fn summarise(file: &Path, mut reader: ReplayReader) -> LogSummary {
    let meta = reader.meta().clone();
    let mut topics: BTreeMap<String, TopicSummary> = BTreeMap::new();
    let mut damage = None;
    let (mut first, mut last) = (None::<Timestamp>, None::<Timestamp>);
    for item in reader.by_ref() {
        match item {
            Ok(m) => {
                let t = m.log_time;
                let entry = topics.entry(m.topic.to_string()).or_insert(TopicSummary {
                    messages: 0,
                    first_ns: t.as_nanos(),
                    last_ns: t.as_nanos(),
                });
                entry.messages += 1;
                entry.first_ns = entry.first_ns.min(t.as_nanos());
                entry.last_ns = entry.last_ns.max(t.as_nanos());
                first = Some(first.map_or(t, |f| f.min(t)));
                last = Some(last.map_or(t, |l| l.max(t)));
            }
            Err(e) => damage = Some(e.to_string()),
        }
    }
    if let Some(d) = reader.damage() {
        damage = Some(d.to_string());
    }
    LogSummary {
        file: file.display().to_string(),
        meta: Some(MetaSummary {
            scenario: meta.scenario,
            description: meta.description,
            seed: meta.seed,
            software_version: meta.software_version,
            site_id: meta.site.site_id,
            representative: meta.site.representative,
            sensors: meta.site.sensors.iter().map(|s| s.id.clone()).collect(),
        }),
        messages: topics.values().map(|t| t.messages).sum(),
        duration_s: match (first, last) {
            (Some(f), Some(l)) => l.secs_since(f),
            _ => 0.0,
        },
        topics,
        damage,
    }
}

fn print_text(s: &LogSummary) {
    println!("{}", s.file);
    if let Some(m) = &s.meta {
        println!("  scenario   {} (seed {})", m.scenario, m.seed);
        if !m.description.is_empty() {
            println!("             {}", m.description);
        }
        println!("  written by {}", m.software_version);
        let label = if m.representative { " (representative, not surveyed)" } else { "" };
        println!("  site       {}{label}", m.site_id);
        println!("  sensors    {}", m.sensors.join(", "));
    }
    println!("  messages   {} over {:.1} s", s.messages, s.duration_s);
    for (topic, t) in &s.topics {
        let span = (t.last_ns - t.first_ns) as f64 * 1e-9;
        println!("    {topic:<40} {:>7} msgs  {span:>7.1} s", t.messages);
    }
    match &s.damage {
        Some(d) => println!("  DAMAGED    {d}"),
        None => println!("  intact"),
    }
}
