//! The simulated world of the Yancheng V2X test field (on the site model of `rsu-site`): traffic (vehicles on a
//! kinematic bicycle model with IDM car following, pedestrians, cyclists, shuttles), the signal
//! plan, roadside lidar and camera models, connected vehicles' self-reports, the scenario
//! catalogue, and the recorder that writes all of it into a replay log.
//!
//! - [`actors`]: vehicle and pedestrian kinematics (bicycle model, IDM, walkers).
//! - [`world`]: actors, spawners and scripted events advanced in fixed steps.
//! - [`sensors`]: lidar and camera detector models with timing, loss and outages.
//! - [`gnss`]: connected vehicles' self-reports with GNSS noise and tunnel dead reckoning.
//! - [`scenario`]: the named scenario catalogue.
//! - [`record`]: runs a scenario and writes the replay.
//! - [`onboard`]: a connected car's own forward sensor (the roadside detector model, on the car).
//! - [`adas`]: driver-assistance functions (ACC, FCW, VRUCW, ICW, AEB) on what a car perceives.
//! - [`connected`]: a simulated L2+ car: onboard tracking, RSU frames, merge, ADAS, link stats.
//! - [`cosim`]: the closed loop of a run (world, sensors, cars, outcome) without I/O.
//! - [`live`]: a scenario played in real time against a real RSU over QUIC.
//! - [`swarm`]: many lightweight connected vehicles on one QUIC endpoint (the load
//!   generator), with latency histograms and frame counts.
//! - [`pki_dir`]: client settings for the certificates of a PKI folder.
//! - [`play`]: a recorded log played into a running RSU in real time (black-box validation).

pub mod actors;
pub mod adas;
pub mod connected;
pub mod cosim;
pub mod gnss;
pub mod live;
pub mod onboard;
pub mod pki_dir;
pub mod play;
pub mod record;
pub mod scenario;
pub mod sensors;
pub mod signals;
pub mod swarm;
pub mod world;
