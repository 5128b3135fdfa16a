//! Roadside sensor models. Every sensor runs on its own seeded random stream and its own frame
//! clock: it triggers every `frame_period_s` (with a per-sensor phase and capture jitter), samples
//! the world at that exact instant, runs its detector model ([`lidar`] or [`camera`]), and hands
//! the frame over after a processing latency. The detector keeps per-object state between frames
//! (bursts of misses, objects it finds ambiguous: [`effects`]) and its own persistent clutter
//! sites. Frames can be lost, and scripted outages silence a sensor for a while; the frame counter
//! keeps counting, so gaps show as sequence gaps.

pub mod camera;
pub mod effects;
pub mod lidar;
pub mod occlusion;

use nalgebra::Point3;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use rsu_fusion::{Detections, ObjectClass, SensorCalibration, SensorFrame, SensorModel, Timestamp};

use crate::world::{ActorTruth, rng_stream};
use camera::CameraParams;
use effects::DetectorMemory;
use lidar::LidarParams;
use occlusion::OcclusionIndex;
use rsu_site::geometry::Prism;

/// Light and weather, which degrade the sensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// Darkness (street lighting only): cameras degrade.
    pub night: bool,
    /// Rain: cameras and lidars degrade.
    pub rain: bool,
}

/// When frames are captured and delivered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorTiming {
    /// Mean capture-to-delivery latency [s].
    pub latency_mean_s: f64,
    /// Latency jitter, 1 sigma [s].
    pub latency_jitter_s: f64,
    /// Capture instant jitter around the nominal trigger, 1 sigma [s].
    pub capture_jitter_s: f64,
    /// Probability that a frame is lost on the way [0..1].
    pub frame_loss_prob: f64,
}

/// A window in which a sensor delivers nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// The sensor.
    pub sensor_id: String,
    /// From [s after start].
    pub from_s: f64,
    /// Until [s after start].
    pub to_s: f64,
}

/// Detector model parameters by sensor kind.
#[derive(Clone, Debug, PartialEq)]
pub enum DetectorParams {
    /// Lidar 3D box detector.
    Lidar(LidarParams),
    /// Camera 2D box detector.
    Camera(CameraParams),
}

/// A delivered frame and when it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveredFrame {
    /// When the frame reached the recorder (capture time + latency).
    pub arrival: Timestamp,
    /// The frame (carrying its capture time).
    pub frame: SensorFrame,
}

/// One simulated roadside sensor.
#[derive(Clone, Debug)]
pub struct SensorSim {
    /// Its calibration (as in the site file).
    pub calibration: SensorCalibration,
    /// Its timing.
    pub timing: SensorTiming,
    /// Its detector model.
    pub params: DetectorParams,
    /// Silent windows [s after start].
    pub outages: Vec<(f64, f64)>,
    memory: DetectorMemory,
    rng: ChaCha8Rng,
    phase_s: f64,
    sequence: u64,
}

impl SensorSim {
    /// The sensor at position `index` of the site, with the default model for its kind, on random
    /// stream `index + 1` of `seed`.
    pub fn new(calibration: SensorCalibration, index: usize, seed: u64) -> Self {
        let (params, timing) = match &calibration.model {
            SensorModel::Lidar(_) => (
                DetectorParams::Lidar(LidarParams::default()),
                SensorTiming {
                    latency_mean_s: 0.045,
                    latency_jitter_s: 0.010,
                    capture_jitter_s: 0.001,
                    frame_loss_prob: 0.005,
                },
            ),
            SensorModel::Camera(_) => (
                DetectorParams::Camera(CameraParams::default()),
                SensorTiming {
                    latency_mean_s: 0.085,
                    latency_jitter_s: 0.020,
                    capture_jitter_s: 0.002,
                    frame_loss_prob: 0.01,
                },
            ),
        };
        // Sensors are not synchronised: spread their trigger phases over the frame period.
        let phase_s = calibration.frame_period_s * ((index as f64 * 0.37).fract());
        SensorSim {
            calibration,
            timing,
            params,
            outages: Vec::new(),
            memory: DetectorMemory::default(),
            rng: rng_stream(seed, index as u64 + 1),
            phase_s,
            sequence: 0,
        }
    }

    /// The sensor's id.
    pub fn id(&self) -> &str {
        &self.calibration.id
    }

