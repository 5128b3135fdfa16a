//! One roadside frame for many vehicles: the frame is encoded once, field by field, and each
//! vehicle's frame is assembled from the parts it gets (the participants in its region, each
//! with the path-history points the vehicle was not sent yet, and the RSU's id, sensor health and
//! perception regions when they are due, PROTOCOL.md §2.4) by copying bytes instead of
//! building and encoding a filtered frame per vehicle. Protobuf allows a message's fields in any
//! order and a repeated field's elements anywhere, so an assembled frame decodes exactly as the
//! filtered frame would (`tests` below check it against the encoder and both decoders).

use prost::Message;
use rsu_fusion::{PathPoint, RoadsideFrame};

use crate::wire;

/// Field number of `RoadsideFrame.participants`.
const PARTICIPANTS_FIELD: u32 = 5;

/// A frame encoded once, ready to be cut per vehicle.
#[derive(Clone, Debug)]
pub struct FrameParts {
    /// Every field but the participants, the RSU's id and sensor health, and the perception
    /// regions.
    head: Vec<u8>,
    /// The RSU's id and the sensor health (sent to a vehicle only when due, see [`Sections`]).
    health: Vec<u8>,
    /// The perception regions (sent to a vehicle only when due).
    regions: Vec<u8>,
    /// All participants, each as a complete `participants` field (key, length, message) without
    /// its path history, one after the other.
    participants: Vec<u8>,
    /// The end of each participant's bytes in `participants`.
    ends: Vec<usize>,
}

/// Which of the parts sent only on change go into a vehicle's frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sections {
    /// The RSU's id and the sensor health (`rsu_id`, `sensors`).
    pub health: bool,
    /// The perception regions.
    pub regions: bool,
}

impl FrameParts {
    /// Encodes `frame` in parts.
    pub fn new(frame: &RoadsideFrame) -> FrameParts {
        let mut message = wire::RoadsideFrame::from(frame);
        let all = std::mem::take(&mut message.participants);
        let health = wire::RoadsideFrame {
            rsu_id: std::mem::take(&mut message.rsu_id),
            sensors: std::mem::take(&mut message.sensors),
            ..Default::default()
        }
        .encode_to_vec();
        let regions = wire::RoadsideFrame {
            perception_regions: std::mem::take(&mut message.perception_regions),
            ..Default::default()
        }
        .encode_to_vec();
        let head = message.encode_to_vec();
        let mut participants = Vec::with_capacity(all.len() * 48);
        let mut ends = Vec::with_capacity(all.len());
        for mut p in all {
            p.path_history.clear();
            prost::encoding::message::encode(PARTICIPANTS_FIELD, &p, &mut participants);
            ends.push(participants.len());
        }
        FrameParts { head, health, regions, participants, ends }
    }

