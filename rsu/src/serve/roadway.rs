//! The MAP and road safety information (RSI) of the daemon (PROTOCOL.md §2.9, §2.10): the site
//! model the MAP is made from and RSI detection works on, the MAP encoded once for every vehicle
//! session, the [`RsiDetector`] run on each fusion step's objects, and the channel that carries
//! its events to the vehicle sessions of protocol version 4, each of which writes them (and the
//! MAP, on its hello and each subscription change) on its control stream
//! ([`control_downlink`]). Events are also counted and recorded.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use rsu_fusion::{FusedObject, SiteConfig, Timestamp};
use rsu_site::SiteModel;
use rsu_site::rsi::{RsiConfig, RsiDetector, RsiTrack};
use tokio::sync::{Notify, broadcast};
use v2x_link::identity::Identity;
use v2x_proto::domain::{RsiEventPhase, ServerControl};

use crate::config::{LoadedConfig, SiteOrigin};
use crate::recorder::Record;

/// RSI messages a vehicle session may fall behind by before it misses some.
const RSI_QUEUE: usize = 256;

/// Largest distance between the map folder's origin and the daemon's site origin [m].
const SAME_ORIGIN_M: f64 = 0.01;

/// What every vehicle session shares: the encoded MAP and the RSI channel.
pub(crate) struct Downlink {
    /// The MAP as a length-delimited `ServerControl`, when the daemon has one.
    pub(crate) map: Option<Bytes>,
    /// Length-delimited `ServerControl { rsi }` messages.
    pub(crate) rsi: broadcast::Sender<Bytes>,
}

/// The fusion loop's side: the detector and the sender.
pub(crate) struct Roadway {
    detector: Option<RsiDetector>,
    rsi: broadcast::Sender<Bytes>,
}

/// The site model whose map the daemon serves: `map.site_dir` (its origin must be the daemon's
/// site's), else the embedded model when the daemon serves the embedded site, else none.
fn site_model(loaded: &LoadedConfig) -> anyhow::Result<Option<SiteModel>> {
    let model = match (&loaded.config.map.site_dir, &loaded.site_source) {
        (Some(dir), _) => load_dir(dir, &loaded.site)?,
        (None, SiteOrigin::Embedded) => SiteModel::embedded().context("the embedded site's map")?,
        (None, _) => return Ok(None),
    };
    Ok(Some(model))
}

fn load_dir(dir: &Path, site: &SiteConfig) -> anyhow::Result<SiteModel> {
    let model = SiteModel::load(dir).with_context(|| format!("map.site_dir {}", dir.display()))?;
    let offset = site.frame().enu_from_wgs84(&model.config.origin);
    if offset.coords.norm() > SAME_ORIGIN_M {
        anyhow::bail!(
            "map.site_dir {}: its origin is {:.2} m from the site's; the map must be in the site's frame",
            dir.display(),
            offset.coords.norm()
        );
    }
    Ok(model)
}

/// Sets up the MAP and RSI of a daemon at `now`: what the sessions share and the loop's side.
pub(crate) fn start(loaded: &LoadedConfig, config: &RsiConfig, now: Timestamp) -> anyhow::Result<(Downlink, Roadway)> {
    let (rsi, _) = broadcast::channel(RSI_QUEUE);
    let Some(model) = site_model(loaded)? else {
        tracing::info!("no map configured (map.site_dir): no MAP, no RSI events");
        return Ok((Downlink { map: None, rsi: rsi.clone() }, Roadway { detector: None, rsi }));
    };
    let map = rsu_site::mapdata::map_data(&model, 0, now).context("the MAP")?;
    let lanes: usize = map.intersections.iter().map(|i| i.lanes.len()).sum();
    tracing::info!(intersections = map.intersections.len(), lanes, "MAP ready");
    let map = (!map.intersections.is_empty())
        .then(|| Bytes::from(v2x_proto::encode_length_delimited(&ServerControl::Map(map))));
    let detector = config.enabled.then(|| RsiDetector::new(&model, config.clone()));
    Ok((Downlink { map, rsi: rsi.clone() }, Roadway { detector, rsi }))
}

impl Roadway {
    /// One fusion step's objects at `now`: runs the detector, sends its events to the vehicle
    /// sessions, counts and records them.
    pub(crate) fn step(
        &mut self,
        now: Timestamp,
        objects: &[FusedObject],
        recorder: Option<&crate::recorder::Recorder>,
    ) {
        let Some(detector) = &mut self.detector else { return };
        let tracks: Vec<RsiTrack> = objects.iter().map(RsiTrack::from).collect();
        for event in detector.step(now, &tracks) {
            let phase = match event.phase {
                RsiEventPhase::Start => "start",
                RsiEventPhase::Update => "update",
                RsiEventPhase::End => "end",
            };
            metrics::counter!("rsu_rsi_events_total", "type" => event.event_type.name(), "phase" => phase).increment(1);
            if event.phase != RsiEventPhase::Update {
                tracing::info!(
                    id = event.event_id,
                    kind = event.event_type.name(),
                    phase,
                    lane = %event.lane,
                    tracks = ?event.track_ids,
                    x_m = f64::from(event.position_dm[0]) / 10.0,
                    y_m = f64::from(event.position_dm[1]) / 10.0,
                    "RSI event"
                );
            }
            // No vehicle session listening is not an error.
            let _ = self.rsi.send(Bytes::from(v2x_proto::encode_length_delimited(&ServerControl::Rsi(event.clone()))));
            if let Some(recorder) = recorder {
                recorder.record(Record::Rsi(event));
            }
        }
        metrics::gauge!("rsu_rsi_active_events").set(detector.active_count() as f64);
    }
}

/// A version 4 vehicle session's control-stream writer: the MAP first, again after each
/// subscription change (`resubscribed`), and every RSI message. A vehicle that does not read its
/// control stream only stalls this writer; the RSI messages it falls behind by are counted
/// (`rsu_rsi_unsent_total{reason="lagged"}`). Never returns: after a write error (the session is
/// ending) it waits for the session's other loops to end it.
pub(crate) async fn control_downlink(
    mut send: quinn::SendStream,
    downlink: Arc<Downlink>,
    resubscribed: Arc<Notify>,
    identity: Identity,
) {
    let mut events = downlink.rsi.subscribe();
    let mut write_map = true;
    loop {
        if write_map && let Some(map) = &downlink.map {
            if let Err(e) = send.write_all(map).await {
                tracing::debug!(client = %identity, "MAP not sent: {e}");
                break;
            }
            metrics::counter!("rsu_map_sent_total").increment(1);
        }
        write_map = false;
        tokio::select! {
            () = resubscribed.notified() => write_map = true,
            event = events.recv() => match event {
                Ok(bytes) => {
                    if let Err(e) = send.write_all(&bytes).await {
                        tracing::debug!(client = %identity, "RSI event not sent: {e}");
                        break;
                    }
                    metrics::counter!("rsu_rsi_sent_total").increment(1);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("rsu_rsi_unsent_total", "reason" => "lagged").increment(missed);
                    tracing::debug!(client = %identity, missed, "a vehicle fell behind its RSI events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    std::future::pending::<()>().await;
}
