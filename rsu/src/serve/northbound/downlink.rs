//! Downlink from the platform: decoding and checking `ConfigChange` (CONFIG/DOWN) and
//! `RoadEvent` (RSI/DOWN) payloads, and the store of road events in force. Nothing here trusts
//! the broker: every payload is size-limited, decoded without panicking, and checked field by
//! field; a refusal names its reason (the metric label) and what was wrong. Deterministic: the
//! time is an argument.

use std::collections::BTreeMap;

use rsu_fusion::{EnuFrame, Timestamp, Wgs84};
use v2x_proto::wire;

use super::Settings;

/// Farthest a road event's centre may be from the site's origin [m]: an RSU's radio reaches a
/// few hundred metres, an event beyond this is for another RSU.
pub const MAX_EVENT_DISTANCE_M: f64 = 10_000.0;
/// Longest a road event may stay in force from now [s] (30 days).
pub const MAX_EVENT_HORIZON_S: f64 = 30.0 * 86_400.0;
/// Longest request or event id [bytes].
pub const MAX_ID_BYTES: usize = 64;
/// Longest road event description [bytes].
pub const MAX_DESCRIPTION_BYTES: usize = 256;

/// Why a downlink message was rejected: the `reason` label of `rsu_northbound_rejected_total`
/// and of the ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Not valid protobuf for the topic's message.
    Malformed,
    /// Over `northbound.max_downlink_bytes`.
    Oversized,
    /// Addressed to another RSU.
    WrongRsu,
    /// A required field missing or an id that is empty, too long or not printable.
    Invalid,
    /// A value out of its range (a rate, a radius, a time, a position too far from the site).
    OutOfRange,
    /// The road event store is full.
    TooMany,
    /// The daemon's control queue was full: try again.
    Busy,
}

impl Refusal {
    /// Every reason.
    pub const ALL: [Refusal; 7] = [
        Refusal::Malformed,
        Refusal::Oversized,
        Refusal::WrongRsu,
        Refusal::Invalid,
        Refusal::OutOfRange,
        Refusal::TooMany,
        Refusal::Busy,
    ];

    /// The metric and ACK label.
    pub const fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Oversized => "oversized",
            Refusal::WrongRsu => "wrong_rsu",
            Refusal::Invalid => "invalid",
            Refusal::OutOfRange => "out_of_range",
            Refusal::TooMany => "too_many",
            Refusal::Busy => "busy",
        }
    }
}

/// A rejected downlink message: the id it carried (empty if none could be read), why, and what
/// was wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The request or event id, when the payload decoded far enough to carry one.
    pub request_id: String,
    /// The reason.
    pub reason: Refusal,
    /// For people.
    pub detail: String,
}

impl Rejected {
    fn new(request_id: &str, reason: Refusal, detail: impl Into<String>) -> Self {
        Rejected { request_id: request_id.to_owned(), reason, detail: detail.into() }
    }
}

/// What the downlink checks need to know about the RSU.
pub struct Context<'a> {
    /// This RSU's id.
    pub rsu_id: &'a str,
    /// The site frame (road events must lie near its origin).
    pub site: &'a EnuFrame,
    /// Largest payload [bytes].
    pub max_bytes: usize,
    /// The time now.
    pub now: Timestamp,
}

fn decode<M: v2x_proto::WireOnly>(payload: &[u8], ctx: &Context<'_>) -> Result<M, Rejected> {
    if payload.len() > ctx.max_bytes {
        return Err(Rejected::new(
            "",
            Refusal::Oversized,
            format!("{} bytes, more than the limit of {}", payload.len(), ctx.max_bytes),
        ));
    }
    v2x_proto::decode_wire::<M>(payload)
        .map_err(|e| Rejected::new("", Refusal::Malformed, format!("not a {}: {e}", v2x_proto::wire_name::<M>())))
}

/// An id of 1..=[`MAX_ID_BYTES`] printable characters.
fn check_id(field: &str, id: &str, request_id: &str) -> Result<(), Rejected> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(Rejected::new(
            request_id,
            Refusal::Invalid,
            format!("{field}: must have 1..={MAX_ID_BYTES} bytes of printable characters"),
        ));
    }
    Ok(())
}

