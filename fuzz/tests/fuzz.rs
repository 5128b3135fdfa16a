//! Runs every fuzz target with bolero's random engine (stable Rust, no instrumentation): first
//! each seed of the target's corpus and each checked-in crash regression as it is, then
//! generated cases (a seed and mutations of it).
//!
//! By default each target runs for [`SMOKE_TIME`], so `cargo test` stays fast. `scripts/fuzz`
//! runs the long campaign through the environment:
//! - `FUZZ_ITERATIONS`: generated cases per target (default: unlimited within the time);
//! - `FUZZ_SECONDS`: time per target [s] (default: [`SMOKE_TIME`]).
//!
//! Each target prints one line `fuzz <target>: <n> executions ...` (run with `--nocapture`).
//! The heap of this binary is capped at [`HEAP_LIMIT_BYTES`]: an allocation out of proportion
//! to an input (whose size is at most [`MAX_INPUT_BYTES`]) aborts the run.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use v2x_fuzz::mutate::Case;
use v2x_fuzz::seeds::{Seeds, repo_root};
use v2x_fuzz::targets::{self, Scratch};
use v2x_replays::ReadMode;

/// The heap cap of the fuzz binary [bytes].
const HEAP_LIMIT_BYTES: usize = 192 << 20;

#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, HEAP_LIMIT_BYTES);

/// Longest input a mutation makes [bytes] (a seed longer than that is mutated without growing).
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Time per target without `FUZZ_SECONDS`.
const SMOKE_TIME: Duration = Duration::from_millis(1500);

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(Seeds::load)
}

fn env_number(name: &str) -> Option<f64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name}={value}: not a number")))
}

/// What each corpus input of `target` is, for messages: `seeds` seeds, then the regressions.
fn seed_names(target: &str, seeds: usize) -> Vec<String> {
    (0..seeds)
        .map(|i| format!("seed #{i}"))
        .chain(regressions(target).into_iter().map(|(path, _)| format!("regression {}", path.display())))
        .collect()
}

/// The checked-in crash inputs of `target`.
fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz/regressions").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("regression input"))).collect()
}

/// Writes a crashing input to `$FUZZ_CRASH_DIR/<target>/` (default `target/fuzz/crashes/`),
/// named by its hash, and says where: the file to check in under `fuzz/regressions/<target>/`
/// once the crash is fixed.
fn save_crash(name: &str, input: &[u8]) {
    use std::hash::{Hash, Hasher};
    let dir = std::env::var_os("FUZZ_CRASH_DIR")
        .map_or_else(|| repo_root().join("target/fuzz/crashes"), PathBuf::from)
        .join(name);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let path = dir.join(format!("crash-{:016x}", hasher.finish()));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => eprintln!("fuzz {name}: crashing input ({} bytes) saved to {}", input.len(), path.display()),
        Err(e) => eprintln!("fuzz {name}: could not save the crashing input to {}: {e}", path.display()),
    }
}

/// Runs `target` on every seed and regression input of `name`, then on generated cases; prints
/// the counts.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let start = Instant::now();
    let mut corpus: Vec<Vec<u8>> = seeds.to_vec();
    corpus.extend(regressions(name).into_iter().map(|(_, bytes)| bytes));
    for (input, origin) in corpus.iter().zip(seed_names(name, seeds.len())) {
        if let Err(panic) = std::panic::catch_unwind(|| target(input)) {
            eprintln!("fuzz {name}: {origin} crashes");
            std::panic::resume_unwind(panic);
        }
    }
    let generated = AtomicU64::new(0);
    let time = env_number("FUZZ_SECONDS").map_or(SMOKE_TIME, Duration::from_secs_f64);
    let iterations = env_number("FUZZ_ITERATIONS").map_or(usize::MAX, |n| n as usize);
    bolero::check!().with_type::<Case>().with_test_time(time).with_iterations(iterations).for_each(|case| {
        generated.fetch_add(1, Ordering::Relaxed);
        let input = case.input(&corpus, MAX_INPUT_BYTES);
        if let Err(panic) = std::panic::catch_unwind(|| target(&input)) {
            save_crash(name, &input);
            std::panic::resume_unwind(panic);
        }
    });
    let generated = generated.into_inner();
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: {} executions ({} corpus inputs, {generated} generated) in {seconds:.1} s, {:.0}/s, 0 crashes",
        corpus.len() as u64 + generated,
        corpus.len(),
        (corpus.len() as u64 + generated) as f64 / seconds.max(1e-9),
    );
}

#[test]
fn wire_messages() {
    fuzz("wire_messages", &seeds().messages, targets::wire_messages);
}

#[test]
fn control_stream() {
    fuzz("control_stream", &seeds().control, targets::control_stream);
}

#[test]
fn replay_log_strict() {
    let scratch = Scratch::new();
    fuzz("replay_log_strict", &seeds().logs, |bytes| targets::replay_log(&scratch, bytes, ReadMode::Strict));
}

#[test]
fn replay_log_recover() {
    let scratch = Scratch::new();
    fuzz("replay_log_recover", &seeds().logs, |bytes| targets::replay_log(&scratch, bytes, ReadMode::Recover));
}

#[test]
fn site_folder() {
    let scratch = Scratch::new();
    fuzz("site_folder", &seeds().sites, |bytes| targets::site_folder(&scratch, bytes));
}

#[test]
fn serve_config() {
    let scratch = Scratch::new();
    fuzz("serve_config", &seeds().configs, |bytes| targets::serve_config(&scratch, bytes));
}

#[test]
fn criteria() {
    fuzz("criteria", &seeds().criteria, targets::criteria);
}

#[test]
fn route_input() {
    fuzz("route_input", &seeds().routes, targets::route_input);
}

#[test]
fn dair_import() {
    let scratch = Scratch::new();
    fuzz("dair_import", &seeds().dair, |bytes| targets::dair_import(&scratch, bytes));
}

#[test]
fn openlabel_import() {
    let scratch = Scratch::new();
    fuzz("openlabel_import", &seeds().openlabel, |bytes| targets::openlabel_import(&scratch, bytes));
}

#[test]
fn ntcip_blob() {
    fuzz("ntcip_blob", &seeds().ntcip, targets::ntcip_blob);
}

#[test]
fn uper_frame() {
    fuzz("uper_frame", &seeds().uper, targets::uper_frame);
}

#[test]
fn autoware_cdr() {
    fuzz("autoware_cdr", &seeds().autoware, targets::autoware_cdr);
}

/// Every checked-in regression input names a target that exists.
#[test]
fn regression_folders_name_targets() {
    const TARGETS: &[&str] = &[
        "wire_messages",
        "control_stream",
        "replay_log_strict",
        "replay_log_recover",
        "site_folder",
        "serve_config",
        "criteria",
        "route_input",
        "dair_import",
        "openlabel_import",
        "ntcip_blob",
        "uper_frame",
        "autoware_cdr",
    ];
    let dir = repo_root().join("fuzz/regressions");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            assert!(TARGETS.contains(&name.as_str()), "fuzz/regressions/{name} is not a target");
        }
    }
}
