//! The SPaT blob of NTCIP 1202 v03 actuated signal controllers: the fixed 245-byte status
//! message a controller pushes over UDP about ten times a second (its "SPaT broadcast" / TSCBM
//! output; controllers are set up with the RSU's address and port), parsed into the movement
//! states of a [`SignalControllerState`]. The bytes are untrusted: the parser reads only within
//! the datagram, never panics, and says what is wrong ([`NtcipError`]).
//!
//! Layout (all multi-byte fields big-endian; times in tenths of a second from when the
//! controller sent the blob; "bit i" is the bit of value `1 << (i - 1)` for phase or overlap i):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | message type, `0xCD` |
//! | 1 | 1 | number of phase blocks, 16 |
//! | 2 + 13 (i - 1) | 13 | block of phase i (1..=16): |
//! | +0 | 1 | phase number i |
//! | +1 | 2 | vehicle min time to change [0.1 s] |
//! | +3 | 2 | vehicle max time to change [0.1 s] |
//! | +5 | 2 | pedestrian min time to change [0.1 s] |
//! | +7 | 2 | pedestrian max time to change [0.1 s] |
//! | +9 | 2 | overlap i min time to change [0.1 s] |
//! | +11 | 2 | overlap i max time to change [0.1 s] |
//! | 210 | 2 | phase status group reds (bit i: phase i red) |
//! | 212 | 2 | phase status group yellows |
//! | 214 | 2 | phase status group greens |
//! | 216 | 2 | pedestrian don't walks |
//! | 218 | 2 | pedestrian clears |
//! | 220 | 2 | pedestrian walks |
//! | 222 | 2 | overlap status group reds |
//! | 224 | 2 | overlap status group yellows |
//! | 226 | 2 | overlap status group greens |
//! | 228 | 2 | flashing output phases (bit i: phase i flashes) |
//! | 230 | 2 | flashing output overlaps |
//! | 232 | 1 | intersection status |
//! | 233 | 1 | timebase ASC action status |
//! | 234 | 1 | discontinuous change flag |
//! | 235 | 1 | message sequence counter |
//! | 236 | 3 | controller time of day [s] |
//! | 239 | 2 | controller time of day, milliseconds |
//! | 241 | 2 | pedestrian calls active |
//! | 243 | 2 | pedestrian detectors active |
//!
//! The status groups carry the values of NTCIP 1202's `phaseStatusGroupReds`, `…Yellows`,
//! `…Greens`, `…DontWalks`, `…PedClears`, `…Walks` and `overlapStatusGroupReds`, `…Yellows`,
//! `…Greens` for the first group of 16 phases and overlaps.
//!
//! Mapping: phase i is signal group i, overlap i is signal group 16 + i. A phase or overlap with
//! none of red, yellow or green set is not in use and left out. Red is `STOP_AND_REMAIN`
//! (flashing: `STOP_THEN_PROCEED`), yellow `PROTECTED_CLEARANCE` (flashing:
//! `CAUTION_CONFLICTING_TRAFFIC`), green `PROTECTED_MOVEMENT_ALLOWED` (the blob does not say
//! whether a green is permissive). The times to change are counted from the blob's arrival:
//! `min_end = arrival + min`, `max_end = arrival + max`; the controller's time of day is not
//! used (its clock need not be synchronised). Pedestrian signals are not mapped.
//!
//! Refused as malformed: a blob of another length, type or block count, or a block whose phase
//! number is not its position. Refused as inconsistent: a phase or overlap with more than one
//! of red, yellow, green set, or with a min time to change above its max.

use rsu_fusion::Timestamp;
use v2x_proto::domain::{MovementPhase, MovementState, SignalControllerState};

/// Length of the blob [bytes].
pub const BLOB_BYTES: usize = 245;
/// The message type in byte 0.
pub const MESSAGE_TYPE: u8 = 0xCD;
/// Phase (and overlap) blocks in the blob.
pub const PHASES: usize = 16;
/// Bytes per phase block.
const BLOCK_BYTES: usize = 13;
/// Offset of the status groups.
const STATUS_OFFSET: usize = 2 + PHASES * BLOCK_BYTES;
/// Offset of the message sequence counter.
const SEQUENCE_OFFSET: usize = 235;

