//! The offline queue: messages waiting for the broker, bounded, dropping the oldest when full
//! (the platform wants the newest state of the road, not the oldest).

use std::collections::VecDeque;

use bytes::Bytes;

use super::Channel;

/// One MQTT message waiting to be published.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// What it is (its topic and QoS come from the configuration).
    pub channel: &'static Channel,
    /// The protobuf payload.
    pub payload: Bytes,
}

/// A bounded FIFO that drops its oldest message to make room.
#[derive(Debug)]
pub struct OfflineQueue {
    messages: VecDeque<Outgoing>,
    bound: usize,
}

impl OfflineQueue {
    /// An empty queue of at most `bound` (at least 1) messages.
    pub fn new(bound: usize) -> Self {
        let bound = bound.max(1);
        OfflineQueue { messages: VecDeque::with_capacity(bound.min(4096)), bound }
    }

    /// Appends `message`; returns the oldest message dropped to make room, if the queue was full.
    pub fn push(&mut self, message: Outgoing) -> Option<Outgoing> {
        let dropped = if self.messages.len() >= self.bound { self.messages.pop_front() } else { None };
        self.messages.push_back(message);
        dropped
    }

    /// The oldest message.
    pub fn front(&self) -> Option<&Outgoing> {
        self.messages.front()
    }

    /// Removes the oldest message.
    pub fn pop(&mut self) -> Option<Outgoing> {
        self.messages.pop_front()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Most messages kept.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_keeps_order() {
        let mut queue = OfflineQueue::new(3);
        let message = |n: u8| Outgoing { channel: &super::super::RSM, payload: Bytes::from(vec![n]) };
        let dropped: Vec<u8> = (0..7).filter_map(|n| queue.push(message(n))).map(|m| m.payload[0]).collect();
        assert_eq!(dropped, vec![0, 1, 2, 3]);
        assert_eq!(queue.len(), 3);
        let kept: Vec<u8> = std::iter::from_fn(|| queue.pop()).map(|m| m.payload[0]).collect();
        assert_eq!(kept, vec![4, 5, 6]);
        assert!(queue.is_empty());
    }
}