    /// Participants in the frame.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the frame has no participant.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends to `out` the encoding of `frame` (the frame these parts were made of) with only
    /// the participants `selected` names, by index, each with the path-history points given
    /// (none: no history), and of the RSU's id and sensor health and the perception regions the
    /// `sections` given, in at most `max_bytes`: participants go in in the order given until the
    /// next would not fit; it and all after it are left out. Returns how many of `selected` went
    /// in (entries naming no participant count as in, adding nothing).
    ///
    /// The frame without participants (a few hundred bytes per sensor of the site, which has at
    /// most 64) always goes in: `max_bytes` of a protocol limit leaves room for it.
    pub fn assemble<'a>(
        &self,
        frame: &RoadsideFrame,
        selected: impl IntoIterator<Item = (usize, &'a [PathPoint])>,
        sections: Sections,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let start_len = out.len();
        out.extend_from_slice(&self.head);
        if sections.health {
            out.extend_from_slice(&self.health);
        }
        if sections.regions {
            out.extend_from_slice(&self.regions);
        }
        let mut taken = 0;
        for (i, history) in selected {
            let (Some(&end), Some(p)) = (self.ends.get(i), frame.participants.get(i)) else {
                taken += 1;
                continue;
            };
            let mark = out.len();
            if history.is_empty() {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                out.extend_from_slice(&self.participants[start..end]);
            } else {
                let mut with_history = p.clone();
                with_history.path_history = history.to_vec();
                prost::encoding::message::encode(PARTICIPANTS_FIELD, &wire::Participant::from(&with_history), out);
            }
            if out.len() - start_len > max_bytes {
                out.truncate(mark);
                break;
            }
            taken += 1;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::intersection_frame;

    #[test]
    fn an_assembled_frame_decodes_as_the_filtered_frame() {
        let mut frame = intersection_frame(40, 3);
        for (k, p) in frame.participants.iter_mut().enumerate() {
            p.path_history =
                (0..(k % 5)).map(|j| PathPoint { offset_m: [-(j as f64), 0.5], dt_s: 0.5 * (j + 1) as f64 }).collect();
        }
        let parts = FrameParts::new(&frame);
        assert_eq!(parts.len(), 40);
        // Every third participant; every other of those with its first history point only.
        let picks: Vec<(usize, Vec<PathPoint>)> = (0..40)
            .step_by(3)
            .map(|i| {
                (
                    i,
                    if i % 2 == 0 {
                        frame.participants[i].path_history.iter().take(1).cloned().collect()
                    } else {
                        Vec::new()
                    },
                )
            })
            .collect();
        let mut bytes = Vec::new();
        let all = Sections { health: true, regions: true };
        let taken = parts.assemble(
            &frame,
            picks.iter().map(|(i, h)| (*i, h.as_slice())),
            all,
            crate::MAX_MESSAGE_BYTES,
            &mut bytes,
        );
        assert_eq!(taken, picks.len());

        let mut filtered = frame.clone();
        filtered.participants = picks
            .iter()
            .map(|(i, h)| rsu_fusion::Participant { path_history: h.clone(), ..frame.participants[*i].clone() })
            .collect();
        let decoded: RoadsideFrame = crate::decode(&bytes).expect("assembled frame decodes");
        let reference: RoadsideFrame = crate::decode(&crate::encode(&filtered)).expect("filtered frame decodes");
        assert_eq!(decoded, reference);
        assert_eq!(bytes.len(), crate::encode(&filtered).len(), "the same fields, only in another order");
        let via_prost: wire::RoadsideFrame = wire::RoadsideFrame::decode(bytes.as_slice()).expect("prost decodes it");
        assert_eq!(via_prost.participants.len(), picks.len());

        let mut none = Vec::new();
        assert_eq!(parts.assemble(&frame, std::iter::empty(), Sections::default(), 0, &mut none), 0);
        let empty: RoadsideFrame = crate::decode(&none).expect("decodes");
        assert!(empty.participants.is_empty() && empty.perception_regions.is_empty() && empty.sensors.is_empty());
        assert!(empty.rsu_id.is_empty(), "the id goes with the health");
        assert!(!frame.perception_regions.is_empty() && !frame.sensors.is_empty(), "the sample has both to leave out");
        assert_eq!(empty.newest_capture, frame.newest_capture, "every frame says how fresh it is");
        assert!(empty.newest_capture.is_some());
        assert_eq!((empty.time, empty.message_count), (frame.time, frame.message_count));

        // Each section alone is its field of the frame, whole.
        for sections in [Sections { health: true, regions: false }, Sections { health: false, regions: true }] {
            let mut bytes = Vec::new();
            parts.assemble(&frame, std::iter::empty(), sections, usize::MAX, &mut bytes);
            let decoded: RoadsideFrame = crate::decode(&bytes).expect("decodes");
            assert_eq!(decoded.sensors, if sections.health { frame.sensors.clone() } else { Vec::new() });
            assert_eq!(decoded.rsu_id, if sections.health { frame.rsu_id.clone() } else { String::new() });
            let regions = if sections.regions { frame.perception_regions.clone() } else { Vec::new() };
            assert_eq!(decoded.perception_regions, regions);
        }
    }

    /// Health and regions both in.
    const EVERY: Sections = Sections { health: true, regions: true };

    #[test]
    fn an_assembled_frame_stays_within_its_byte_limit() {
        // The largest frame the engine makes: every participant with a full path history of
        // points far apart (long varints), more bytes than the protocol allows a frame.
        let mut frame = intersection_frame(crate::convert::MAX_PARTICIPANTS, 3);
        for p in &mut frame.participants {
            p.path_history = (0..crate::convert::MAX_PATH_POINTS)
                .map(|j| PathPoint { offset_m: [-1.0e6 - j as f64, 1.0e6], dt_s: 3.0e5 + j as f64 })
                .collect();
        }
        let parts = FrameParts::new(&frame);
        let all: Vec<(usize, &[PathPoint])> =
            frame.participants.iter().enumerate().map(|(i, p)| (i, p.path_history.as_slice())).collect();
        let mut unlimited = Vec::new();
        assert_eq!(parts.assemble(&frame, all.iter().copied(), EVERY, usize::MAX, &mut unlimited), all.len());
        assert!(unlimited.len() > crate::MAX_MESSAGE_BYTES, "{} bytes: not beyond the limit", unlimited.len());
        assert!(crate::decode::<RoadsideFrame>(&unlimited).is_err(), "a receiver refuses it");

        // Within the limit: the participants that fit, in order, and a frame receivers accept.
        let mut capped = Vec::new();
        let taken = parts.assemble(&frame, all.iter().copied(), EVERY, crate::MAX_MESSAGE_BYTES, &mut capped);
        assert!(taken > 0 && taken < all.len(), "{taken} of {}", all.len());
        assert!(capped.len() <= crate::MAX_MESSAGE_BYTES);
        let decoded: RoadsideFrame = crate::decode(&capped).expect("a capped frame decodes");
        assert_eq!(decoded.participants.len(), taken);
        assert_eq!(decoded.participants[taken - 1].id, frame.participants[taken - 1].id);

        // Exactly at the limit: the participants that fit, all of them.
        let mut exact = Vec::new();
        assert_eq!(parts.assemble(&frame, all[..taken].iter().copied(), EVERY, capped.len(), &mut exact), taken);
        assert_eq!(exact, capped);
        let mut one_short = Vec::new();
        assert_eq!(
            parts.assemble(&frame, all[..taken].iter().copied(), EVERY, capped.len() - 1, &mut one_short),
            taken - 1
        );
    }
}
