//! Traffic signals: a controller's state (`SignalControllerState`), the SPaT broadcast (`Spat`)
//! and the downlink datagram that carries it (`RoadsideDatagram`). Wire → domain checks every
//! signal group (1..=255, each once), every time (within [`MAX_SIGNAL_HORIZON_S`] of the
//! message's time) and their order (`start <= min_end <= likely <= max_end`, else
//! [`ConvertError::Inconsistent`]).

use rsu_fusion::Timestamp;

use super::common::{id_string, limit, out_of_range, required, timestamp, wire_time};
use super::{MAX_MOVEMENTS, MAX_SIGNAL_HORIZON_S, Result};
use crate::ConvertError;
use crate::domain::{MovementPhase, MovementState, RoadsideDatagram, SignalControllerState, Spat};
use crate::wire;

enum_mapping!(
    phase_to_wire,
    phase_from_wire,
    MovementPhase,
    MovementPhase,
    "movements.phase",
    [
        Unavailable,
        Dark,
        StopThenProceed,
        StopAndRemain,
        PreMovement,
        PermissiveMovementAllowed,
        ProtectedMovementAllowed,
        PermissiveClearance,
        ProtectedClearance,
        CautionConflictingTraffic,
    ]
);

impl From<&MovementState> for wire::MovementState {
    fn from(m: &MovementState) -> Self {
        wire::MovementState {
            signal_group: u32::from(m.signal_group),
            phase: phase_to_wire(m.phase) as i32,
            start_time_ns: m.start.map(wire_time),
            min_end_time_ns: wire_time(m.min_end),
            max_end_time_ns: m.max_end.map(wire_time),
            likely_time_ns: m.likely.map(wire_time),
        }
    }
}

/// A signal time of a message taken at `at`: within [`MAX_SIGNAL_HORIZON_S`] of it.
fn signal_time(field: &'static str, ns: u64, at: Timestamp) -> Result<Timestamp> {
    let t = timestamp(field, ns)?;
    if (t.as_nanos() - at.as_nanos()).abs() > MAX_SIGNAL_HORIZON_S * 1_000_000_000 {
        return Err(out_of_range(field, ns, "within one hour of the message's timestamp_ns"));
    }
    Ok(t)
}

fn movement(m: &wire::MovementState, at: Timestamp) -> Result<MovementState> {
    let signal_group = u8::try_from(m.signal_group)
        .ok()
        .filter(|g| *g >= 1)
        .ok_or_else(|| out_of_range("movements.signal_group", m.signal_group, "1..=255"))?;
    let optional = |field, ns: Option<u64>| ns.map(|ns| signal_time(field, ns, at)).transpose();
    let state = MovementState {
        signal_group,
        phase: phase_from_wire(m.phase)?,
        start: optional("movements.start_time_ns", m.start_time_ns)?,
        min_end: signal_time("movements.min_end_time_ns", m.min_end_time_ns, at)?,
        max_end: optional("movements.max_end_time_ns", m.max_end_time_ns)?,
        likely: optional("movements.likely_time_ns", m.likely_time_ns)?,
    };
    state.check_order().map_err(|problem| ConvertError::Inconsistent {
        field: "movements",
        problem: format!("signal group {signal_group}: {problem}"),
    })?;
    Ok(state)
}

/// The movements of a message taken at `at`: 1..=[`MAX_MOVEMENTS`], each signal group once.
fn movements(list: &[wire::MovementState], at: Timestamp) -> Result<Vec<MovementState>> {
    limit("movements", list, MAX_MOVEMENTS)?;
    if list.is_empty() {
        return Err(ConvertError::Missing { field: "movements" });
    }
    let mut out: Vec<MovementState> = Vec::with_capacity(list.len());
    for m in list {
        let m = movement(m, at)?;
        if out.iter().any(|o| o.signal_group == m.signal_group) {
            return Err(ConvertError::Inconsistent {
                field: "movements",
                problem: format!("signal group {} is listed twice", m.signal_group),
            });
        }
        out.push(m);
    }
    Ok(out)
}

fn message_time(field: &'static str, ns: u64) -> Result<Timestamp> {
    if ns == 0 {
        return Err(ConvertError::Missing { field });
    }
    timestamp(field, ns)
}