/// Why a blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtcipError {
    /// Not a SPaT blob of the layout above.
    #[error("malformed NTCIP SPaT blob: {0}")]
    Malformed(String),
    /// Fields that contradict each other.
    #[error("inconsistent NTCIP SPaT blob: {0}")]
    Inconsistent(String),
}

/// What one blob says.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    /// The controller's message sequence counter.
    pub sequence: u8,
    /// The movement states of the phases and overlaps in use, signal group order.
    pub movements: Vec<MovementState>,
}

impl Blob {
    /// The controller state of controller `controller_id` this blob, received at `arrival`,
    /// describes.
    pub fn into_state(self, controller_id: &str, arrival: Timestamp) -> SignalControllerState {
        SignalControllerState { controller_id: controller_id.to_owned(), time: arrival, movements: self.movements }
    }
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    // Callers checked the length first; a short slice reads as 0 rather than panicking.
    match bytes.get(offset..offset + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// Parses a blob received at `arrival` (the base of its times to change).
pub fn parse(bytes: &[u8], arrival: Timestamp) -> Result<Blob, NtcipError> {
    if bytes.len() != BLOB_BYTES {
        return Err(NtcipError::Malformed(format!("{} bytes, expected {BLOB_BYTES}", bytes.len())));
    }
    if bytes[0] != MESSAGE_TYPE {
        return Err(NtcipError::Malformed(format!("message type {:#04x}, expected {MESSAGE_TYPE:#04x}", bytes[0])));
    }
    if usize::from(bytes[1]) != PHASES {
        return Err(NtcipError::Malformed(format!("{} phase blocks, expected {PHASES}", bytes[1])));
    }
    let status = |k: usize| u16_at(bytes, STATUS_OFFSET + 2 * k);
    let (reds, yellows, greens) = (status(0), status(1), status(2));
    let (overlap_reds, overlap_yellows, overlap_greens) = (status(6), status(7), status(8));
    let (flashing, flashing_overlaps) = (status(9), status(10));
    let mut vehicle = Vec::new();
    let mut overlaps = Vec::new();
    for i in 0..PHASES {
        let block = 2 + i * BLOCK_BYTES;
        let number = bytes[block];
        if usize::from(number) != i + 1 {
            return Err(NtcipError::Malformed(format!("block {} names phase {number}", i + 1)));
        }
        let bit = 1u16 << i;
        let phase = movement(
            i + 1,
            [reds & bit != 0, yellows & bit != 0, greens & bit != 0],
            flashing & bit != 0,
            (u16_at(bytes, block + 1), u16_at(bytes, block + 3)),
            arrival,
        )?;
        vehicle.extend(phase);
        let overlap = movement(
            PHASES + i + 1,
            [overlap_reds & bit != 0, overlap_yellows & bit != 0, overlap_greens & bit != 0],
            flashing_overlaps & bit != 0,
            (u16_at(bytes, block + 9), u16_at(bytes, block + 11)),
            arrival,
        )?;
        overlaps.extend(overlap);
    }
    vehicle.extend(overlaps);
    Ok(Blob { sequence: bytes[SEQUENCE_OFFSET], movements: vehicle })
}

/// The movement state of signal group `group` with the `[red, yellow, green]` bits, flashing or
/// not, and its `(min, max)` times to change [0.1 s] from `arrival`; `None` when not in use.
fn movement(
    group: usize,
    [red, yellow, green]: [bool; 3],
    flashing: bool,
    (min_ds, max_ds): (u16, u16),
    arrival: Timestamp,
) -> Result<Option<MovementState>, NtcipError> {
    let phase = match (red, yellow, green) {
        (false, false, false) => return Ok(None),
        (true, false, false) if flashing => MovementPhase::StopThenProceed,
        (true, false, false) => MovementPhase::StopAndRemain,
        (false, true, false) if flashing => MovementPhase::CautionConflictingTraffic,
        (false, true, false) => MovementPhase::ProtectedClearance,
        (false, false, true) => MovementPhase::ProtectedMovementAllowed,
        _ => return Err(NtcipError::Inconsistent(format!("signal group {group} shows more than one colour"))),
    };
    if min_ds > max_ds {
        return Err(NtcipError::Inconsistent(format!(
            "signal group {group}: min time to change {min_ds} > max {max_ds} [0.1 s]"
        )));
    }
    let signal_group = u8::try_from(group).map_err(|_| NtcipError::Malformed(format!("signal group {group}")))?;
    Ok(Some(MovementState {
        signal_group,
        phase,
        start: None,
        min_end: arrival.add_secs(f64::from(min_ds) / 10.0),
        max_end: Some(arrival.add_secs(f64::from(max_ds) / 10.0)),
        likely: None,
    }))
}

/// Builds blobs of the layout above, for tests and the simulator: phases are set one by one.
#[derive(Debug, Clone)]
pub struct BlobBuilder {
    bytes: [u8; BLOB_BYTES],
}

impl Default for BlobBuilder {
    fn default() -> Self {
        let mut bytes = [0u8; BLOB_BYTES];
        bytes[0] = MESSAGE_TYPE;
        bytes[1] = PHASES as u8;
        for i in 0..PHASES {
            bytes[2 + i * BLOCK_BYTES] = (i + 1) as u8;
        }
        BlobBuilder { bytes }
    }
}

/// A colour of a phase or overlap in a [`BlobBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Red.
    Red,
    /// Yellow.
    Yellow,
    /// Green.
    Green,
}

impl BlobBuilder {
    fn put_u16(&mut self, offset: usize, v: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn set_bit(&mut self, offset: usize, bit: usize) {
        let v = u16_at(&self.bytes, offset) | (1 << bit);
        self.put_u16(offset, v);
    }

    /// Sets phase `phase` (1..=16; overlap when `overlap`) to `colour` with its min and max
    /// times to change [0.1 s].
    pub fn phase(mut self, phase: usize, overlap: bool, colour: Colour, min_ds: u16, max_ds: u16) -> Self {
        let i = phase.clamp(1, PHASES) - 1;
        let block = 2 + i * BLOCK_BYTES;
        let (times, group) = if overlap { (block + 9, 6) } else { (block + 1, 0) };
        self.put_u16(times, min_ds);
        self.put_u16(times + 2, max_ds);
        let k = group
            + match colour {
                Colour::Red => 0,
                Colour::Yellow => 1,
                Colour::Green => 2,
            };
        self.set_bit(STATUS_OFFSET + 2 * k, i);
        self
    }

    /// Sets the message sequence counter.
    pub fn sequence(mut self, sequence: u8) -> Self {
        self.bytes[SEQUENCE_OFFSET] = sequence;
        self
    }

    /// The blob.
    pub fn build(self) -> [u8; BLOB_BYTES] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival() -> Timestamp {
        Timestamp::from_nanos(1_795_000_000_000_000_000)
    }

    /// A fixture written byte by byte from the layout (not with the builder): phase 2 green
    /// with 5.0..=32.5 s to change, phase 4 red 12.0..=40.0 s, phase 6 yellow 3.0 s, overlap 1
    /// (signal group 17) green 5.0..=32.5 s, sequence 42.
    fn fixture() -> Vec<u8> {
        let mut b = vec![0u8; 245];
        b[0] = 0xCD;
        b[1] = 16;
        for i in 0..16 {
            b[2 + 13 * i] = (i + 1) as u8;
        }
        // Phase 2: block at 15; vehicle min 50 (0x0032), max 325 (0x0145).
        b[16..20].copy_from_slice(&[0x00, 0x32, 0x01, 0x45]);
        // Phase 4: block at 41; min 120 (0x0078), max 400 (0x0190).
        b[42..46].copy_from_slice(&[0x00, 0x78, 0x01, 0x90]);
        // Phase 6: block at 67; min = max = 30 (0x001e).
        b[68..72].copy_from_slice(&[0x00, 0x1e, 0x00, 0x1e]);
        // Overlap 1: block 1 at 2, overlap times at +9: min 50, max 325.
        b[11..15].copy_from_slice(&[0x00, 0x32, 0x01, 0x45]);
        // Reds: phase 4 = bit 3 (0x0008); yellows: phase 6 = bit 5 (0x0020); greens: phase 2 =
        // bit 1 (0x0002).
        b[210..216].copy_from_slice(&[0x00, 0x08, 0x00, 0x20, 0x00, 0x02]);
        // Overlap greens: overlap 1 = bit 0.
        b[226..228].copy_from_slice(&[0x00, 0x01]);
        b[235] = 42;
        b
    }

    #[test]
    fn the_fixture_parses_into_its_movements() {
        let blob = parse(&fixture(), arrival()).expect("parses");
        assert_eq!(blob.sequence, 42);
        let groups: Vec<(u8, MovementPhase)> = blob.movements.iter().map(|m| (m.signal_group, m.phase)).collect();
        assert_eq!(
            groups,
            vec![
                (2, MovementPhase::ProtectedMovementAllowed),
                (4, MovementPhase::StopAndRemain),
                (6, MovementPhase::ProtectedClearance),
                (17, MovementPhase::ProtectedMovementAllowed),
            ]
        );
        let m2 = &blob.movements[0];
        assert_eq!(m2.min_end, arrival().add_secs(5.0));
        assert_eq!(m2.max_end, Some(arrival().add_secs(32.5)));
        assert_eq!(blob.movements[1].max_end, Some(arrival().add_secs(40.0)));
        for m in &blob.movements {
            m.check_order().expect("consistent");
        }
        // The builder writes the same bytes.
        let built = BlobBuilder::default()
            .phase(2, false, Colour::Green, 50, 325)
            .phase(4, false, Colour::Red, 120, 400)
            .phase(6, false, Colour::Yellow, 30, 30)
            .phase(1, true, Colour::Green, 50, 325)
            .sequence(42)
            .build();
        assert_eq!(built.to_vec(), fixture());
    }

    #[test]
    fn flashing_phases_map_to_their_j2735_states() {
        let mut b =
            BlobBuilder::default().phase(1, false, Colour::Red, 0, 0).phase(3, false, Colour::Yellow, 0, 0).build();
        b[228..230].copy_from_slice(&[0x00, 0x05]);
        let phases: Vec<MovementPhase> =
            parse(&b, arrival()).expect("parses").movements.iter().map(|m| m.phase).collect();
        assert_eq!(phases, vec![MovementPhase::StopThenProceed, MovementPhase::CautionConflictingTraffic]);
    }

    #[test]
    fn malformed_and_inconsistent_blobs_are_refused() {
        let good = fixture();
        let malformed = |b: &[u8]| matches!(parse(b, arrival()), Err(NtcipError::Malformed(_)));
        assert!(malformed(&[]));
        assert!(malformed(&good[..244]));
        assert!(malformed(&[good.clone(), vec![0]].concat()));
        let mut wrong_type = good.clone();
        wrong_type[0] = 0xCE;
        assert!(malformed(&wrong_type));
        let mut wrong_count = good.clone();
        wrong_count[1] = 15;
        assert!(malformed(&wrong_count));
        let mut wrong_number = good.clone();
        wrong_number[2 + 13 * 5] = 9;
        assert!(malformed(&wrong_number));
        // Phase 2 both red and green; phase 2's min time to change above its max.
        let inconsistent = |b: &[u8]| matches!(parse(b, arrival()), Err(NtcipError::Inconsistent(_)));
        let mut two_colours = good.clone();
        two_colours[211] |= 0x02;
        assert!(inconsistent(&two_colours));
        let mut ends_before = good.clone();
        ends_before[16..20].copy_from_slice(&[0x01, 0x45, 0x00, 0x32]);
        assert!(inconsistent(&ends_before));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep of lengths and contents around the real layout.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 2, 13, 200, 244, 245, 246, 1500] {
            for _ in 0..200 {
                let mut b: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                if len == BLOB_BYTES {
                    b[0] = MESSAGE_TYPE;
                    b[1] = 16;
                    for i in 0..16 {
                        b[2 + 13 * i] = (i + 1) as u8;
                    }
                }
                if let Ok(blob) = parse(&b, arrival()) {
                    assert!(blob.movements.len() <= 2 * PHASES);
                    for m in &blob.movements {
                        m.check_order().expect("what parses is consistent");
                    }
                }
            }
        }
    }
}