fn check_rsu(rsu_id: &str, request_id: &str, ctx: &Context<'_>) -> Result<(), Rejected> {
    if rsu_id != ctx.rsu_id {
        // The id is shown escaped and cut: it is the sender's text.
        let shown: String = format!("{rsu_id:?}").chars().take(80).collect();
        return Err(Rejected::new(request_id, Refusal::WrongRsu, format!("rsu_id {shown} is not {}", ctx.rsu_id)));
    }
    Ok(())
}

/// A checked configuration change: its request id and the settings it leads to from `current`.
pub fn config_change(payload: &[u8], current: &Settings, ctx: &Context<'_>) -> Result<(String, Settings), Rejected> {
    let change: wire::ConfigChange = decode(payload, ctx)?;
    let id = change.request_id.as_str();
    check_id("request_id", id, "")?;
    check_rsu(&change.rsu_id, id, ctx)?;
    let Some(s) = change.settings else {
        return Err(Rejected::new(id, Refusal::Invalid, "settings: missing"));
    };
    let next = Settings {
        rsm_rate_hz: s.rsm_rate_hz.unwrap_or(current.rsm_rate_hz),
        spat_rate_hz: s.spat_rate_hz.unwrap_or(current.spat_rate_hz),
        heartbeat_interval_s: s.heartbeat_interval_s.unwrap_or(current.heartbeat_interval_s),
        vehicle_spat_rate_hz: s.vehicle_spat_rate_hz.unwrap_or(current.vehicle_spat_rate_hz),
    };
    super::check_settings(&next).map_err(|detail| Rejected::new(id, Refusal::OutOfRange, detail))?;
    Ok((id.to_owned(), next))
}

/// What a checked `RoadEvent` asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum EventRequest {
    /// Store (or replace) the event, in force until `end`.
    Store(StoredEvent),
    /// Withdraw the event with this id.
    Cancel(String),
}

/// A road event in force.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The event as the platform sent it (checked).
    pub event: wire::RoadEvent,
    /// In force from.
    pub start: Timestamp,
    /// In force until.
    pub end: Timestamp,
}

impl StoredEvent {
    /// Its fields for the recording's event record.
    pub fn fields(&self, action: &str) -> BTreeMap<String, String> {
        let e = &self.event;
        let (lat, lon) = e.position.as_ref().map_or((0, 0), |p| (p.lat_1e7deg, p.lon_1e7deg));
        BTreeMap::from([
            ("action".to_owned(), action.to_owned()),
            ("event_id".to_owned(), e.event_id.clone()),
            ("event_type".to_owned(), e.event_type.to_string()),
            ("lat_deg".to_owned(), format!("{:.7}", f64::from(lat) * 1e-7)),
            ("lon_deg".to_owned(), format!("{:.7}", f64::from(lon) * 1e-7)),
            ("radius_m".to_owned(), format!("{:.1}", e.radius_m)),
            ("start_ns".to_owned(), self.start.as_nanos().to_string()),
            ("end_ns".to_owned(), self.end.as_nanos().to_string()),
            ("priority".to_owned(), e.priority.to_string()),
            ("description".to_owned(), e.description.clone()),
        ])
    }
}

fn out_of_range(id: &str, detail: String) -> Rejected {
    Rejected::new(id, Refusal::OutOfRange, detail)
}