impl From<&SignalControllerState> for wire::SignalControllerState {
    fn from(s: &SignalControllerState) -> Self {
        wire::SignalControllerState {
            controller_id: s.controller_id.clone(),
            timestamp_ns: wire_time(s.time),
            movements: s.movements.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<&wire::SignalControllerState> for SignalControllerState {
    type Error = ConvertError;
    fn try_from(s: &wire::SignalControllerState) -> Result<Self> {
        let time = message_time("timestamp_ns", s.timestamp_ns)?;
        Ok(SignalControllerState {
            controller_id: id_string("controller_id", &s.controller_id)?,
            time,
            movements: movements(&s.movements, time)?,
        })
    }
}

impl From<&Spat> for wire::Spat {
    fn from(s: &Spat) -> Self {
        wire::Spat {
            intersection_id: u32::from(s.intersection_id),
            revision: u32::from(s.revision),
            timestamp_ns: wire_time(s.time),
            controller_time_ns: wire_time(s.controller_time),
            movements: s.movements.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<&wire::Spat> for Spat {
    type Error = ConvertError;
    fn try_from(s: &wire::Spat) -> Result<Self> {
        let time = message_time("timestamp_ns", s.timestamp_ns)?;
        let intersection_id = u16::try_from(s.intersection_id)
            .map_err(|_| out_of_range("intersection_id", s.intersection_id, "0..=65535"))?;
        let revision = u8::try_from(s.revision)
            .ok()
            .filter(|r| *r < 128)
            .ok_or_else(|| out_of_range("revision", s.revision, "0..=127"))?;
        Ok(Spat {
            intersection_id,
            revision,
            time,
            controller_time: signal_time("controller_time_ns", s.controller_time_ns, time)?,
            movements: movements(&s.movements, time)?,
        })
    }
}

impl From<&RoadsideDatagram> for wire::RoadsideDatagram {
    fn from(d: &RoadsideDatagram) -> Self {
        let body = match d {
            RoadsideDatagram::Spat(s) => wire::roadside_datagram::Body::Spat(s.into()),
        };
        wire::RoadsideDatagram { body: Some(body) }
    }
}

impl TryFrom<&wire::RoadsideDatagram> for RoadsideDatagram {
    type Error = ConvertError;
    fn try_from(d: &wire::RoadsideDatagram) -> Result<Self> {
        Ok(match required("body", &d.body)? {
            wire::roadside_datagram::Body::Spat(s) => RoadsideDatagram::Spat(Spat::try_from(s)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeError, decode, encode};

    const T0: i64 = 1_795_000_000_000_000_000;

    fn at(s: f64) -> Timestamp {
        Timestamp::from_nanos(T0).add_secs(s)
    }

    fn green(group: u8) -> MovementState {
        MovementState {
            signal_group: group,
            phase: MovementPhase::ProtectedMovementAllowed,
            start: Some(at(-3.0)),
            min_end: at(5.0),
            max_end: Some(at(20.0)),
            likely: Some(at(12.5)),
        }
    }

    fn controller_state(movements: Vec<MovementState>) -> SignalControllerState {
        SignalControllerState { controller_id: "tsc-1".into(), time: at(0.0), movements }
    }

    fn invalid(bytes: &[u8]) -> ConvertError {
        match decode::<SignalControllerState>(bytes) {
            Err(DecodeError::Invalid(e)) => e,
            other => panic!("expected invalid content, got {other:?}"),
        }
    }

    #[test]
    fn states_and_spat_round_trip_exactly() {
        let mut red = green(2);
        red.phase = MovementPhase::StopAndRemain;
        red.start = None;
        red.likely = None;
        let state = controller_state(vec![green(1), red]);
        assert_eq!(decode::<SignalControllerState>(&encode(&state)).expect("decodes"), state);
        let spat = Spat {
            intersection_id: 1201,
            revision: 127,
            time: at(0.05),
            controller_time: at(0.0),
            movements: state.movements.clone(),
        };
        let datagram = RoadsideDatagram::Spat(spat);
        assert_eq!(decode::<RoadsideDatagram>(&encode(&datagram)).expect("decodes"), datagram);
    }

    #[test]
    fn a_phase_ending_before_it_starts_is_inconsistent() {
        let mut m = green(1);
        m.start = Some(at(6.0));
        let e = invalid(&encode(&controller_state(vec![m])));
        assert!(
            matches!(&e, ConvertError::Inconsistent { problem, .. } if problem.contains("before it starts")),
            "{e}"
        );
        for broken in [
            MovementState { max_end: Some(at(4.0)), ..green(1) },
            MovementState { likely: Some(at(21.0)), ..green(1) },
            MovementState { likely: Some(at(4.0)), ..green(1) },
        ] {
            assert!(matches!(invalid(&encode(&controller_state(vec![broken]))), ConvertError::Inconsistent { .. }));
        }
        let twice = invalid(&encode(&controller_state(vec![green(3), green(3)])));
        assert!(matches!(twice, ConvertError::Inconsistent { .. }), "{twice}");
    }

    #[test]
    fn out_of_range_values_are_invalid() {
        // Signal group 0 (J2735: not available), a time two hours away, no movements, too many.
        let cases = [
            controller_state(vec![MovementState { signal_group: 0, ..green(1) }]),
            controller_state(vec![MovementState { min_end: at(7200.0), max_end: None, likely: None, ..green(1) }]),
            controller_state(vec![]),
            controller_state((1..=25).map(green).collect()),
            SignalControllerState { controller_id: String::new(), ..controller_state(vec![green(1)]) },
        ];
        for state in cases {
            let e = invalid(&encode(&state));
            assert!(!matches!(e, ConvertError::Inconsistent { .. }), "{e}");
        }
        let mut wire = wire::SignalControllerState::from(&controller_state(vec![green(1)]));
        wire.movements[0].phase = 10;
        assert!(matches!(SignalControllerState::try_from(&wire), Err(ConvertError::UnknownEnum { .. })));
        wire.movements[0].phase = 6;
        wire.movements[0].signal_group = 256;
        assert!(matches!(SignalControllerState::try_from(&wire), Err(ConvertError::OutOfRange { .. })));
        wire.movements[0].signal_group = 1;
        wire.timestamp_ns = 0;
        assert!(matches!(SignalControllerState::try_from(&wire), Err(ConvertError::Missing { .. })));
    }

    #[test]
    fn the_largest_spat_fits_a_datagram() {
        // Every time given and at its widest varint: what a full intersection costs on the wire.
        let movements: Vec<MovementState> = (0..MAX_MOVEMENTS).map(|i| green(255 - i as u8)).collect();
        let spat = Spat { intersection_id: 65535, revision: 127, time: at(0.0), controller_time: at(0.0), movements };
        let bytes = encode(&RoadsideDatagram::Spat(spat));
        assert!(bytes.len() <= crate::MAX_DATAGRAM_BYTES, "{} bytes", bytes.len());
    }
}