    /// The nominal instant of the next trigger [s after start].
    pub fn next_trigger_s(&self) -> f64 {
        self.phase_s + self.sequence as f64 * self.calibration.frame_period_s
    }

    /// Triggers the next capture. `truths` is the world at `world_time_s` [s after start] (the
    /// step nearest the trigger); it is moved to the exact capture instant. Returns the frame if
    /// it is delivered (not in an outage, not lost).
    pub fn capture(
        &mut self,
        start: Timestamp,
        world_time_s: f64,
        truths: &[ActorTruth],
        buildings: &[Prism],
        env: &Environment,
    ) -> Option<DeliveredFrame> {
        let sequence = self.sequence;
        let trigger_s = self.next_trigger_s();
        self.sequence += 1;
        let capture_s = trigger_s + gauss(&mut self.rng, self.timing.capture_jitter_s);
        let latency_s = (self.timing.latency_mean_s + gauss(&mut self.rng, self.timing.latency_jitter_s)).max(0.005);
        let lost = self.rng.random_bool(self.timing.frame_loss_prob.clamp(0.0, 1.0));
        if lost || self.outages.iter().any(|&(from, to)| capture_s >= from && capture_s < to) {
            return None;
        }
        let dt = capture_s - world_time_s;
        let scene: Vec<ActorTruth> = truths.iter().map(|t| t.extrapolated(dt)).collect();
        let mut occluders: Vec<Prism> = buildings.to_vec();
        occluders.extend(scene.iter().map(ActorTruth::prism));
        let eye = Point3::from(self.calibration.world_from_sensor.translation.vector);
        let index = OcclusionIndex::new(eye, &occluders);
        let (calibration, memory, rng) = (&self.calibration, &mut self.memory, &mut self.rng);
        let detections = match (&self.params, &calibration.model) {
            (DetectorParams::Lidar(p), SensorModel::Lidar(noise)) => {
                memory.sites.get_or_insert_with(|| lidar::place_clutter_sites(calibration, p, buildings, rng));
                Detections::Lidar(lidar::detect(calibration, noise, p, env, &scene, &index, memory, rng))
            }
            (DetectorParams::Camera(p), SensorModel::Camera(cam)) => {
                memory.sites.get_or_insert_with(|| camera::place_clutter_sites(cam, p, rng));
                Detections::Camera(camera::detect(calibration, cam, p, env, &scene, &index, memory, rng))
            }
            // A calibration and a model of different kinds cannot be built by `new`.
            _ => return None,
        };
        let capture_time = start.add_secs(capture_s);
        Some(DeliveredFrame {
            arrival: capture_time.add_secs(latency_s),
            frame: SensorFrame { sensor_id: self.calibration.id.clone(), sequence, capture_time, detections },
        })
    }
}

/// A zero-mean normal sample with standard deviation `sigma` (0 when sigma is not positive).
pub fn gauss(rng: &mut ChaCha8Rng, sigma: f64) -> f64 {
    Normal::new(0.0, sigma).map_or(0.0, |n| if sigma > 0.0 { n.sample(rng) } else { 0.0 })
}

/// A Poisson count with mean `mean`.
pub fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng).min(1000.0) as u32)
}

/// The classes a detector mistakes `class` for, most likely first.
pub fn confusable(class: ObjectClass) -> &'static [ObjectClass] {
    use ObjectClass::*;
    match class {
        Car => &[Van],
        Van => &[Car, Delivery],
        Truck => &[Bus, Van],
        Bus => &[Truck],
        Shuttle => &[Van, Bus],
        Delivery => &[Van, Car],
        Emergency => &[Van, Car],
        Motorcyclist => &[Cyclist],
        Cyclist => &[Motorcyclist, Pedestrian],
        Tricyclist => &[Cyclist, Motorcyclist],
        Pedestrian => &[Cyclist, Barrow],
        Barrow => &[Pedestrian],
        TrafficCone => &[Obstacle],
        Obstacle => &[Unknown],
        Unknown => &[Obstacle],
    }
}

/// `class`, or with probability `p_confuse` one of the classes it is confused with.
pub fn maybe_confuse(rng: &mut ChaCha8Rng, class: ObjectClass, p_confuse: f64) -> ObjectClass {
    if rng.random_bool(p_confuse.clamp(0.0, 1.0)) {
        let options = confusable(class);
        options[rng.random_range(0..options.len())]
    } else {
        class
    }
}