/// A checked road event request.
pub fn road_event(payload: &[u8], ctx: &Context<'_>) -> Result<EventRequest, Rejected> {
    let event: wire::RoadEvent = decode(payload, ctx)?;
    let id = event.event_id.clone();
    check_id("event_id", &id, "")?;
    check_rsu(&event.rsu_id, &id, ctx)?;
    if event.cancel {
        return Ok(EventRequest::Cancel(id));
    }
    if event.event_type > u32::from(u16::MAX) {
        return Err(out_of_range(&id, format!("event_type: {} is out of range 0..=65535", event.event_type)));
    }
    if event.priority > 7 {
        return Err(out_of_range(&id, format!("priority: {} is out of range 0..=7", event.priority)));
    }
    if !(event.radius_m.is_finite() && (1.0..=5000.0).contains(&event.radius_m)) {
        return Err(out_of_range(&id, format!("radius_m: {} is out of range 1..=5000", event.radius_m)));
    }
    if event.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(out_of_range(
            &id,
            format!("description: {} bytes, more than {MAX_DESCRIPTION_BYTES}", event.description.len()),
        ));
    }
    let Some(position) = &event.position else {
        return Err(Rejected::new(&id, Refusal::Invalid, "position: missing"));
    };
    let wgs = Wgs84::try_from(position).map_err(|e| out_of_range(&id, format!("position: {e}")))?;
    let enu = ctx.site.enu_from_wgs84(&wgs);
    let distance_m = enu.x.hypot(enu.y);
    if distance_m.is_nan() || distance_m > MAX_EVENT_DISTANCE_M {
        return Err(out_of_range(
            &id,
            format!("position: {distance_m:.0} m from the site, more than {MAX_EVENT_DISTANCE_M} m"),
        ));
    }
    let time = |field: &str, ns: u64| {
        i64::try_from(ns)
            .map(Timestamp::from_nanos)
            .map_err(|_| out_of_range(&id, format!("{field}: {ns} is not a time")))
    };
    let start = if event.start_time_ns == 0 { ctx.now } else { time("start_time_ns", event.start_time_ns)? };
    let end = time("end_time_ns", event.end_time_ns)?;
    if end <= start || end <= ctx.now {
        return Err(out_of_range(&id, "end_time_ns: not after start_time_ns and now".to_owned()));
    }
    if end.secs_since(ctx.now) > MAX_EVENT_HORIZON_S {
        return Err(out_of_range(&id, format!("end_time_ns: more than {MAX_EVENT_HORIZON_S} s ahead")));
    }
    Ok(EventRequest::Store(StoredEvent { event, start, end }))
}

/// The road events in force, by id, at most `max`.
#[derive(Debug)]
pub struct RoadEvents {
    events: BTreeMap<String, StoredEvent>,
    max: usize,
}

impl RoadEvents {
    /// An empty store of at most `max` events.
    pub fn new(max: usize) -> Self {
        RoadEvents { events: BTreeMap::new(), max }
    }

    /// Stores `event`, replacing one with the same id; refused (`too_many`) when the store is
    /// full of other events.
    pub fn store(&mut self, event: StoredEvent) -> Result<(), Rejected> {
        let id = event.event.event_id.clone();
        if !self.events.contains_key(&id) && self.events.len() >= self.max {
            return Err(Rejected::new(&id, Refusal::TooMany, format!("{} road events in force already", self.max)));
        }
        self.events.insert(id, event);
        Ok(())
    }

    /// Withdraws the event `id`; the event, if it was in force.
    pub fn cancel(&mut self, id: &str) -> Option<StoredEvent> {
        self.events.remove(id)
    }

    /// Removes and returns the events whose end is at or before `now`.
    pub fn expire(&mut self, now: Timestamp) -> Vec<StoredEvent> {
        let ended: Vec<String> = self.events.iter().filter(|(_, e)| e.end <= now).map(|(id, _)| id.clone()).collect();
        ended.iter().filter_map(|id| self.events.remove(id)).collect()
    }

    /// Events in force.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none is in force.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The event `id`, if in force.
    pub fn get(&self, id: &str) -> Option<&StoredEvent> {
        self.events.get(id)
    }
}

#[cfg(test)]
mod tests {
    use v2x_proto::encode_wire;

    use super::*;

    fn site() -> EnuFrame {
        v2x_proto::sample::site().frame()
    }

