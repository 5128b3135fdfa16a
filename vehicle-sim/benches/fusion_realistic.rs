//! One fusion cycle on a realistic detection stream: 50 to 500 road users (60 % pedestrians,
//! 40 % cars) around the city-block intersection of the embedded site, seen by its two lidars and
//! two cameras through the simulator's detector models (heavy-tailed errors, misses in bursts,
//! merged and split boxes, clutter and persistent clutter, class confusion). Each cycle is the
//! four sensors' frames of 100 ms and one poll, fused cycle after cycle on the same engine, as in
//! the daemon; only the fusion is timed, not the simulation that makes the frames.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsu_fusion::{Fusion, FusionConfig, ObjectClass, SensorFrame, SiteConfig, Timestamp};
use vehicle_sim::sensors::{Environment, SensorSim};
use vehicle_sim::world::ActorTruth;

/// Half the side of the square the road users move in, centred on the intersection [m].
const HALF_SIDE_M: f64 = 60.0;
/// Frame period of every sensor [s].
const PERIOD_S: f64 = 0.1;
/// Cycles fused before timing starts (tracks confirmed, buffers warm).
const SETTLE_CYCLES: usize = 20;
/// Cycles timed one after another before the engine starts over from its settled copy.
const TIMED_CYCLES: usize = 40;

fn start() -> Timestamp {
    Timestamp::from_nanos(1_784_167_200_000_000_000)
}

/// `n` road users on a 5 m grid (one per cell, jittered), cars driving east or west at 8 m/s,
/// pedestrians walking at 1.4 m/s in any direction.
fn road_users(n: usize, rng: &mut ChaCha8Rng) -> Vec<ActorTruth> {
    let per_row = (2.0 * HALF_SIDE_M / 5.0) as usize;
    (0..n)
        .map(|i| {
            let (row, col) = (i / per_row, i % per_row);
            let x = -HALF_SIDE_M + 2.5 + 5.0 * col as f64 + rng.random_range(-0.5..0.5);
            let y = -HALF_SIDE_M + 2.5 + 5.0 * (row % per_row) as f64 + rng.random_range(-0.5..0.5);
            let car = rng.random_bool(0.4);
            let (class, yaw_rad, speed_mps) = if car {
                (ObjectClass::Car, if rng.random_bool(0.5) { 0.0 } else { std::f64::consts::PI }, 8.0)
            } else {
                (ObjectClass::Pedestrian, rng.random_range(-std::f64::consts::PI..std::f64::consts::PI), 1.4)
            };
            let mut actor = ActorTruth::standing(i as u32 + 1, class, x, y, yaw_rad);
            actor.speed_mps = speed_mps;
            actor
        })
        .collect()
}

/// Moves every road user by `dt_s`, wrapping around the square.
fn step(actors: &mut [ActorTruth], dt_s: f64) {
    for a in actors {
        *a = a.extrapolated(dt_s);
        let wrap = |v: f64| (v + HALF_SIDE_M).rem_euclid(2.0 * HALF_SIDE_M) - HALF_SIDE_M;
        a.center.x = wrap(a.center.x);
        a.center.y = wrap(a.center.y);
    }
}

/// The intersection's sensors (those that see its centre) and `cycles` cycles of their frames,
/// each frame with its arrival time.
fn frames(site: &SiteConfig, n: usize, cycles: usize) -> Vec<Vec<(Timestamp, Arc<SensorFrame>)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut actors = road_users(n, &mut rng);
    let centre = nalgebra::Point3::new(0.0, 0.0, 1.0);
    let mut sensors: Vec<SensorSim> = site
        .sensors
        .iter()
        .enumerate()
        .filter(|(_, c)| c.covers(&centre))
        .map(|(i, c)| {
            let mut sim = SensorSim::new(c.clone(), i, 7);
            sim.timing.frame_loss_prob = 0.0;
            sim
        })
        .collect();
    let env = Environment::default();
    let mut out = Vec::with_capacity(cycles);
    for cycle in 0..cycles {
        let t_s = cycle as f64 * PERIOD_S;
        let mut frames = Vec::new();
        for s in &mut sensors {
            while s.next_trigger_s() < t_s + PERIOD_S {
                if let Some(f) = s.capture(start(), t_s, &actors, &[], &env) {
                    frames.push((f.arrival, Arc::new(f.frame)));
                }
            }
        }
        frames.sort_by_key(|f| f.0);
        out.push(frames);
        step(&mut actors, PERIOD_S);
    }
    out
}

fn bench_cycle(c: &mut Criterion) {
    let site = match rsu_site::embedded_site_config() {
        Ok(site) => site,
        Err(e) => panic!("the embedded site loads: {e}"),
    };
    let mut group = c.benchmark_group("fusion_cycle_realistic_2lidar_2camera");
    for n in [50usize, 200, 500] {
        let cycles = frames(&site, n, SETTLE_CYCLES + TIMED_CYCLES);
        let mut settled = match Fusion::new(site.clone(), FusionConfig::default()) {
            Ok(f) => f,
            Err(e) => panic!("the engine starts: {e}"),
        };
        let mut reported = 0;
        for cycle in &cycles[..SETTLE_CYCLES] {
            reported = run_cycle(&mut settled, cycle);
        }
        let detections: usize = cycles[SETTLE_CYCLES..]
            .iter()
            .flatten()
            .map(|(_, f)| match &f.detections {
                rsu_fusion::Detections::Lidar(d) => d.len(),
                rsu_fusion::Detections::Camera(d) => d.boxes.len(),
            })
            .sum();
        eprintln!(
            "n={n}: {reported} objects reported after settling, {:.0} detections per cycle",
            detections as f64 / TIMED_CYCLES as f64
        );
        let mut fusion = settled.clone();
        let mut next = SETTLE_CYCLES;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if next == cycles.len() {
                        fusion = settled.clone();
                        next = SETTLE_CYCLES;
                    }
                    let cycle = &cycles[next];
                    next += 1;
                    let begin = Instant::now();
                    black_box(run_cycle(&mut fusion, cycle));
                    total += begin.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// Fuses one cycle's frames at their arrival times and polls once after the last; returns the
/// number of objects reported.
fn run_cycle(fusion: &mut Fusion, cycle: &[(Timestamp, Arc<SensorFrame>)]) -> usize {
    let mut now = start();
    for (arrival, frame) in cycle {
        now = *arrival;
        fusion.handle_sensor_frame(now, Arc::clone(frame));
    }
    fusion.poll_objects(now).len()
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
