//! Dense slots for object ids, so that per-object state lives in vectors instead of maps: the
//! first id seen gets slot 0, the next new one slot 1, and so on.
//!
//! Ids are looked up in a direct table while they are small (simulators and trackers number
//! objects from 0 or 1), and in an ordered map otherwise, so a log with huge ids costs a little
//! more time but no more memory.

use std::collections::BTreeMap;

/// Ids below this are looked up in the direct table (at most 512 KiB of it).
const DIRECT_IDS: u32 = 1 << 16;

/// Slots of ids, in order of first sight.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdSlots {
    /// By id below [`DIRECT_IDS`]: its slot + 1, or 0 when not seen.
    direct: Vec<usize>,
    /// Slots of larger ids.
    other: BTreeMap<u32, usize>,
    len: usize,
}

impl IdSlots {
    /// The slot of `id`, and whether it was seen for the first time. Inlined: it runs for every
    /// object of every scored frame, and mostly finds a small id seen before.
    #[inline]
    pub(crate) fn slot(&mut self, id: u32) -> (usize, bool) {
        match self.direct.get(id as usize) {
            Some(&s) if s != 0 => (s - 1, false),
            _ => self.first_sight_or_large(id),
        }
    }

    /// The slot of `id` if it was seen.
    pub(crate) fn get(&self, id: u32) -> Option<usize> {
        match self.direct.get(id as usize) {
            Some(&s) if s != 0 => Some(s - 1),
            Some(_) => None,
            None if id < DIRECT_IDS => None,
            None => self.other.get(&id).copied(),
        }
    }

    /// [`IdSlots::slot`] of an id not in the direct table: new, or too large for the table.
    #[cold]
    fn first_sight_or_large(&mut self, id: u32) -> (usize, bool) {
        let next = self.len;
        let (slot, new) = if id < DIRECT_IDS {
            let i = id as usize;
            if i >= self.direct.len() {
                self.direct.resize(i + 1, 0);
            }
            match self.direct[i] {
                0 => {
                    self.direct[i] = next + 1;
                    (next, true)
                }
                s => (s - 1, false),
            }
        } else {
            match self.other.get(&id) {
                Some(&s) => (s, false),
                None => {
                    self.other.insert(id, next);
                    (next, true)
                }
            }
        };
        if new {
            self.len += 1;
        }
        (slot, new)
    }

    /// Every (id, slot), ascending by id.
    pub(crate) fn by_id(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        let direct = self.direct.iter().enumerate().filter(|(_, s)| **s != 0).map(|(id, s)| (id as u32, *s - 1));
        direct.chain(self.other.iter().map(|(&id, &s)| (id, s)))
    }
}

/// Values by object id, stored densely in order of first sight (see [`IdSlots`]): a lookup per
/// object and frame costs an index, not an ordered-map search.
#[derive(Clone, Debug)]
pub(crate) struct IdMap<T> {
    slots: IdSlots,
    values: Vec<T>,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap { slots: IdSlots::default(), values: Vec::new() }
    }
}

impl<T: Default> IdMap<T> {
    /// The value of `id`, `T::default()` on first sight.
    pub(crate) fn entry(&mut self, id: u32) -> &mut T {
        let (slot, new) = self.slots.slot(id);
        if new {
            self.values.push(T::default());
        }
        &mut self.values[slot]
    }

    /// Every (id, value), ascending by id.
    pub(crate) fn into_sorted(mut self) -> impl Iterator<Item = (u32, T)> {
        let by_id: Vec<(u32, usize)> = self.slots.by_id().collect();
        by_id.into_iter().map(move |(id, slot)| (id, std::mem::take(&mut self.values[slot])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_lists_its_values_by_id() {
        let mut map: IdMap<Vec<u32>> = IdMap::default();
        for id in [9, 2, u32::MAX, 9] {
            map.entry(id).push(id);
        }
        let sorted: Vec<(u32, Vec<u32>)> = map.into_sorted().collect();
        assert_eq!(sorted, vec![(2, vec![2]), (9, vec![9, 9]), (u32::MAX, vec![u32::MAX])]);
    }

    #[test]
    fn slots_follow_first_sight_and_list_by_id() {
        let mut slots = IdSlots::default();
        assert_eq!(slots.slot(7), (0, true));
        assert_eq!(slots.slot(u32::MAX), (1, true));
        assert_eq!(slots.slot(3), (2, true));
        assert_eq!(slots.slot(7), (0, false));
        assert_eq!(slots.slot(DIRECT_IDS), (3, true));
        assert_eq!(slots.slot(u32::MAX), (1, false));
        for (id, slot) in
            [(7, Some(0)), (3, Some(2)), (DIRECT_IDS, Some(3)), (u32::MAX, Some(1)), (4, None), (1 << 20, None)]
        {
            assert_eq!(slots.get(id), slot, "id {id}");
        }
        assert_eq!(slots.by_id().collect::<Vec<_>>(), vec![(3, 2), (7, 0), (DIRECT_IDS, 3), (u32::MAX, 1)]);
    }
}