    fn ctx(site: &EnuFrame) -> Context<'_> {
        Context { rsu_id: "rsu-1", site, max_bytes: 4096, now: Timestamp::from_nanos(1_800_000_000_000_000_000) }
    }

    fn settings() -> Settings {
        Settings { rsm_rate_hz: 2.0, spat_rate_hz: 1.0, heartbeat_interval_s: 10.0, vehicle_spat_rate_hz: 10.0 }
    }

    fn event(site: &EnuFrame, now: Timestamp) -> wire::RoadEvent {
        let origin = site.wgs84_from_enu(&nalgebra::Point3::new(50.0, 20.0, 0.0));
        wire::RoadEvent {
            event_id: "works-7".into(),
            rsu_id: "rsu-1".into(),
            event_type: 401,
            position: Some(wire::Wgs84Position::from(&origin)),
            radius_m: 30.0,
            start_time_ns: 0,
            end_time_ns: now.add_secs(600.0).as_nanos() as u64,
            description: "road works, right lane closed".into(),
            priority: 3,
            cancel: false,
        }
    }

    #[test]
    fn a_config_change_keeps_what_it_leaves_out() {
        let site = site();
        let change = wire::ConfigChange {
            request_id: "r1".into(),
            rsu_id: "rsu-1".into(),
            settings: Some(wire::RuntimeSettings { rsm_rate_hz: Some(5.0), ..Default::default() }),
        };
        let (id, next) = config_change(&encode_wire(&change), &settings(), &ctx(&site)).expect("valid");
        assert_eq!(id, "r1");
        assert_eq!(next, Settings { rsm_rate_hz: 5.0, ..settings() });
    }

    #[test]
    fn bad_config_changes_are_refused_with_their_reason() {
        let site = site();
        let ctx = ctx(&site);
        let change = |id: &str, rsu: &str, s: Option<wire::RuntimeSettings>| {
            encode_wire(&wire::ConfigChange { request_id: id.into(), rsu_id: rsu.into(), settings: s })
        };
        let some = Some(wire::RuntimeSettings::default());
        let cases: Vec<(Vec<u8>, Refusal, &str)> = vec![
            (vec![0xff, 0xff, 0xff], Refusal::Malformed, ""),
            (vec![0u8; 5000], Refusal::Oversized, ""),
            (change("", "rsu-1", some), Refusal::Invalid, ""),
            (change("r2", "rsu-9", some), Refusal::WrongRsu, "r2"),
            (change("r3", "rsu-1", None), Refusal::Invalid, "r3"),
            (
                change("r4", "rsu-1", Some(wire::RuntimeSettings { rsm_rate_hz: Some(500.0), ..Default::default() })),
                Refusal::OutOfRange,
                "r4",
            ),
            (
                change(
                    "r5",
                    "rsu-1",
                    Some(wire::RuntimeSettings { heartbeat_interval_s: Some(f64::NAN), ..Default::default() }),
                ),
                Refusal::OutOfRange,
                "r5",
            ),
        ];
        for (payload, reason, id) in cases {
            let refused = config_change(&payload, &settings(), &ctx).expect_err("refused");
            assert_eq!((refused.reason, refused.request_id.as_str()), (reason, id), "{refused:?}");
        }
    }

    #[test]
    fn road_events_are_checked_stored_replaced_and_expired() {
        let site = site();
        let ctx = ctx(&site);
        let good = event(&site, ctx.now);
        let EventRequest::Store(stored) = road_event(&encode_wire(&good), &ctx).expect("valid") else {
            panic!("a store request");
        };
        assert_eq!(stored.start, ctx.now);
        let mut store = RoadEvents::new(2);
        store.store(stored.clone()).expect("room");
        store.store(stored.clone()).expect("a replacement takes no room");
        let mut other = stored.clone();
        other.event.event_id = "crash-1".into();
        store.store(other.clone()).expect("room");
        let mut third = stored.clone();
        third.event.event_id = "ice-2".into();
        assert_eq!(store.store(third).expect_err("full").reason, Refusal::TooMany);
        assert!(store.expire(ctx.now.add_secs(599.0)).is_empty());
        assert_eq!(store.expire(ctx.now.add_secs(600.0)).len(), 2);
        assert!(store.is_empty());

        let refused = |e: wire::RoadEvent| road_event(&encode_wire(&e), &ctx).expect_err("refused").reason;
        assert_eq!(refused(wire::RoadEvent { radius_m: 0.0, ..good.clone() }), Refusal::OutOfRange);
        assert_eq!(refused(wire::RoadEvent { priority: 9, ..good.clone() }), Refusal::OutOfRange);
        assert_eq!(refused(wire::RoadEvent { end_time_ns: 5, ..good.clone() }), Refusal::OutOfRange);
        assert_eq!(refused(wire::RoadEvent { end_time_ns: u64::MAX, ..good.clone() }), Refusal::OutOfRange);
        assert_eq!(refused(wire::RoadEvent { rsu_id: "rsu-2".into(), ..good.clone() }), Refusal::WrongRsu);
        assert_eq!(refused(wire::RoadEvent { position: None, ..good.clone() }), Refusal::Invalid);
        let far = site.wgs84_from_enu(&nalgebra::Point3::new(20_000.0, 0.0, 0.0));
        let far = Some(wire::Wgs84Position::from(&far));
        assert_eq!(refused(wire::RoadEvent { position: far, ..good.clone() }), Refusal::OutOfRange);
        let cancel = wire::RoadEvent { cancel: true, radius_m: -1.0, ..good };
        assert_eq!(road_event(&encode_wire(&cancel), &ctx), Ok(EventRequest::Cancel("works-7".into())));
    }
}
